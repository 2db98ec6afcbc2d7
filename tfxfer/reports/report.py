"""`write_report`: the plots, tables and report.html of a run, from its run directory.

Everything is read back from the files `tfxfer.rundir` wrote, so the same call
serves the end of `tfxfer train` and `tfxfer report RUN_DIR` on a saved run.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np

from tfxfer.continual.evaluation import continual_section
from tfxfer.data.splits import Splits
from tfxfer.modality import TEXT
from tfxfer.reports.adaptation import add_adaptation, reverse_validation_section
from tfxfer.reports.advice import LR_FIND_PLOT, advice_section
from tfxfer.reports.confusion import confused_pairs, plot_confusion_matrix
from tfxfer.reports.curves import plot_learning_curves
from tfxfer.reports.grid import GridCell, plot_prediction_grid, select_examples
from tfxfer.reports.html import ReportParts, render_report
from tfxfer.reports.inputs import InputsUnavailable, load_test_images
from tfxfer.reports.mistakes import most_confident_mistakes
from tfxfer.reports.rundata import RunData, load_run_data
from tfxfer.reports.tensorboard import TENSORBOARD_DIR

logger = logging.getLogger(__name__)

REPORT = "report.html"
LEARNING_CURVES = "learning_curves.png"
CONFUSION_PLOT = "confusion_matrix.png"
PREDICTION_GRID = "prediction_grid.png"
CONFUSED_PAIRS = "confused_pairs.csv"
CONFIDENT_MISTAKES = "confident_mistakes.csv"


def _write_rows(path: Path, rows: list[dict], fields: list[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def _add_confusion(run: RunData, parts: ReportParts) -> None:
    matrix = np.asarray(run.metrics["confusion_matrix"])
    parts.figures["Confusion matrix"] = plot_confusion_matrix(
        matrix, run.class_names, run.run_dir / CONFUSION_PLOT
    )
    parts.confused_pairs = confused_pairs(matrix, run.class_names)
    _write_rows(run.run_dir / CONFUSED_PAIRS, parts.confused_pairs,
                ["true", "predicted", "count", "share"])


def _add_grid(run: RunData, parts: ReportParts, splits: Splits | None) -> None:
    p = run.predictions
    rows = select_examples(p.y_true, p.y_pred, p.confidence)
    try:
        images = load_test_images(run, rows, splits)
    except InputsUnavailable as err:
        logger.warning("No prediction grid for %s: %s", run.run_dir, err)
        parts.notes.append(f"No prediction grid: {err}.")
        return
    names = run.class_names
    cells = [GridCell(image, names[p.y_true[r]], names[p.y_pred[r]], float(p.confidence[r]))
             for r, image in zip(rows, images)]
    parts.figures["Test predictions (green: right, red: wrong)"] = plot_prediction_grid(
        cells, run.run_dir / PREDICTION_GRID
    )


def _add_mistakes(run: RunData, parts: ReportParts) -> None:
    parts.mistakes = most_confident_mistakes(run.predictions, run.class_names)
    if run.predictions.inputs is None:
        parts.notes.append("predictions.csv holds no input column, so the texts are not shown.")
    _write_rows(run.run_dir / CONFIDENT_MISTAKES, parts.mistakes,
                ["row", "input", "true", "predicted", "confidence"])


def write_report(run_dir: str | Path, splits: Splits | None = None) -> Path:
    """Writes the plots, tables and report.html of a run into its directory.

    Learning curves need history.csv; the confusion matrix and most confused
    pairs need metrics.json; the prediction grid (images) or the table of most
    confident mistakes (text) needs predictions.csv. Missing parts are left out.

    Args:
        run_dir: a directory written by `tfxfer train`.
        splits: the run's splits when at hand (during training); image runs
            without file paths (TFDS) otherwise reload the test split for the grid.

    Returns:
        The path of report.html.
    """
    run = load_run_data(run_dir)
    parts = ReportParts()
    if run.history:
        parts.figures["Learning curves"] = plot_learning_curves(
            run.history, run.phases, run.run_dir / LEARNING_CURVES
        )
        add_adaptation(run.run_dir, run.history, parts.figures)
    if run.metrics:
        _add_confusion(run, parts)
    if run.predictions is not None and len(run.predictions):
        if run.modality == TEXT:
            _add_mistakes(run, parts)
        else:
            _add_grid(run, parts, splits)
    if continual := continual_section(run.run_dir, run.metrics):
        parts.sections.append(continual)
    if reverse := reverse_validation_section(run.run_dir):
        parts.sections.append(reverse)
    # --- strategy advice and LR finder (tfxfer.auto.advisor, tfxfer.auto.lr_finder) ---
    if advice := advice_section(run.run_dir):
        parts.sections.append(advice)
    if (run.run_dir / LR_FIND_PLOT).is_file():
        parts.figures["LR finder: loss against learning rate"] = run.run_dir / LR_FIND_PLOT
    # ---
    if (run.run_dir / TENSORBOARD_DIR).is_dir():
        parts.tensorboard_dir = run.run_dir / TENSORBOARD_DIR
    path = run.run_dir / REPORT
    path.write_text(render_report(run, parts), encoding="utf-8")
    logger.info("Report written to %s", path)
    return path
