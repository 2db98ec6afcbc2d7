"""Report parts of a domain-adaptation run: adaptation curves and a 2-D feature projection.

    adaptation.png          per epoch: source validation accuracy, target test accuracy,
                            domain-classifier accuracy (0.5 is chance) and λ
    feature_projection.png  PCA of pooled source and target features, before and after
                            adaptation (the paper's Figure: the clouds should overlap after)
    reverse_validation.json the λ candidates' reverse-validation scores and the choice
                            (`adaptation.lambda_max: auto`), shown as a table
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from tfxfer.reports.html import _table
from tfxfer.reports.plotting import new_figure, save_figure

ADAPTATION_PLOT = "adaptation.png"
PROJECTION_PLOT = "feature_projection.png"
FEATURES_FILE = "adaptation_features.npz"
REVERSE_VALIDATION = "reverse_validation.json"

# (history column, legend label, line style)
_CURVES = (
    ("val_accuracy", "source validation accuracy", "-"),
    ("target_accuracy", "target test accuracy", "-"),
    ("domain_accuracy", "domain-classifier accuracy", "--"),
)


def adaptation_figure(history: Sequence[dict]) -> Figure:
    """Accuracies (source, target, domain) and λ per epoch."""
    figure = new_figure(10, 3.6)
    accuracy_ax, lambda_ax = figure.subplots(1, 2)
    for key, label, style in _CURVES:
        points = [(row["epoch"], row[key]) for row in history if row.get(key) not in (None, "")]
        if points:
            accuracy_ax.plot(*zip(*points), style, marker="o", markersize=4, label=label)
    accuracy_ax.axhline(0.5, color="#888888", linewidth=1, linestyle=":")
    accuracy_ax.set_title("Accuracy (dotted: domain chance)")
    accuracy_ax.set_ylim(0, 1.02)
    accuracy_ax.legend(loc="best", fontsize=9)
    points = [(r["epoch"], r["lambda"]) for r in history if r.get("lambda") not in (None, "")]
    if points:
        lambda_ax.plot(*zip(*points), marker="o", markersize=4, color="#7b3294")
    lambda_ax.set_title("λ (gradient reversal) at the end of each epoch")
    for ax in (accuracy_ax, lambda_ax):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    return figure


def pca_2d(*groups: np.ndarray) -> list[np.ndarray]:
    """Projects every group on the two principal axes of all groups together."""
    stacked = np.concatenate([g.reshape(len(g), -1) for g in groups]).astype(np.float64)
    mean = stacked.mean(axis=0)
    _, _, vt = np.linalg.svd(stacked - mean, full_matrices=False)
    axes = vt[:2].T
    return [(g.reshape(len(g), -1) - mean) @ axes for g in groups]


def projection_figure(
    panels: Mapping[str, tuple[np.ndarray, np.ndarray]], names: tuple[str, str] = (
        "source", "target")
) -> Figure:
    """One PCA panel per title: source features in blue, target features in red."""
    figure = new_figure(5 * len(panels), 4.4)
    axes = np.atleast_1d(figure.subplots(1, len(panels)))
    for ax, (title, (source, target)) in zip(axes, panels.items()):
        projected_source, projected_target = pca_2d(source, target)
        ax.scatter(*projected_source.T, s=6, alpha=0.5, color="#2166ac", label=names[0])
        ax.scatter(*projected_target.T, s=6, alpha=0.5, color="#b2182b", label=names[1])
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(loc="best", fontsize=9, markerscale=3)
    return figure


def add_adaptation(run_dir: Path, history: Sequence[dict], figures: dict[str, Path]) -> None:
    """Adds the adaptation plots of a run to `figures` (caption -> PNG), when it adapted."""
    if not any("domain_accuracy" in row for row in history):
        return
    figures["Domain adaptation: accuracies and λ per epoch"] = save_figure(
        adaptation_figure(history), run_dir / ADAPTATION_PLOT
    )
    path = run_dir / FEATURES_FILE
    if path.is_file():
        with np.load(path) as f:
            panels = {
                title: (f[f"source_{when}"], f[f"target_{when}"])
                for when, title in (("before", "before adaptation (the initial model)"),
                                    ("after", "after adaptation"))
                if f"source_{when}" in f.files
            }
        figures["Domain adaptation: PCA of source vs target features"] = save_figure(
            projection_figure(panels), run_dir / PROJECTION_PLOT
        )


def reverse_validation_section(run_dir: str | Path) -> str:
    """HTML table of reverse_validation.json ('' when the run has none)."""
    path = Path(run_dir) / REVERSE_VALIDATION
    if not path.is_file():
        return ""
    result = json.loads(path.read_text())
    features = result.get("features", "pooling")  # files written before features were searched
    rows = [(c.get("features", features), c["lambda_max"], c["reverse_accuracy"],
             c["forward_val_accuracy"], c["forward_domain_accuracy"],
             c["reverse_domain_accuracy"], " ".join(str(n) for n in c["pseudo_label_counts"]))
            for c in result["candidates"]]
    table = _table(("domain head reads", "λ ceiling", "reverse accuracy (the score)",
                    "forward source val accuracy", "forward domain accuracy",
                    "reverse domain accuracy", "pseudo-labels per class"), rows)
    return (f"<h2>Reverse validation of λ</h2><p>Chosen: <b>λ = {result['choice']:g}</b>, "
            f"the domain head reading <b>{features}</b>. "
            f"Each candidate trained a forward DANN (labelled source + unlabelled target) and "
            f"a reverse DANN (pseudo-labelled target + source with labels hidden), "
            f"{result['steps']} steps each (the run: {result['run_steps']}), on "
            f"{result['target_examples']} target images; the score is the reverse "
            f"classifier's accuracy on the {result['source_val_examples']} source validation "
            f"examples. No target label was used ({result['seconds']:.0f} s).</p>"
            f"{table}")
