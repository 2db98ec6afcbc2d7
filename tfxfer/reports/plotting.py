"""Figures without pyplot: no global backend, no figure registry to leak.

`matplotlib.figure.Figure` draws through the Agg canvas when saved to PNG, so
reports never touch the user's interactive backend (e.g. in a notebook) and
nothing has to be closed.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

DPI = 100
GREEN = "#1a9850"
RED = "#d73027"


def new_figure(width: float, height: float, layout: str | None = "constrained") -> Figure:
    """A figure of `width` x `height` inches, with constrained layout unless told otherwise."""
    return Figure(figsize=(width, height), layout=layout)


def save_figure(figure: Figure, path: Path) -> Path:
    """Writes `figure` as a PNG at the report resolution."""
    figure.savefig(path, dpi=DPI, format="png")
    return path


def shorten(text: str, width: int) -> str:
    """`text` cut to `width` characters, keeping its start and end around an ellipsis.

    Class names often differ only at the end ("n02085620-Chihuahua"), so both
    ends stay visible.
    """
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]
