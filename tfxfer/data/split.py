"""Deterministic, stratified splits of labelled examples."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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
