"""What an `Experiment` does differently for a task model (called from experiment.py).

    validate_task_config   settings a task model cannot honour, refused by name
    write_task_setup       config.json, outputs.json, data_summary.json, splits.csv
    evaluate_task_run      thresholds on validation, test metrics, predictions, plots

A task run directory holds, besides history.csv and phases.json:

    outputs.json      every output: task, column, classes/tags, mean/std, thresholds
    metrics.json      {"outputs": {name: metrics}} on the test split
    predictions.csv   input, then per output: true and predicted value, probabilities
    <name>_scatter.png, <name>_residuals.png   regression outputs
    labels.txt        empty (there is no single list of classes)
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import keras
import numpy as np

from tfxfer.config import RunConfig
from tfxfer.tasks.evaluation import (
    TaskEvaluation,
    point_predictions,
    predict_outputs,
    with_thresholds,
)
from tfxfer.tasks.losses import CLASSIFICATION, REGRESSION
from tfxfer.tasks.outputs import Output, write_outputs
from tfxfer.tasks.plots import regression_figures
from tfxfer.tasks.table import TaskSplits

logger = logging.getLogger(__name__)


def validate_task_config(config: RunConfig) -> None:
    """Raises ValueError for settings a task model does not support (yet)."""
    train = config.train
    refused = {
        "train.strategy='auto' (the advisor scores class separability)":
            train.strategy == "auto",
        "train.strategy='domain_adaptation'": train.strategy == "domain_adaptation",
        "train.learning_rate='auto'": train.learning_rate == "auto",
        "model.image.feature_layer": bool(config.model.image and
                                          config.model.image.feature_layer),
    }
    if config.data.label_names:
        logger.warning("data.label_names is not applied to task outputs: their classes are the "
                       "values of their columns.")
    bad = [name for name, hit in refused.items() if hit]
    if bad:
        raise ValueError(
            "A task model (data.target / --target) does not support: " + "; ".join(bad)
            + ". Choose a strategy (feature_extraction, fine_tune, fine_tune_all, "
            "from_scratch) and a numeric learning rate.")


def write_task_setup(run_dir: Path, config: RunConfig, splits: TaskSplits) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    (run_dir / "labels.txt").write_text("")
    (run_dir / "data_summary.json").write_text(json.dumps(splits.summary(), indent=2) + "\n")
    write_outputs(run_dir, splits.outputs)
    if splits.modality in ("image", "audio"):  # inputs are files
        _write_csv(run_dir / "splits.csv", [{"split": s, "path": p}
                                            for s, paths in splits.inputs.items() for p in paths])


def _write_csv(path: Path, rows: list[dict]) -> None:
    import csv

    fields = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def _prediction_columns(output: Output, y: np.ndarray, p: np.ndarray) -> dict:
    """The predictions.csv cells of one output for one example ("" when unlabelled)."""
    n = output.name
    if output.task == REGRESSION:
        return {f"{n}_true": "" if not np.isfinite(y) else float(y),
                f"{n}_value": round(float(np.reshape(p, -1)[0]), 6)}
    if output.task == CLASSIFICATION:
        return {f"{n}_true": output.names[int(y)] if y >= 0 else "",
                f"{n}_predicted": output.names[int(np.argmax(p))],
                **{f"{n}_p_{c}": round(float(v), 6) for c, v in zip(output.names, p)}}
    chosen = [t for t, v, th in zip(output.names, p, output.thresholds) if v >= th]
    true = [t for t, v in zip(output.names, y) if v == 1] if np.all(np.isfinite(y)) else None
    return {f"{n}_true": "" if true is None else "|".join(true),
            f"{n}_predicted": "|".join(chosen),
            **{f"{n}_p_{t}": round(float(v), 6) for t, v in zip(output.names, p)}}


def evaluate_task_run(model: keras.Model, splits: TaskSplits, config: RunConfig,
                      run_dir: Path) -> TaskEvaluation | None:
    """Chooses multilabel thresholds on validation, then evaluates the test split.

    Writes outputs.json (with the thresholds), and with a test split metrics.json,
    predictions.csv and the regression plots.
    """
    val = splits.batches("val", config.data)
    splits.outputs = with_thresholds(splits.outputs, model, val)
    write_outputs(run_dir, splits.outputs)
    test = splits.batches("test", config.data)
    if test is None:
        return None
    y_true, y_pred = predict_outputs(model, test)
    y_pred = point_predictions(splits.outputs, y_pred)
    evaluation = TaskEvaluation(splits.outputs, y_true, y_pred)
    (run_dir / "metrics.json").write_text(json.dumps(evaluation.to_dict(), indent=2) + "\n")
    inputs = splits.inputs.get("test", [])
    rows = []
    for i in range(len(next(iter(y_true.values())))):
        row = {"input": inputs[i]} if len(inputs) == len(next(iter(y_true.values()))) else {}
        for output in splits.outputs:
            row.update(_prediction_columns(output, y_true[output.name][i],
                                           y_pred[output.name][i]))
        rows.append(row)
    _write_csv(run_dir / "predictions.csv", rows)
    for output in splits.outputs:
        mask = evaluation.rows(output)
        if output.task == REGRESSION and mask.sum() > 1:
            regression_figures(output.name, y_true[output.name][mask],
                               y_pred[output.name][mask], run_dir)
    logger.info("Test evaluation:\n%s", evaluation.table())
    return evaluation

