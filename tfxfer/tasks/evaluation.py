"""Evaluation of a task model, per output, over the rows that have that output's label.

    classification  accuracy, per-class precision/recall/F1, confusion (`tfxfer.evaluation`)
    multilabel      per-tag precision/recall/F1/support at the tag's threshold, micro and
                    macro F1; thresholds are chosen on validation (`choose_thresholds`)
    regression      MAE, RMSE, Spearman's rank correlation, R^2, and the MAE of always
                    predicting the training mean (for scale)

Every score is reported with its 95% interval (`NAME_interval`): Wilson for accuracy,
the percentile bootstrap over test rows (`tfxfer.utils.stats`) for F1, MAE, RMSE and
Spearman.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf
from scipy.stats import spearmanr

from tfxfer.data.pipeline import single_pass
from tfxfer.evaluation import Evaluation, batch_signature
from tfxfer.tasks.losses import CLASSIFICATION, MULTILABEL, REGRESSION, distribution_point
from tfxfer.tasks.outputs import DEFAULT_THRESHOLD, Output
from tfxfer.utils.stats import bootstrap_interval, format_interval

# Candidate multilabel thresholds.
THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.05), 2)


def predict_outputs(model: keras.Model, ds: tf.data.Dataset
                    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Runs `model` over batched (inputs, targets) in order: (targets, predictions) by output."""
    predict = tf.function(lambda x: model(x, training=False),
                          input_signature=batch_signature(model))
    targets: dict[str, list] = {}
    predictions: dict[str, list] = {}
    for inputs, y in single_pass(ds):
        for name, value in predict(inputs).items():
            predictions.setdefault(name, []).append(np.asarray(value, np.float32))
        for name, value in y.items():
            targets.setdefault(name, []).append(value.numpy())
    if not targets:
        raise ValueError("Cannot evaluate on an empty dataset.")
    return ({k: np.concatenate(v) for k, v in targets.items()},
            {k: np.concatenate(v) for k, v in predictions.items()})


def point_predictions(outputs: list[Output], y_pred: dict[str, np.ndarray]
                      ) -> dict[str, np.ndarray]:
    """Predictions with a distribution head's probabilities replaced by its answer."""
    points = dict(y_pred)
    for output in outputs:
        if output.distribution:  # the export's own answer (`losses.distribution_point`)
            points[output.name] = distribution_point(output.values, y_pred[output.name],
                                                     output.answer).numpy()
    return points


def labelled(output: Output, y: np.ndarray) -> np.ndarray:
    """Which rows have a label for `output`."""
    if output.task == CLASSIFICATION:
        return y >= 0
    if output.task == MULTILABEL:
        return np.all(np.isfinite(y), axis=-1)
    return np.isfinite(y)


def _mae(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean(np.abs(p - y)))


def _rmse(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.sqrt(np.mean((p - y) ** 2)))


def _spearman(y: np.ndarray, p: np.ndarray) -> float:
    if len(y) < 2 or np.ptp(p) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(y, p).statistic)


def _intervals(metrics: dict, *arrays: np.ndarray) -> dict:
    """{NAME_interval: the bootstrap interval of metric NAME} for NAME -> function."""
    return {f"{name}_interval": list(bootstrap_interval(metric, *arrays))
            for name, metric in metrics.items()}


def regression_metrics(y: np.ndarray, p: np.ndarray, train_mean: float) -> dict:
    y, p = np.asarray(y, np.float64), np.asarray(p, np.float64).reshape(-1)
    error = p - y
    total = np.sum((y - y.mean()) ** 2)
    scored = {"mae": _mae, "rmse": _rmse}
    if np.ptp(p) > 0 and np.ptp(y) > 0:
        scored["spearman"] = _spearman
    return {
        "mae": _mae(y, p),
        "rmse": _rmse(y, p),
        "spearman": _spearman(y, p),
        **_intervals(scored, y, p),
        "interval_level": 0.95,
        "r2": float(1 - np.sum(error ** 2) / total) if total > 0 else float("nan"),
        "mae_of_train_mean": float(np.mean(np.abs(y - train_mean))),
        "examples": int(len(y)),
    }


def _prf(y: np.ndarray, predicted: np.ndarray) -> tuple[float, float, float]:
    tp = float(np.sum(predicted & y))
    precision = tp / max(float(np.sum(predicted)), 1.0)
    recall = tp / max(float(np.sum(y)), 1.0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def choose_thresholds(y: np.ndarray, p: np.ndarray) -> list[float]:
    """Per tag, the threshold of `THRESHOLDS` with the best F1 on (validation) `y`, `p`.

    Ties go to the threshold nearest 0.5; a tag without a positive keeps 0.5.
    """
    y = y.astype(bool)
    chosen = []
    for j in range(y.shape[1]):
        if not y[:, j].any():
            chosen.append(DEFAULT_THRESHOLD)
            continue
        scores = [(_prf(y[:, j], p[:, j] >= t)[2], -abs(t - 0.5), t) for t in THRESHOLDS]
        chosen.append(float(max(scores)[2]))
    return chosen


def _micro_f1(y: np.ndarray, predicted: np.ndarray) -> float:
    return _prf(y.reshape(-1), predicted.reshape(-1))[2]


def _macro_f1(y: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.mean([_prf(y[:, j], predicted[:, j])[2] for j in range(y.shape[1])]))


def multilabel_metrics(y: np.ndarray, p: np.ndarray, names: list[str],
                       thresholds: list[float]) -> dict:
    y = y.astype(bool)
    predicted = p >= np.asarray(thresholds)[None, :]
    rows = []
    for j, name in enumerate(names):
        precision, recall, f1 = _prf(y[:, j], predicted[:, j])
        rows.append({"label": name, "precision": precision, "recall": recall, "f1": f1,
                     "support": int(y[:, j].sum()), "threshold": float(thresholds[j])})
    micro = _prf(y.reshape(-1), predicted.reshape(-1))
    return {
        "micro_precision": micro[0], "micro_recall": micro[1], "micro_f1": micro[2],
        "macro_f1": _macro_f1(y, predicted),
        **_intervals({"micro_f1": _micro_f1, "macro_f1": _macro_f1}, y, predicted),
        "interval_level": 0.95,
        "exact_match": float(np.mean(np.all(predicted == y, axis=1))),
        "examples": int(len(y)),
        "per_label": rows,
    }


@dataclass
class TaskEvaluation:
    """Every output's targets and predictions on one split, and their metrics.

    Attributes:
        outputs: the model's outputs (multilabel thresholds set).
        y_true, y_pred: output name -> targets (missing encoded) / predictions.
    """

    outputs: list[Output]
    y_true: dict[str, np.ndarray]
    y_pred: dict[str, np.ndarray]

    def rows(self, output: Output) -> np.ndarray:
        return labelled(output, self.y_true[output.name])

    def metrics(self, output: Output) -> dict:
        mask = self.rows(output)
        y, p = self.y_true[output.name][mask], self.y_pred[output.name][mask]
        if not len(y):
            return {"examples": 0}
        if output.task == REGRESSION:
            return regression_metrics(y, p, output.mean)
        if output.task == MULTILABEL:
            return multilabel_metrics(y, p, output.names, output.thresholds
                                      or [DEFAULT_THRESHOLD] * len(output.names))
        return Evaluation(output.names, y.astype(np.int64), p).to_dict()

    def to_dict(self) -> dict:
        return {"outputs": {o.name: {"task": o.task, "column": o.column, **self.metrics(o)}
                            for o in self.outputs}}

    def table(self) -> str:
        """One block per output, as the apps print them."""
        lines = []
        for output in self.outputs:
            m = self.metrics(output)
            head = f"{output.name} ({output.task}, {m.get('examples', 0)} labelled examples)"
            if output.task == REGRESSION and m.get("examples"):
                lines.append(f"{head}: MAE {_shown(m, 'mae')}, RMSE {_shown(m, 'rmse')}, "
                             f"Spearman {_shown(m, 'spearman')}, R^2 {m['r2']:.4f} "
                             f"(MAE of the training mean: {m['mae_of_train_mean']:.4f})")
            elif output.task == MULTILABEL and m.get("examples"):
                lines.append(f"{head}: micro F1 {_shown(m, 'micro_f1')}, macro F1 "
                             f"{_shown(m, 'macro_f1')}, exact match {m['exact_match']:.4f}")
                lines += [f"  {r['label']:<18} precision {r['precision']:.3f} recall "
                          f"{r['recall']:.3f} f1 {r['f1']:.3f} support {r['support']} "
                          f"threshold {r['threshold']:.2f}" for r in m["per_label"]]
            elif m.get("examples"):
                lines.append(f"{head}: accuracy {_shown(m, 'accuracy')}, macro F1 "
                             f"{_shown(m, 'macro_f1')}")
            else:
                lines.append(f"{head}: no labelled example")
        return "\n".join(lines)


def _shown(metrics: dict, name: str) -> str:
    """`0.9733 [0.948, 0.986]`: a score with its 95% interval when it has one."""
    interval = metrics.get(f"{name}_interval")
    if interval is None:
        return f"{metrics[name]:.4f}"
    return format_interval(metrics[name], interval, digits=4)


def with_thresholds(outputs: list[Output], model: keras.Model,
                    val_ds: tf.data.Dataset | None) -> list[Output]:
    """`outputs` with every multilabel output's thresholds chosen on validation (0.5 without)."""
    if not any(o.task == MULTILABEL for o in outputs):
        return outputs
    y_true, y_pred = predict_outputs(model, val_ds) if val_ds is not None else ({}, {})
    chosen = []
    for output in outputs:
        if output.task == MULTILABEL:
            if output.name in y_true:
                mask = labelled(output, y_true[output.name])
                thresholds = choose_thresholds(y_true[output.name][mask],
                                               y_pred[output.name][mask])
            else:
                thresholds = [DEFAULT_THRESHOLD] * len(output.names)
            output = dataclasses.replace(output, thresholds=thresholds)
        chosen.append(output)
    return chosen
