"""Plots of a task model's test predictions: regression scatter and residuals."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfxfer.reports.plotting import new_figure, save_figure


def regression_figures(name: str, y: np.ndarray, p: np.ndarray, run_dir: Path) -> list[Path]:
    """Writes <name>_scatter.png (predicted vs true) and <name>_residuals.png."""
    y, p = np.asarray(y, float), np.asarray(p, float).reshape(-1)
    low, high = float(min(y.min(), p.min())), float(max(y.max(), p.max()))
    figure = new_figure(5, 5)
    ax = figure.add_subplot()
    ax.scatter(y, p, s=6, alpha=0.3, linewidths=0)
    ax.plot([low, high], [low, high], color="#444444", linestyle="--", linewidth=1)
    ax.set(xlabel=f"true {name}", ylabel=f"predicted {name}", title=f"{name}: predicted vs true")
    scatter = save_figure(figure, run_dir / f"{name}_scatter.png")

    figure = new_figure(9, 4)
    left, right = figure.subplots(1, 2)
    left.scatter(y, p - y, s=6, alpha=0.3, linewidths=0)
    left.axhline(0, color="#444444", linestyle="--", linewidth=1)
    left.set(xlabel=f"true {name}", ylabel="predicted - true", title="residuals")
    right.hist(p - y, bins=40)
    right.set(xlabel="predicted - true", ylabel="examples", title="residual distribution")
    residuals = save_figure(figure, run_dir / f"{name}_residuals.png")
    return [scatter, residuals]
