"""Pooled pretrained features of unlabelled images or texts (`tfxfer embed`).

The features are those a classifier's head would read: the model is built by the
training factory (`tfxfer.experiment.build_classifier`, augmentation off) and cut at
the head's input (`tfxfer.training.bottleneck.feature_model`), so embedding, caching
and training see the same vectors. The frozen part runs with its weights as
constants (`tfxfer.training.bottleneck.FeatureExtractor`).

Files (`save_embeddings` / `load_embeddings`):

    FILE.npy + FILE.items.csv   float32 (n, d) features; a CSV with `path` (or `text`)
                                and `label` (the class subfolder, empty without one)
    FILE.parquet                one table: path (or text), label, embedding (a list)
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from tfxfer.config import ModelConfig, RunConfig
from tfxfer.modality import IMAGE, TEXT, validate_modality
from tfxfer.unsupervised.sources import Items

logger = logging.getLogger(__name__)

ITEMS_SUFFIX = ".items.csv"
_ITEM_COLUMN = {IMAGE: "path", TEXT: "text"}


@dataclass
class Embeddings:
    """Feature vectors of a source's items, in the items' order.

    Attributes:
        features: float32 (n, d).
        items: image paths or texts.
        modality: "image" or "text".
        labels: reference class ids, or None.
        class_names: the names of those ids.
    """

    features: np.ndarray
    items: list[str]
    modality: str
    labels: np.ndarray | None = None
    class_names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.features) != len(self.items):
            raise ValueError(f"{len(self.features)} feature rows for {len(self.items)} items")


def feature_extractor(model: ModelConfig, modality: str):
    """The pooled-feature function of the classifier `model` would build for `modality`.

    Returns:
        (extract, image_size): `extract(batch) -> np.ndarray (b, d)`; the image side
        (None for text).
    """
    from tfxfer.experiment import build_classifier
    from tfxfer.image.model import image_size_for
    from tfxfer.training.bottleneck import FeatureExtractor

    model = model.for_modality(validate_modality(modality))
    size = None
    if modality == IMAGE:
        size = image_size_for(model)
        image = dataclasses.replace(model.image, augment=False, image_size=size)
        model = dataclasses.replace(model, image=image)
    classifier = build_classifier(RunConfig(model=model), modality, num_classes=2)
    return FeatureExtractor(classifier), size


def _batches(items: Items, image_size: int | None, batch_size: int):
    import tensorflow as tf

    from tfxfer.data.pipeline import AUTOTUNE, image_decoder, single_pass

    ds = tf.data.Dataset.from_tensor_slices(items.items)
    if items.modality == IMAGE:
        decode = image_decoder(image_size, from_paths=True)
        ds = ds.map(lambda path: decode(path, 0)[0], num_parallel_calls=AUTOTUNE)
    return single_pass(ds.batch(batch_size).prefetch(2))


def embed_items(items: Items, model: ModelConfig, batch_size: int = 32,
                progress: bool = True) -> Embeddings:
    """Features of every item, with a tqdm progress bar.

    Args:
        items: images or texts (`tfxfer.unsupervised.sources.read_items`).
        model: the model section: `image` (backbone, weights, image size, pooling,
            backbone_kwargs) or `text` (encoder).
        batch_size: items per forward pass.
        progress: show the progress bar (on stderr).
    """
    from tqdm import tqdm

    extract, size = feature_extractor(model, items.modality)
    chunks = []
    total = math.ceil(len(items) / batch_size)
    for batch in tqdm(_batches(items, size, batch_size), total=total, unit="batch",
                      desc="embed", disable=not progress):
        chunks.append(extract(batch))
    features = np.concatenate(chunks).astype(np.float32)
    logger.info("Embedded %d %s items: %d features each", len(items), items.modality,
                features.shape[1])
    return Embeddings(features, list(items.items), items.modality, items.labels,
                      list(items.class_names))


def _label_column(emb: Embeddings) -> list[str]:
    if emb.labels is None:
        return [""] * len(emb.items)
    return [emb.class_names[i] for i in emb.labels]


def _validate_out(path: Path) -> None:
    if path.suffix.lower() not in (".npy", ".parquet"):
        raise ValueError(f"--out must end in .npy or .parquet. Received: {path}")


def items_path(path: str | os.PathLike) -> Path:
    """The CSV beside FILE.npy that names its rows."""
    path = Path(path)
    return path.with_name(path.stem + ITEMS_SUFFIX)


def save_embeddings(emb: Embeddings, path: str | os.PathLike) -> list[Path]:
    """Writes `emb` as FILE.npy + FILE.items.csv or as FILE.parquet; returns the files."""
    path = Path(path)
    _validate_out(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame({_ITEM_COLUMN[emb.modality]: emb.items, "label": _label_column(emb)})
    if path.suffix.lower() == ".parquet":
        table["embedding"] = list(emb.features)
        table.to_parquet(path, index=False)
        return [path]
    np.save(path, emb.features)
    table.to_csv(items_path(path), index=False)
    return [path, items_path(path)]


def _from_table(features: np.ndarray, table: pd.DataFrame, name: str) -> Embeddings:
    column = next((c for c in ("path", "text") if c in table.columns), None)
    if column is None:
        raise ValueError(f"{name} has no 'path' or 'text' column; its columns are "
                         f"{list(table.columns)} (was it written by `tfxfer embed`?)")
    modality = IMAGE if column == "path" else TEXT
    labels = [str(v) for v in table.get("label", pd.Series([""] * len(table))).fillna("")]
    emb = Embeddings(features, [str(v) for v in table[column]], modality)
    if all(labels) and len(set(labels)) >= 2:
        emb.class_names = sorted(set(labels))
        index = {n: i for i, n in enumerate(emb.class_names)}
        emb.labels = np.asarray([index[v] for v in labels], np.int64)
    return emb


def load_embeddings(path: str | os.PathLike) -> Embeddings:
    """Reads what `save_embeddings` wrote.

    Raises:
        FileNotFoundError: the file (or the .npy's items CSV) does not exist.
    """
    path = Path(path)
    _validate_out(path)
    if not path.is_file():
        raise FileNotFoundError(f"Embeddings file not found: {path}")
    if path.suffix.lower() == ".parquet":
        table = pd.read_parquet(path)
        if "embedding" not in table.columns:
            raise ValueError(f"{path} has no 'embedding' column (was it written by "
                             "`tfxfer embed`?)")
        features = np.stack(table.pop("embedding").to_numpy()).astype(np.float32)
        return _from_table(features, table, str(path))
    rows = items_path(path)
    if not rows.is_file():
        raise FileNotFoundError(f"{path} has no items file beside it: expected {rows}")
    table = pd.read_csv(rows, dtype=str, keep_default_na=False)
    return _from_table(np.load(path).astype(np.float32), table, str(rows))


def is_embeddings_file(source: str | os.PathLike) -> bool:
    return Path(source).suffix.lower() in (".npy", ".parquet")
