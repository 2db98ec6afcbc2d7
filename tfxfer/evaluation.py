"""Test-set evaluation: accuracy, per-class precision/recall/F1, confusion matrix.

Accuracy carries its 95% Wilson interval and macro F1 a 95% bootstrap interval
(`tfxfer.utils.stats`), in the printed table and in metrics.json.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from tfxfer.data.pipeline import single_pass
from tfxfer.utils.stats import bootstrap_interval, format_interval, wilson_interval


@dataclass
class Evaluation:
    """Predictions on a labelled split and the metrics derived from them.

    Attributes:
        class_names: label strings, indexed by class id.
        y_true: true class ids.
        y_prob: predicted probabilities, shape (examples, classes).
    """

    class_names: list[str]
    y_true: np.ndarray
    y_prob: np.ndarray

    @property
    def y_pred(self) -> np.ndarray:
        return self.y_prob.argmax(axis=1)

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.y_pred == self.y_true)) if len(self.y_true) else float("nan")

    @property
    def accuracy_interval(self) -> tuple[float, float]:
        """The 95% Wilson interval of the accuracy."""
        return wilson_interval(int(np.sum(self.y_pred == self.y_true)), len(self.y_true))

    @property
    def confusion(self) -> np.ndarray:
        return confusion_matrix(self.y_true, self.y_pred, len(self.class_names))

    @property
    def macro_f1(self) -> float:
        return macro_f1(self.y_true, self.y_pred, len(self.class_names))

    def macro_f1_interval(self) -> tuple[float, float]:
        """The 95% bootstrap interval of the macro F1 (1,000 resamples of the examples)."""
        classes = len(self.class_names)
        return bootstrap_interval(lambda t, p: macro_f1(t, p, classes), self.y_true, self.y_pred)

    def per_class(self) -> list[dict]:
        """Precision, recall, F1 and support of every class."""
        return per_class_metrics(self.confusion, self.class_names)

    def table(self) -> str:
        """Accuracy and a per-class table, as `tfxfer train` prints them."""
        lines = [f"test accuracy: {format_interval(self.accuracy, self.accuracy_interval, 4)} "
                 f"(95% interval; {len(self.y_true)} examples)",
                 f"{'class':<20} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>8}"]
        lines += [f"{r['class']:<20} {r['precision']:>9.3f} {r['recall']:>9.3f} "
                  f"{r['f1']:>9.3f} {r['support']:>8d}" for r in self.per_class()]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "accuracy": self.accuracy,
            "accuracy_interval": list(self.accuracy_interval),
            "examples": int(len(self.y_true)),
            "macro_f1": self.macro_f1,
            "macro_f1_interval": list(self.macro_f1_interval()),
            "interval_level": 0.95,
            "per_class": self.per_class(),
            "confusion_matrix": self.confusion.tolist(),
            "class_names": self.class_names,
        }


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts, rows = true class, columns = predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return matrix


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> float:
    """The unweighted mean of the per-class F1 scores."""
    counts = np.bincount(np.asarray(y_true) * num_classes + np.asarray(y_pred),
                         minlength=num_classes * num_classes)
    rows = per_class_metrics(counts.reshape(num_classes, num_classes), range(num_classes))
    return float(np.mean([r["f1"] for r in rows]))


def per_class_metrics(confusion: np.ndarray, class_names: Sequence[str]) -> list[dict]:
    """Precision, recall and F1 per class from a confusion matrix (0 where undefined)."""
    tp = np.diag(confusion).astype(float)
    predicted = confusion.sum(axis=0)
    support = confusion.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return [
        {"class": name, "precision": float(p), "recall": float(r), "f1": float(f),
         "support": int(s)}
        for name, p, r, f, s in zip(class_names, precision, recall, f1, support)
    ]


def inference_function(model: keras.Model, training: bool = False):
    """`model` as a compiled function of one batch, run on the default device.

    Unlike `predict`/`predict_on_batch`, it does not split batches across the replicas
    of a tf.distribute strategy, which Keras 3.15 gets wrong for uneven or empty
    per-replica batches; mirrored variables are read from their primary copy.
    """
    return tf.function(lambda x: model(x, training=training),
                       input_signature=batch_signature(model))


def batch_signature(model: keras.Model) -> list[tf.TensorSpec]:
    """The input signature of a function of one batch of `model`'s (single) input."""
    spec = model.inputs[0]
    return [tf.TensorSpec([None, *spec.shape[1:]], spec.dtype)]


def predict_dataset(model: keras.Model, ds: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Runs `model` over batched (inputs, labels) in order; returns (labels, probabilities)."""
    predict = inference_function(model)
    labels, probs = [], []
    for inputs, y in single_pass(ds):
        probs.append(np.asarray(predict(inputs)))
        labels.append(y.numpy())
    if not labels:
        raise ValueError("Cannot evaluate on an empty dataset.")
    return np.concatenate(labels).astype(np.int64), np.concatenate(probs)


def evaluate(model: keras.Model, ds: tf.data.Dataset, class_names: Sequence[str]) -> Evaluation:
    """Predicts a labelled split and returns its Evaluation."""
    y_true, y_prob = predict_dataset(model, ds)
    return Evaluation(list(class_names), y_true, y_prob)
