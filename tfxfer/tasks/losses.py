"""Masked losses and metrics: a row without a target contributes nothing.

A missing target is written into the target itself, so one dataset carries every
output's labels and their masks:

    classification  class id, -1 when missing
    multilabel      a 0/1 vector per row, NaN (the whole row) when missing
    regression      the value, NaN when missing (a distribution head, see below, takes
                    the same target: the loss finds the value's index itself)

Each loss is the mean over the labelled rows of the batch only (0 when a batch has
none): the masked rows are replaced by a harmless target before the per-row loss is
computed and then dropped by `tf.where`, so neither a NaN target nor any prediction
of theirs reaches the loss or its gradient. Metrics are running means over the
labelled rows.

A regression output with a distribution head (`train.regression_loss: distribution`)
predicts probabilities over its target's distinct training values: its loss is the
cross-entropy of the value nearest the target, and its answer (metric, export,
evaluation) is a point of the distribution, `distribution_point`: its median (the lowest
expected absolute error) or its mean (`train.distribution_answer`: no ties between
reviews, so it ranks better).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfxfer.config import DISTRIBUTION_ANSWERS

CLASSIFICATION = "classification"
MULTILABEL = "multilabel"
REGRESSION = "regression"

_EPSILON = 1e-7


def labelled_rows(task: str, y_true) -> tf.Tensor:
    """A bool vector: which rows of `y_true` have a target for `task`."""
    if task == CLASSIFICATION:
        return tf.reshape(tf.cast(y_true, tf.int64), [-1]) >= 0
    y = tf.cast(y_true, tf.float32)
    if task == MULTILABEL:
        return tf.reduce_all(tf.math.is_finite(y), axis=-1)
    return tf.math.is_finite(tf.reshape(y, [-1]))


def distribution_point(values, probabilities, answer: str = "median") -> tf.Tensor:
    """The median or mean of each row's distribution over `values` (sorted): [batch]."""
    probabilities = tf.cast(probabilities, tf.float32)
    support = tf.constant(values, tf.float32)
    if answer == "mean":
        return tf.linalg.matvec(probabilities, support)
    if answer != "median":
        raise ValueError(f"A distribution's answer is one of {DISTRIBUTION_ANSWERS}; "
                         f"received {answer!r}")
    cdf = tf.cumsum(probabilities, axis=-1)
    index = tf.argmax(tf.cast(cdf >= 0.5 - 1e-6, tf.int32), axis=-1)
    return tf.gather(support, index)


def nearest_value(values, y) -> tf.Tensor:
    """The index of the value of `values` nearest each target of `y` [batch]."""
    distance = tf.abs(tf.reshape(y, [-1, 1]) - tf.constant(values, tf.float32)[None, :])
    return tf.argmin(distance, axis=-1)


def _regression_loss(error, kind: str):
    """Per-row loss of a standardised error: mse, huber (delta 1) or mae."""
    if kind == "mae":
        return tf.abs(error)
    if kind == "huber":
        small = tf.minimum(tf.abs(error), 1.0)
        return 0.5 * tf.square(small) + (tf.abs(error) - small)
    return tf.square(error)


def per_row(task: str, y_true, y_pred, scale: float = 1.0, regression: str = "mse",
            values=()) -> tuple[tf.Tensor, tf.Tensor]:
    """(per-row loss with masked rows at 0, mask) for one output.

    `regression` is the regression loss (REGRESSION_LOSSES of `tfxfer.config`); `values`
    the support of a distribution head (then `y_pred` holds its probabilities).
    """
    mask = labelled_rows(task, y_true)
    y_pred = tf.cast(y_pred, tf.float32)
    if task == CLASSIFICATION:
        y = tf.where(mask, tf.reshape(tf.cast(y_true, tf.int64), [-1]), 0)
        p = tf.clip_by_value(y_pred, _EPSILON, 1.0)
        loss = -tf.math.log(tf.gather(p, y, batch_dims=1))
    elif task == MULTILABEL:
        y = tf.cast(y_true, tf.float32)
        y = tf.where(tf.math.is_finite(y), y, 0.0)
        p = tf.clip_by_value(y_pred, _EPSILON, 1.0 - _EPSILON)
        loss = -tf.reduce_mean(y * tf.math.log(p) + (1 - y) * tf.math.log(1 - p), axis=-1)
    elif task == REGRESSION and len(values):
        y = tf.where(mask, tf.reshape(tf.cast(y_true, tf.float32), [-1]), values[0])
        p = tf.clip_by_value(y_pred, _EPSILON, 1.0)
        loss = -tf.math.log(tf.gather(p, nearest_value(values, y), batch_dims=1))
    elif task == REGRESSION:
        y = tf.reshape(tf.cast(y_true, tf.float32), [-1])
        y = tf.where(mask, y, 0.0)
        loss = _regression_loss((tf.reshape(y_pred, [-1]) - y) / scale, regression)
    else:
        raise ValueError(f"Unknown task {task!r}")
    return tf.where(mask, loss, 0.0), mask


@keras.saving.register_keras_serializable("tfxfer")
class MaskedLoss(keras.losses.Loss):
    """The loss of one output over its labelled rows (see the module docstring).

    Args:
        task: classification, multilabel or regression.
        scale: regression only: the error is of (prediction - target) / scale, so a
            target's spread (its standard deviation) does not set the loss's size.
        regression: regression only: "mse", "huber" or "mae" of that error, or
            "distribution" (cross-entropy over `values`).
        values: a distribution head's support (its sorted distinct training values).
    """

    def __init__(self, task: str, scale: float = 1.0, regression: str = "mse",
                 values=(), name: str | None = None, **kwargs):
        kwargs.pop("reduction", None)
        super().__init__(name=name or f"masked_{task}", reduction="sum", **kwargs)
        self.task, self.scale, self.regression = task, float(scale), regression
        self.values = [float(v) for v in values]

    def call(self, y_true, y_pred):
        loss, mask = per_row(self.task, y_true, y_pred, self.scale, self.regression,
                             self.values)
        count = tf.reduce_sum(tf.cast(mask, tf.float32))
        return tf.reduce_sum(loss) / tf.maximum(count, 1.0)

    def get_config(self) -> dict:
        return {"task": self.task, "scale": self.scale, "regression": self.regression,
                "values": self.values, "name": self.name}


def _metric_values(kind: str, y_true, y_pred, values=(), answer: str = "median"
                   ) -> tuple[tf.Tensor, tf.Tensor]:
    y_pred = tf.cast(y_pred, tf.float32)
    if kind == "accuracy":
        mask = labelled_rows(CLASSIFICATION, y_true)
        y = tf.reshape(tf.cast(y_true, tf.int64), [-1])
        value = tf.cast(tf.equal(tf.argmax(y_pred, axis=-1), y), tf.float32)
    elif kind == "binary_accuracy":
        mask = labelled_rows(MULTILABEL, y_true)
        y = tf.cast(y_true, tf.float32)
        hit = tf.equal(tf.cast(y_pred >= 0.5, tf.float32), tf.where(tf.math.is_finite(y), y, 0.))
        value = tf.reduce_mean(tf.cast(hit, tf.float32), axis=-1)
    elif kind == "mae":
        mask = labelled_rows(REGRESSION, y_true)
        y = tf.reshape(tf.cast(y_true, tf.float32), [-1])
        point = (distribution_point(values, y_pred, answer) if len(values)
                 else tf.reshape(y_pred, [-1]))
        value = tf.abs(point - tf.where(mask, y, 0.0))
    else:
        raise ValueError(f"Unknown masked metric {kind!r}")
    return tf.where(mask, value, 0.0), tf.cast(mask, tf.float32)


@keras.saving.register_keras_serializable("tfxfer")
class MaskedMetric(keras.metrics.Mean):
    """A running mean of accuracy, binary_accuracy or mae over labelled rows only
    (mae of a distribution head: of its `answer`, `values` its support)."""

    def __init__(self, kind: str, values=(), name: str | None = None, answer: str = "median",
                 **kwargs):
        super().__init__(name=name or kind, **kwargs)
        self.kind = kind
        self.values = [float(v) for v in values]
        self.answer = answer

    def update_state(self, y_true, y_pred, sample_weight=None):
        values, mask = _metric_values(self.kind, y_true, y_pred, self.values, self.answer)
        return super().update_state(values, sample_weight=mask)

    def get_config(self) -> dict:
        return {"kind": self.kind, "values": self.values, "name": self.name,
                "answer": self.answer}
