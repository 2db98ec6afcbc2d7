"""Confusion matrix plot (counts, row-normalised shading) and the most confused pairs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tfxfer.reports.plotting import new_figure, save_figure, shorten

# Above this many classes the cells are too small for their counts.
_MAX_ANNOTATED = 30


def row_normalise(matrix: np.ndarray) -> np.ndarray:
    """Each row divided by its sum: the share of a true class given each prediction."""
    matrix = np.asarray(matrix, dtype=float)
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)


def plot_confusion_matrix(matrix: np.ndarray, class_names: Sequence[str], path: Path) -> Path:
    """Draws the confusion matrix: shading by row share, each cell labelled with its count.

    Args:
        matrix: counts, rows = true class, columns = predicted class.
        class_names: label of each row and column.
        path: the PNG to write.

    Returns:
        `path`.
    """
    matrix = np.asarray(matrix)
    n = len(class_names)
    shares = row_normalise(matrix)
    side = min(max(4.5, 0.55 * n + 2.5), 24)
    figure = new_figure(side + 1.2, side)
    ax = figure.subplots()
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    colorbar = figure.colorbar(image, ax=ax, shrink=0.8)
    colorbar.set_label("share of the true class")
    labels = [shorten(name, 24) for name in class_names]
    fontsize = 10 if n <= 10 else 8 if n <= 20 else 6
    ax.set_xticks(range(n), labels, rotation=45, ha="right", rotation_mode="anchor",
                  fontsize=fontsize)
    ax.set_yticks(range(n), labels, fontsize=fontsize)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"Confusion matrix ({int(matrix.sum())} test examples)")
    if n <= _MAX_ANNOTATED:
        for (i, j), count in np.ndenumerate(matrix):
            ax.text(j, i, str(int(count)), ha="center", va="center", fontsize=fontsize,
                    color="white" if shares[i, j] > 0.5 else "black")
    return save_figure(figure, path)


def confused_pairs(
    matrix: np.ndarray, class_names: Sequence[str], top: int = 10
) -> list[dict]:
    """The off-diagonal cells with the most examples, largest first.

    Args:
        matrix: counts, rows = true class, columns = predicted class.
        class_names: label of each row and column.
        top: at most this many pairs.

    Returns:
        Dicts with `true`, `predicted`, `count` and `share` (of the true class's
        test examples); pairs with no examples are left out.
    """
    matrix = np.asarray(matrix)
    shares = row_normalise(matrix)
    cells = [
        (int(matrix[i, j]), float(shares[i, j]), i, j)
        for i in range(len(matrix)) for j in range(len(matrix))
        if i != j and matrix[i, j] > 0
    ]
    cells.sort(key=lambda c: (-c[0], -c[1], c[2], c[3]))
    return [
        {"true": class_names[i], "predicted": class_names[j], "count": count, "share": share}
        for count, share, i, j in cells[:top]
    ]
