"""95% intervals for reported scores: Wilson for proportions, bootstrap otherwise.

A test split of a few hundred examples measures accuracy to a few points; every
score tfxfer reports carries its interval so that a difference smaller than it is
not read as a result.

    wilson_interval(151, 180)            # accuracy 0.839 -> (0.778, 0.885)
    bootstrap_interval(macro_f1, y_true, y_pred)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

Z_95 = 1.959963984540054  # the standard normal's 97.5% quantile
BOOTSTRAP_SAMPLES = 1000


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95% by default).

    Unlike the normal approximation p ± z·se, it stays inside [0, 1] and keeps its
    coverage for small splits and proportions near 0 or 1 (Brown, Cai & DasGupta 2001).

    Raises:
        ValueError: `trials` < 1 or `successes` outside [0, trials].
    """
    if trials < 1 or not 0 <= successes <= trials:
        raise ValueError(f"Expected 0 <= successes <= trials and trials >= 1. "
                         f"Received: successes={successes}, trials={trials}")
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap_interval(
    metric: Callable[..., float], *arrays: np.ndarray, samples: int = BOOTSTRAP_SAMPLES,
    seed: int = 0, level: float = 0.95,
) -> tuple[float, float]:
    """The percentile bootstrap interval of `metric(*arrays)` over resampled rows.

    Args:
        metric: a score of aligned arrays (e.g. y_true, y_pred).
        *arrays: arrays with the same first dimension (the examples).
        samples: bootstrap resamples.
        seed: the resampling seed (the interval is repeatable).
        level: the coverage.

    Raises:
        ValueError: no arrays, arrays of different lengths, or no examples.
    """
    sizes = {len(a) for a in arrays}
    if len(sizes) != 1 or 0 in sizes:
        raise ValueError(f"Expected aligned, non-empty arrays. Received lengths: "
                         f"{[len(a) for a in arrays]}")
    n = sizes.pop()
    rng = np.random.default_rng(seed)
    scores = [metric(*(a[idx] for a in arrays))
              for idx in rng.integers(0, n, size=(samples, n))]
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(scores, [tail, 100 - tail])
    return float(low), float(high)


def format_interval(value: float, interval: tuple[float, float], digits: int = 3) -> str:
    """`0.839 [0.778, 0.885]`."""
    return f"{value:.{digits}f} [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"
