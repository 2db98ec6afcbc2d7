"""Labelled data split three ways: the `Splits` type and how indices are carved.

Every loader (`folder.py`, `text.py`, `tfds_source.py`) reads its labels, then
calls `carve_indices` (the stratified train/val/test split, with
`max_train_examples` / `max_test_examples` applied) and `subsample_test` for a
separate test set, and wraps the result in `Splits`: unbatched `(raw, label)`
datasets per split, where `raw` is an image path, encoded image bytes or a text
string, plus the decoder that turns `raw` into the model's input and a summary of
what was read and skipped. Nothing here imports a loader.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfxfer.config import DataConfig
from tfxfer.data.images import SkippedFile
from tfxfer.data.pipeline import make_batches
from tfxfer.utils.cache import fits_in_memory

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
# Batches per window sorted by text length (`Splits.batches(by_length=True)`): enough
# for similar lengths within a batch, few enough that an epoch's order stays random.
LENGTH_WINDOW = 16


def _class_counts(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    n_test = max(1, round(n * test_fraction)) if test_fraction > 0 else 0
    n_val = max(1, round(n * val_fraction)) if val_fraction > 0 else 0
    return n - n_val - n_test, n_val, n_test


def stratified_split(
    labels: Sequence[int],
    val_fraction: float,
    test_fraction: float,
    seed: int,
    class_names: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """Splits example indices into train/val/test with each class in every split.

    Each class is shuffled by its own generator, seeded from `seed` and the class
    id, so one class's split does not change when another class gains images.

    Args:
        labels: class id of every example.
        val_fraction: share of each class for validation (0 for none).
        test_fraction: share of each class for test (0 for none).
        seed: split seed.
        class_names: names used in error messages.

    Returns:
        {"train", "val", "test"} -> sorted index arrays.

    Raises:
        ValueError: when a class has too few examples to appear in every split.
    """
    labels = np.asarray(labels, dtype=np.int64)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for class_id in np.unique(labels):
        members = np.flatnonzero(labels == class_id)
        n_train, n_val, n_test = _class_counts(len(members), val_fraction, test_fraction)
        if n_train < 1:
            name = class_names[class_id] if class_names is not None else class_id
            raise ValueError(
                f"Class {name!r} has {len(members)} examples, too few for a split with "
                f"val_fraction={val_fraction} and test_fraction={test_fraction}: every "
                "split needs at least one example of every class."
            )
        shuffled = np.random.default_rng([seed, int(class_id)]).permutation(members)
        parts["test"].append(shuffled[:n_test])
        parts["val"].append(shuffled[n_test:n_test + n_val])
        parts["train"].append(shuffled[n_test + n_val:])
    return {k: np.sort(np.concatenate(v)) for k, v in parts.items()}


def stratified_subset(
    indices: np.ndarray, labels: Sequence[int], size: int, seed: int
) -> np.ndarray:
    """Keeps `size` of `indices`, with class proportions preserved (largest remainder).

    Args:
        indices: candidate example indices.
        labels: class id of every example (indexed by `indices`).
        size: number of indices to keep; at least one per class.
        seed: selection seed.

    Returns:
        The sorted kept indices (all of them when `size` >= len(indices)).
    """
    indices = np.asarray(indices)
    if size >= len(indices):
        return np.sort(indices)
    labels = np.asarray(labels)[indices]
    classes, counts = np.unique(labels, return_counts=True)
    if size < len(classes):
        raise ValueError(
            f"A stratified subset needs at least one example per class ({len(classes)}). "
            f"Received: size={size}"
        )
    exact = counts / counts.sum() * size
    take = np.maximum(1, np.floor(exact).astype(int))
    for i in np.argsort(-(exact - np.floor(exact)))[: max(0, size - int(take.sum()))]:
        take[i] += 1
    while take.sum() > size:  # the one-per-class floor overshot: trim the largest
        take[np.argmax(take)] -= 1
    rng = np.random.default_rng(seed)
    kept = [
        rng.choice(indices[labels == c], size=k, replace=False) for c, k in zip(classes, take)
    ]
    return np.sort(np.concatenate(kept))


def subsample_splits(
    indices: dict[str, np.ndarray], labels: np.ndarray, data: DataConfig
) -> dict[str, np.ndarray]:
    """Applies `max_train_examples` / `max_test_examples` (stratified) to split indices.

    A validation split shrinks with the training split it was carved beside, keeping
    their ratio: `max_train_examples: 2000` of IMDB's 22,500 training reviews keeps 222
    of its 2,500 validation reviews, not all of them (validation would otherwise cost
    more than the training it checks).
    """
    limits = {"train": data.max_train_examples, "test": data.max_test_examples}
    n_train, n_val = len(indices.get("train", ())), len(indices.get("val", ()))
    if data.max_train_examples is not None and n_val and data.max_train_examples < n_train:
        classes = len(np.unique(np.asarray(labels)[indices["val"]]))
        limits["val"] = max(classes, round(n_val * data.max_train_examples / n_train))
    return {
        split: idx if limits.get(split) is None
        else stratified_subset(idx, labels, limits[split], data.seed)
        for split, idx in indices.items()
    }


def carve_indices(
    labels: np.ndarray,
    data: DataConfig,
    class_names: Sequence[str],
    *,
    carve_val: bool = True,
    carve_test: bool = True,
) -> dict[str, np.ndarray]:
    """The train/val/test indices of one labelled table, subsampled as `data` asks.

    Args:
        labels: class id of every example.
        data: the data section: fractions, seed, max_train_examples/max_test_examples.
        class_names: names for error messages.
        carve_val: carve `data.val_fraction` for validation (False: the source has its own).
        carve_test: carve `data.test_fraction` for test (False: a separate test set).

    Returns:
        {"train", "val", "test"} -> sorted index arrays.
    """
    indices = stratified_split(
        labels, data.val_fraction if carve_val else 0.0,
        data.test_fraction if carve_test else 0.0, data.seed, class_names,
    )
    return subsample_splits(indices, labels, data)


def subsample_test(labels: np.ndarray, data: DataConfig) -> np.ndarray:
    """Indices of a separate test set, with `max_test_examples` applied."""
    return subsample_splits({"test": np.arange(len(labels))}, labels, data)["test"]


def tensor_splits(
    tables: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
) -> tuple[dict[str, tf.data.Dataset], dict[str, np.ndarray]]:
    """Datasets and labels from in-memory tables `split -> (inputs, labels, indices)`.

    Empty splits are left out.
    """
    raw, labels = {}, {}
    for split, (inputs, y, idx) in tables.items():
        if len(idx):
            raw[split] = tf.data.Dataset.from_tensor_slices((inputs[idx], y[idx]))
            labels[split] = y[idx]
    return raw, labels


@dataclass
class Splits:
    """Labelled data split three ways, not yet decoded or batched.

    Attributes:
        class_names: label strings; a label is an index into this list.
        modality: "image" or "text" (see `tfxfer.modality`).
        raw: split name -> unbatched (raw, label) dataset; a split may be absent.
        labels: split name -> label of every example, in dataset order.
        source: where the data came from.
        decode: map from (raw, label) to (model input, label), or None.
        from_paths: True when image `raw` values are file paths.
        skipped: files that were left out, with the reason.
        files: split name -> file paths, when the source is a folder.
        skip_errors: drop examples whose decoding fails (files not validated beforehand).
        example_bytes: bytes of one decoded example (images: side * side * 3), for the
            "auto" cache.
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
        prefix = Path(f"{data.cache}_{split}")
        try:  # tf.data's file cache fails with a bare NotFoundError in a missing folder
            prefix.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ValueError(f"data.cache={data.cache!r}: cannot create the folder of the "
                             f"{split} split's cache files {prefix}: {error}") from error
        return str(prefix)

    def has_batches(self, split: str, data: DataConfig, drop_remainder: bool = False) -> bool:
        """Whether `batches` gives a pipeline: False when the split is empty, or holds no
        full batch while `drop_remainder` is set (logged). Builds nothing."""
        if self.size(split) == 0:
            return False
        if drop_remainder and self.size(split) < data.batch_size:
            logger.warning("The %s split (%d examples) holds no full batch of %d; not used.",
                           split, self.size(split), data.batch_size)
            return False
        return True

    def batches(
        self, split: str, data: DataConfig, training: bool = False, drop_remainder: bool = False,
        by_length: bool = False, order: np.ndarray | None = None,
    ) -> tf.data.Dataset | None:
        """The batched pipeline of one split, or None when `has_batches` is False.

        `by_length` sorts texts by length within windows of `LENGTH_WINDOW` batches
        (for a transformer with dynamic padding; see `make_batches`): examples change
        order, so it is for training, validation and feature caching, not for
        predictions matched to their inputs. Images ignore it.

        `order` (indices into the split, e.g. `length_order`) sets the examples'
        order; a caller matching predictions to inputs puts them back with
        `np.argsort(order)`.
        """
        if not self.has_batches(split, data, drop_remainder):
            return None
        cache = self.cache_mode(split, data)
        raw = self.raw[split] if order is None else self._reordered(split, order)
        return make_batches(
            raw, batch_size=data.batch_size, training=training,
            decode=self.decode, cache=cache, seed=data.seed,
            num_examples=self.size(split), skip_errors=self.skip_errors,
            drop_remainder=drop_remainder,
            sort_window=LENGTH_WINDOW if by_length and self.modality == "text" else 0,
        )

    def length_order(self, split: str) -> np.ndarray | None:
        """Indices of `split`'s texts from shortest to longest (stable), None for other
        modalities: batches of similar length pad less (`batches(order=)`)."""
        if self.modality != "text":
            return None
        texts, _ = self._tensors(split)
        return np.argsort(tf.strings.length(texts).numpy(), kind="stable")

    def _tensors(self, split: str) -> tuple[tf.Tensor, tf.Tensor]:
        """All of `split`'s (raw, label) examples as two tensors, in split order."""
        return self.raw[split].batch(max(1, self.size(split))).get_single_element()

    def _reordered(self, split: str, order: np.ndarray) -> tf.data.Dataset:
        """`split`'s unbatched (raw, label) examples in `order`."""
        n = self.size(split)
        if not np.array_equal(np.sort(order), np.arange(n)):
            raise ValueError(f"order must be a permutation of the {n} indices of the {split} "
                             f"split. Received {len(order)} indices.")
        inputs, labels = self._tensors(split)
        return tf.data.Dataset.from_tensor_slices(
            (tf.gather(inputs, order), tf.gather(labels, order)))

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
