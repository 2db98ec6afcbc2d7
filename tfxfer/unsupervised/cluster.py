"""k-means on pretrained features: normalisation, PCA whitening, k by silhouette.

    features -> [L2 normalise] -> [PCA to `pca_components`, whitened] -> [L2 normalise]
             -> k-means (k given, or the best silhouette over `k_range`)

Whitening gives every kept component the same weight, the noisy ones too: on the 600
flower photos (MobileNet alpha=0.25 ImageNet features, bench/cluster.py) whitening 64
components halved NMI, and on well separated blobs it hides the clusters from the
silhouette. Hence the defaults: L2 normalisation and PCA to 32 components, not
whitened (docs/clustering.md has the table). Near-duplicate pairs are found on the
L2-normalised features (before PCA) by cosine similarity, in blocks so that 10,000
items never need an n x n matrix.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

logger = logging.getLogger(__name__)

AUTO = "auto"


@dataclass(frozen=True)
class ClusterConfig:
    """How `cluster_features` clusters.

    Attributes:
        k: the number of clusters, or "auto" (best silhouette over `k_range`).
        k_range: (smallest, largest) k tried by "auto"; capped at n - 1.
        l2_normalise: scale every feature vector to unit length first.
        pca_components: PCA dimensions (0: no PCA), capped at n - 1 and the width.
        whiten: divide the PCA components by their standard deviation.
        n_init: k-means restarts (the best inertia is kept).
        seed: k-means and PCA seed.
        silhouette_sample: silhouettes of at most this many items per k (speed).
    """

    k: int | str = AUTO
    k_range: tuple[int, int] = (2, 15)
    l2_normalise: bool = True
    pca_components: int = 32
    whiten: bool = False
    n_init: int = 10
    seed: int = 0
    silhouette_sample: int = 3000

    def validate(self) -> ClusterConfig:
        if self.k != AUTO and (not isinstance(self.k, int) or self.k < 2):
            raise ValueError(f"k must be an integer >= 2 or 'auto'. Received: k={self.k!r}")
        low, high = self.k_range
        if low < 2 or high < low:
            raise ValueError(f"k_range must be (low, high) with 2 <= low <= high. "
                             f"Received: k_range={self.k_range!r}")
        if self.pca_components < 0:
            raise ValueError(f"pca_components must be >= 0. Received: {self.pca_components}")
        return self


@dataclass
class Clustering:
    """What `cluster_features` found.

    Attributes:
        assignments: cluster id of every item (0..k-1).
        distances: distance of every item to its cluster centre (in the clustered space).
        k: the number of clusters.
        silhouettes: silhouette score by k tried (empty when k was given).
        space: the clustered vectors (after normalisation and PCA).
    """

    assignments: np.ndarray
    distances: np.ndarray
    k: int
    silhouettes: dict[int, float] = field(default_factory=dict)
    space: np.ndarray | None = None


def l2_normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def prepare(features: np.ndarray, config: ClusterConfig) -> np.ndarray:
    """The space k-means runs in: normalised, projected and whitened as configured."""
    from sklearn.decomposition import PCA

    x = np.asarray(features, np.float64)
    if x.ndim != 2 or len(x) < 3:
        raise ValueError(f"Clustering needs at least 3 feature vectors of shape (n, d). "
                         f"Received: shape {x.shape}")
    if config.l2_normalise:
        x = l2_normalise(x)
    components = min(config.pca_components, len(x) - 1, x.shape[1])
    if config.pca_components and components >= 2:
        x = PCA(components, whiten=config.whiten, random_state=config.seed).fit_transform(x)
        if config.l2_normalise:
            x = l2_normalise(x)
    return x


def kmeans(x: np.ndarray, k: int, config: ClusterConfig):
    """A fitted scikit-learn KMeans with `k` clusters."""
    from sklearn.cluster import KMeans

    return KMeans(k, n_init=config.n_init, random_state=config.seed).fit(x)


def silhouette_by_k(x: np.ndarray, config: ClusterConfig) -> dict[int, float]:
    """The silhouette score of k-means for every k of `config.k_range` (capped at n - 1)."""
    from sklearn.metrics import silhouette_score

    low, high = config.k_range
    scores = {}
    for k in range(low, min(high, len(x) - 1) + 1):
        labels = kmeans(x, k, config).labels_
        if len(set(labels)) < 2:
            continue
        scores[k] = float(silhouette_score(
            x, labels, sample_size=min(config.silhouette_sample, len(x)),
            random_state=config.seed))
        logger.info("k=%d: silhouette %.4f", k, scores[k])
    if not scores:
        raise ValueError(f"No k in {config.k_range} could be tried on {len(x)} items.")
    return scores


def cluster_features(features: np.ndarray, config: ClusterConfig | None = None) -> Clustering:
    """Clusters feature vectors (see the module docstring).

    Args:
        features: (n, d) features, e.g. `Embeddings.features`.
        config: the clustering settings (default `ClusterConfig()`).

    Returns:
        The Clustering.
    """
    config = (config or ClusterConfig()).validate()
    x = prepare(features, config)
    silhouettes = {}
    k = config.k
    if k == AUTO:
        silhouettes = silhouette_by_k(x, config)
        k = max(silhouettes, key=silhouettes.get)
        logger.info("Chose k=%d by silhouette (%.4f)", k, silhouettes[k])
    elif k > len(x):
        raise ValueError(f"k={k} clusters need at least {k} items; there are {len(x)}.")
    model = kmeans(x, k, config)
    distances = np.linalg.norm(x - model.cluster_centers_[model.labels_], axis=1)
    return Clustering(model.labels_.astype(np.int64), distances, int(k), silhouettes, x)


def near_duplicates(features: np.ndarray, threshold: float = 0.95, limit: int = 1000,
                    block: int = 1024) -> list[tuple[int, int, float]]:
    """Pairs (i, j, cosine) with i < j and cosine similarity >= `threshold`, best first.

    Args:
        features: (n, d) features (normalised here).
        threshold: the smallest cosine similarity listed.
        limit: at most this many pairs are returned (the most similar).
        block: rows compared at once (memory: block x n floats).
    """
    if not -1.0 <= threshold <= 1.0:
        raise ValueError(f"A cosine threshold lies in [-1, 1]. Received: {threshold}")
    x = l2_normalise(np.asarray(features, np.float32))
    pairs = []
    for start in range(0, len(x), block):
        sims = x[start:start + block] @ x.T
        rows, cols = np.nonzero(sims >= threshold)
        keep = cols > rows + start
        for r, c in zip(rows[keep], cols[keep]):
            pairs.append((int(r + start), int(c), float(sims[r, c])))
    pairs.sort(key=lambda p: -p[2])
    return pairs[:limit]
