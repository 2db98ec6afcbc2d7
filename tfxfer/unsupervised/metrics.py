"""Clusters scored against reference labels: NMI, ARI and Hungarian-matched accuracy.

The accuracy matches clusters to classes one to one so that the most items agree
(scipy's `linear_sum_assignment` on the contingency table); with more clusters than
classes, the unmatched clusters count as wrong.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class ClusterScores:
    """Agreement of a clustering with the reference labels (1 is perfect)."""

    nmi: float
    ari: float
    accuracy: float

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 4) for k, v in asdict(self).items()}


def _validate(labels: np.ndarray, clusters: np.ndarray) -> None:
    if len(labels) != len(clusters) or len(labels) == 0:
        raise ValueError(f"Need one cluster per label: received {len(labels)} labels and "
                         f"{len(clusters)} cluster assignments.")


def matched_accuracy(labels: np.ndarray, clusters: np.ndarray) -> float:
    """The share of items whose cluster, matched one-to-one to a class, is their class."""
    from scipy.optimize import linear_sum_assignment

    labels, clusters = np.asarray(labels), np.asarray(clusters)
    _validate(labels, clusters)
    _, y = np.unique(labels, return_inverse=True)
    _, c = np.unique(clusters, return_inverse=True)
    table = np.zeros((c.max() + 1, y.max() + 1), np.int64)
    np.add.at(table, (c, y), 1)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / len(labels))


def score_clusters(labels: np.ndarray, clusters: np.ndarray) -> ClusterScores:
    """NMI, ARI and matched accuracy of `clusters` against `labels`."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    _validate(np.asarray(labels), np.asarray(clusters))
    return ClusterScores(float(normalized_mutual_info_score(labels, clusters)),
                         float(adjusted_rand_score(labels, clusters)),
                         matched_accuracy(labels, clusters))
