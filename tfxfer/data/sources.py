"""Labelled data from any source, split into train/val/test.

`load_splits` reads `DataConfig.source`:

    path/to/folder      a folder of class subfolders (images)
    path/to/file.csv    a CSV/TSV table of texts and labels (see `tfxfer.data.text`)
    tfds:NAME           a TFDS dataset through `tfds.load` (images or text)

and returns `Splits`: unbatched `(raw, label)` datasets per split, where `raw` is
an image path, encoded image bytes or a text string, plus the decoder that turns
`raw` into the model's input and a summary of what was read and skipped.
`DataConfig.test_source` optionally names a separate test folder or CSV file.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfxfer.cache import fits_in_memory
from tfxfer.config import DataConfig
from tfxfer.data.images import ImageFolder, SkippedFile, scan_image_folder
from tfxfer.data.pipeline import image_decoder, make_batches
from tfxfer.data.split import stratified_split, stratified_subset

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


@dataclass
class Splits:
    """Labelled data split three ways, not yet decoded or batched.

    Attributes:
        class_names: label strings; a label is an index into this list.
        modality: "image" or "text".
        raw: split name -> unbatched (raw, label) dataset; a split may be absent.
        labels: split name -> label of every example, in dataset order.
        source: where the data came from.
        decode: map from (raw, label) to (model input, label), or None.
        from_paths: True when image `raw` values are file paths.
        skipped: files that were left out, with the reason.
        files: split name -> file paths, when the source is a folder.
    """

    class_names: list[str]
    modality: str
    raw: dict[str, tf.data.Dataset]
    labels: dict[str, np.ndarray]
    source: str
    decode: Callable | None = None
    from_paths: bool = False
    skipped: list[SkippedFile] = field(default_factory=list)
    files: dict[str, list[str]] = field(default_factory=dict)
    skip_errors: bool = False
    # Bytes of one decoded example (images: side * side * 3), for the "auto" cache.
    example_bytes: int = 0

    def size(self, split: str) -> int:
        return len(self.labels.get(split, ()))

    def cache_mode(self, split: str, data: DataConfig) -> str:
        """Resolves `data.cache` for one split: "memory", "none" or a file path."""
        if data.cache == "auto":
            nbytes = self.size(split) * self.example_bytes
            if fits_in_memory(nbytes):
                return "memory"
            logger.info("Decoded %s split (%.1f GB) does not fit in memory: not cached",
                        split, nbytes / 1e9)
            return "none"
        if data.cache in ("memory", "none"):
            return data.cache
        return f"{data.cache}_{split}"

    def batches(
        self, split: str, data: DataConfig, training: bool = False, drop_remainder: bool = False
    ) -> tf.data.Dataset:
        """The batched pipeline of one split.

        None when the split is empty, or holds no full batch while `drop_remainder`
        is set.
        """
        if self.size(split) == 0:
            return None
        if drop_remainder and self.size(split) < data.batch_size:
            logger.warning("The %s split (%d examples) holds no full batch of %d; not used.",
                           split, self.size(split), data.batch_size)
            return None
        cache = self.cache_mode(split, data)
        return make_batches(
            self.raw[split], batch_size=data.batch_size, training=training,
            decode=self.decode, cache=cache, seed=data.seed,
            num_examples=self.size(split), skip_errors=self.skip_errors,
            drop_remainder=drop_remainder,
        )

    def summary(self) -> dict:
        """Counts per split and class, and the skipped files: for the run directory."""
        counts = {
            split: {
                name: int(np.sum(self.labels[split] == i))
                for i, name in enumerate(self.class_names)
            }
            for split in SPLITS if split in self.labels
        }
        return {
            "source": self.source,
            "modality": self.modality,
            "class_names": self.class_names,
            "counts": counts,
            "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
        }


def source_kind(source: str) -> str:
    """"tfds", "csv" or "folder", from the form of `source`."""
    if source.startswith("tfds:"):
        return "tfds"
    if Path(source).suffix.lower() in (".csv", ".tsv"):
        return "csv"
    return "folder"


def subsample_splits(
    indices: dict[str, np.ndarray], labels: np.ndarray, data: DataConfig
) -> dict[str, np.ndarray]:
    """Applies `max_train_examples` / `max_test_examples` (stratified) to split indices."""
    limits = {"train": data.max_train_examples, "test": data.max_test_examples}
    return {
        split: idx if limits.get(split) is None
        else stratified_subset(idx, labels, limits[split], data.seed)
        for split, idx in indices.items()
    }


def _test_folder(data: DataConfig, folder: ImageFolder) -> tuple:
    """(paths, labels, indices) of the separate test folder; its skipped files join `folder`'s."""
    test = scan_image_folder(data.test_source, validate=data.validate_files)
    if test.class_names != folder.class_names:
        raise ValueError(
            f"Test folder {data.test_source} has classes {test.class_names}; the training "
            f"folder {data.source} has {folder.class_names}."
        )
    folder.skipped.extend(test.skipped)
    labels = np.asarray(test.labels, dtype=np.int64)
    indices = subsample_splits({"test": np.arange(len(labels))}, labels, data)["test"]
    return np.asarray(test.paths), labels, indices


def load_folder_splits(data: DataConfig, image_size: int) -> Splits:
    """Splits a class-per-subfolder image tree (see `scan_image_folder`)."""
    folder = scan_image_folder(data.source, validate=data.validate_files)
    labels = np.asarray(folder.labels, dtype=np.int64)
    test_fraction = 0.0 if data.test_source else data.test_fraction
    indices = stratified_split(
        labels, data.val_fraction, test_fraction, data.seed, folder.class_names
    )
    indices = subsample_splits(indices, labels, data)
    paths = np.asarray(folder.paths)
    tables = {split: (paths, labels, idx) for split, idx in indices.items()}
    if data.test_source:
        tables["test"] = _test_folder(data, folder)
    raw, split_labels, files = {}, {}, {}
    for split, (split_paths, split_ids, idx) in tables.items():
        if len(idx):
            files[split] = split_paths[idx].tolist()
            split_labels[split] = split_ids[idx]
            raw[split] = tf.data.Dataset.from_tensor_slices((split_paths[idx], split_ids[idx]))
    return Splits(
        folder.class_names, "image", raw, split_labels, str(data.source),
        decode=image_decoder(image_size, from_paths=True), from_paths=True,
        skipped=folder.skipped, files=files, skip_errors=not data.validate_files,
        example_bytes=image_size * image_size * 3,
    )


def apply_label_names(splits: Splits, label_names: Mapping[str, str] | None) -> Splits:
    """`splits` with its class names replaced by `label_names` (label -> readable name).

    Names of labels the data does not have are ignored, so that one mapping can serve
    several sources of a dataset (IMDB's CSVs say 0/1, its TFDS version neg/pos); but
    at least one must match.

    Raises:
        ValueError: no named label is a class of the data, or two classes get one name.
    """
    if not label_names:
        return splits
    names = {str(k): str(v) for k, v in label_names.items()}
    if not set(names) & set(splits.class_names):
        raise ValueError(
            f"label_names names labels {sorted(names)}, none of which {splits.source} has; "
            f"its labels are {splits.class_names}."
        )
    renamed = [names.get(c, c) for c in splits.class_names]
    if len(set(renamed)) != len(renamed):
        raise ValueError(f"label_names gives two classes the same name: {renamed}.")
    logger.info("Class names %s -> %s", splits.class_names, renamed)
    return dataclasses.replace(splits, class_names=renamed)


def load_splits(data: DataConfig, image_size: int | None = None) -> Splits:
    """Reads and splits the data named by `data.source`, with `data.label_names` applied.

    Args:
        data: the data section of the config.
        image_size: square side images are decoded to (image sources only).

    Returns:
        Splits with decoders for the model's inputs.
    """
    return apply_label_names(_load_splits(data, image_size), data.label_names)


def _load_splits(data: DataConfig, image_size: int | None = None) -> Splits:
    kind = source_kind(data.source)
    if data.test_source and (kind == "tfds" or source_kind(data.test_source) != kind):
        raise ValueError(
            f"test_source must be the same kind of source as source (a folder or a CSV file; "
            f"TFDS uses its own test split). Received: source={data.source!r}, "
            f"test_source={data.test_source!r}"
        )
    if kind == "tfds":
        from tfxfer.data.tfds_source import load_tfds_splits

        return load_tfds_splits(data, image_size)
    if kind == "csv":
        from tfxfer.data.text import load_csv_splits

        return load_csv_splits(data)
    if image_size is None:
        raise ValueError("image_size is required for image folders.")
    return load_folder_splits(data, image_size)
