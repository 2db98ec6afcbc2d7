"""The child's splits: the new data relabelled into the union of classes, plus the parent's.

    train   the new data's training split + the parent's first `rehearsal` exemplars
            of each old class (`exemplars.read_exemplars`), repeated to about a new
            class's count unless `balance_rehearsal` is off
    val     the new data's validation split
    test    the new data's test split + the parent's test split (its predictions.csv:
            input and true class), so the old classes are measured on examples that
            neither run trained on

A TFDS parent has no inputs in predictions.csv: then the old classes are measured
only where the new data have them (merged classes), with a warning.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfxfer import rundir
from tfxfer.continual.exemplars import read_exemplars
from tfxfer.continual.lineage import ClassUnion
from tfxfer.data.splits import Splits

logger = logging.getLogger(__name__)


def split_values(splits: Splits, split: str) -> list[bytes]:
    """The raw input of every example of `split` (file path or text, as bytes), in order."""
    if split not in splits.raw:
        return []
    return [bytes(raw) for raw, _ in splits.raw[split].as_numpy_iterator()]


def _parent_test(parent_dir: Path) -> list[tuple[str, str]]:
    path = parent_dir / rundir.PREDICTIONS
    if not path.is_file():
        logger.warning("The parent run %s has no %s: the old classes are not tested.",
                       parent_dir, rundir.PREDICTIONS)
        return []
    csv.field_size_limit(1 << 30)
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if rows and "input" not in rows[0]:
        logger.warning("The parent's %s has no input column (TFDS data): its test split "
                       "cannot be added, only merged classes measure the old ones.",
                       rundir.PREDICTIONS)
        return []
    return [(row["input"], row["true"]) for row in rows]


def _balanced(exemplars: list[tuple[str, str]], new_labels: list[int]) -> list[tuple[str, str]]:
    """The exemplars repeated so that an old class has about a new class's mean count."""
    per_new_class = len(new_labels) / max(1, len(set(new_labels)))
    per_old_class = len(exemplars) / max(1, len({name for _, name in exemplars}))
    repeats = max(1, round(per_new_class / per_old_class))
    if repeats > 1:
        logger.info("Class-balanced rehearsal: each exemplar repeated %d times (%.0f new "
                    "examples per class, %.0f exemplars per old class)", repeats,
                    per_new_class, per_old_class)
    return exemplars * repeats


def child_splits(new: Splits, union: ClassUnion, parent_dir: Path, rehearsal: int,
                 balance: bool = True) -> Splits:
    """`new` relabelled into `union`, with rehearsal exemplars and the parent's test split.

    Args:
        new: the new data's splits.
        union: the child's classes.
        parent_dir: the parent's run directory.
        rehearsal: exemplars per old class to add to training (0: none).
        balance: repeat them to about a new class's count (see `_balanced`).
    """
    relabel = np.asarray(union.ids(new.class_names), np.int64)
    tables = {split: (split_values(new, split), relabel[new.labels[split]].tolist())
              for split in new.raw}
    rehearsed = read_exemplars(parent_dir, rehearsal) if rehearsal else []
    if rehearsed and balance:
        rehearsed = _balanced(rehearsed, tables["train"][1])
    extra = {"train": rehearsed, "test": _parent_test(parent_dir) if union.old else []}
    for split, pairs in extra.items():
        pairs = [(x, name) for x, name in pairs if name in union.classes]
        inputs, labels = tables.setdefault(split, ([], []))
        inputs += [x.encode("utf-8") for x, _ in pairs]
        labels += union.ids(name for _, name in pairs)
        if pairs:
            logger.info("%s split: %d examples of the parent's added (%s)", split, len(pairs),
                        "rehearsal exemplars" if split == "train" else "its test split")
    raw = {split: tf.data.Dataset.from_tensor_slices(
        (np.asarray(inputs, dtype=object), np.asarray(labels, np.int64)))
        for split, (inputs, labels) in tables.items() if inputs}
    labels = {split: np.asarray(y, np.int64) for split, (x, y) in tables.items() if x}
    files = {split: [x.decode("utf-8") for x in inputs]
             for split, (inputs, _) in tables.items() if inputs} if new.from_paths else {}
    return dataclasses.replace(new, class_names=list(union.classes), raw=raw, labels=labels,
                               files=files)
