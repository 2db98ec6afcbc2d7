"""Exemplars: a few training examples per class kept in the run directory for rehearsal.

`--exemplars N` stores N examples of every class in RUN_DIR/exemplars.csv:

    class   the class name
    rank    0, 1, ... in the order chosen (herding: the most representative first)
    input   the example: its absolute file path (image folders) or its text (CSV rows)

Herding (iCaRL, Rebuffi et al. 2017) picks, one at a time, the example whose
L2-normalised pooled feature brings the running mean of those chosen closest to
the class mean; "random" draws them with the run's seed. A child run's
`--rehearsal N` trains on the first N of each old class.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

EXEMPLARS = "exemplars.csv"


def herding(features: np.ndarray, n: int) -> list[int]:
    """Indices of up to `n` rows of `features`, in herding order (no repeats)."""
    x = np.asarray(features, np.float64).reshape(len(features), -1)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    mean = x.mean(0)
    chosen: list[int] = []
    running = np.zeros_like(mean)
    for k in range(1, min(n, len(x)) + 1):
        scores = np.linalg.norm(mean - (running + x) / k, axis=1)
        scores[chosen] = np.inf
        best = int(np.argmin(scores))
        chosen.append(best)
        running += x[best]
    return chosen


def select_exemplars(labels: np.ndarray, per_class: int, method: str, seed: int,
                     features: np.ndarray | None = None) -> dict[int, list[int]]:
    """The exemplars of every class: class id -> indices into `labels`, in rank order.

    Args:
        labels: the class id of every candidate.
        per_class: exemplars per class (fewer where a class has fewer candidates).
        method: "herding" (needs `features`, one row per candidate) or "random".
        seed: the random draw's seed.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    chosen = {}
    for class_id in np.unique(labels):
        members = np.flatnonzero(labels == class_id)
        if method == "herding":
            if features is None:
                raise ValueError("Herding needs the candidates' features; received none.")
            order = herding(features[members], per_class)
        elif method == "random":
            order = rng.permutation(len(members))[:per_class].tolist()
        else:
            raise ValueError(f"Exemplar selection must be herding or random. Received: {method!r}")
        chosen[int(class_id)] = [int(members[i]) for i in order]
        if len(order) < per_class:
            logger.warning("Class %d has %d candidate exemplars, fewer than %d.",
                           class_id, len(order), per_class)
    return chosen


def write_exemplars(run_dir: Path, inputs: Sequence[str], labels: np.ndarray,
                    class_names: Sequence[str], chosen: dict[int, list[int]]) -> Path:
    """Writes RUN_DIR/exemplars.csv (see the module docstring)."""
    path = Path(run_dir) / EXEMPLARS
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["class", "rank", "input"])
        writer.writeheader()
        for class_id, indices in sorted(chosen.items()):
            for rank, index in enumerate(indices):
                writer.writerow({"class": class_names[class_id], "rank": rank,
                                 "input": inputs[index]})
    logger.info("Kept %d exemplars of %d classes in %s",
                sum(map(len, chosen.values())), len(chosen), path)
    return path


def read_exemplars(run_dir: str | Path, per_class: int | None = None) -> list[tuple[str, str]]:
    """(input, class name) of a run's exemplars, the first `per_class` of each class.

    Raises:
        FileNotFoundError: the run kept no exemplars.
    """
    path = Path(run_dir) / EXEMPLARS
    if not path.is_file():
        raise FileNotFoundError(
            f"The run {run_dir} kept no exemplars ({EXEMPLARS}); rehearsal needs a parent "
            "trained with --exemplars N.")
    csv.field_size_limit(1 << 30)  # texts may be long
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [(row["input"], row["class"]) for row in rows
            if per_class is None or int(row["rank"]) < per_class]
