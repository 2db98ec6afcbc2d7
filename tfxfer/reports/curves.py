"""Learning curves: loss and accuracy per epoch, train and validation, phases marked."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from tfxfer.reports.plotting import new_figure, save_figure

# (title, training column, validation column)
_PANELS = (("Loss", "loss", "val_loss"), ("Accuracy", "accuracy", "val_accuracy"))
_BOUNDARY = "#444444"


def phase_boundaries(phases: Sequence[dict]) -> list[float]:
    """x positions between consecutive phases: half an epoch before each later phase."""
    run = [p for p in phases if p.get("epochs_run", 0) > 0]
    return [p["first_epoch"] - 0.5 for p in run[1:]]


def learning_curves_figure(history: Sequence[dict], phases: Sequence[dict]) -> Figure:
    """Loss and accuracy curves with the boundary between phases.

    Each later phase starts at a dashed vertical line and is lightly shaded;
    every phase is named ("phase 2: fine_tune") above its span.

    Args:
        history: history.csv rows (`epoch` and metric columns).
        phases: phases.json records (`name`, `first_epoch`, `epochs_run`).

    Returns:
        The figure, with one panel for loss and one for accuracy.
    """
    epochs = [row["epoch"] for row in history]
    figure = new_figure(10, 3.8)
    for ax, (title, train_key, val_key) in zip(figure.subplots(1, 2), _PANELS):
        for key, label, style in ((train_key, "train", "-"), (val_key, "validation", "--")):
            points = [(row["epoch"], row[key]) for row in history if key in row]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, style, marker="o", markersize=4, label=label)
        _mark_phases(ax, phases)
        ax.set_title(title, pad=16)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if epochs:
            ax.set_xlim(min(epochs) - 0.6, max(epochs) + 0.6)
            ax.xaxis.get_major_locator().set_params(integer=True)
        if ax.lines:
            ax.legend(loc="best", fontsize=9)
    return figure


def plot_learning_curves(history: Sequence[dict], phases: Sequence[dict], path: Path) -> Path:
    """Writes `learning_curves_figure(history, phases)` as a PNG at `path`; returns `path`."""
    return save_figure(learning_curves_figure(history, phases), path)


def _mark_phases(ax, phases: Sequence[dict]) -> None:
    for x in phase_boundaries(phases):
        ax.axvline(x, color=_BOUNDARY, linestyle="--", linewidth=1.5)
    run = [p for p in phases if p.get("epochs_run", 0) > 0]
    for i, phase in enumerate(run):
        start = phase["first_epoch"] - 0.5
        end = start + phase["epochs_run"]
        if i % 2 == 1:
            ax.axvspan(start, end, color=_BOUNDARY, alpha=0.07, linewidth=0)
        ax.text((start + end) / 2, 1.01, f"phase {i + 1}: {phase['name']}",
                transform=ax.get_xaxis_transform(), ha="center", va="bottom", fontsize=9,
                color=_BOUNDARY)
