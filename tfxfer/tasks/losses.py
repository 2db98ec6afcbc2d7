"""Masked losses and metrics: a row without a target contributes nothing.

A missing target is written into the target itself, so one dataset carries every
output's labels and their masks:

    classification  class id, -1 when missing
    multilabel      a 0/1 vector per row, NaN (the whole row) when missing
    regression      the value, NaN when missing

Each loss is the mean over the labelled rows of the batch only (0 when a batch has
none): the masked rows are replaced by a harmless target before the per-row loss is
computed and then dropped by `tf.where`, so neither a NaN target nor any prediction
of theirs reaches the loss or its gradient. Metrics are running means over the
labelled rows.
"""

from __future__ import annotations

import keras
import tensorflow as tf

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


def _regression_loss(error, kind: str):
    """Per-row loss of a standardised error: mse, huber (delta 1) or mae."""
    if kind == "mae":
        return tf.abs(error)
    if kind == "huber":
        small = tf.minimum(tf.abs(error), 1.0)
        return 0.5 * tf.square(small) + (tf.abs(error) - small)
    return tf.square(error)


def per_row(task: str, y_true, y_pred, scale: float = 1.0, regression: str = "mse"
            ) -> tuple[tf.Tensor, tf.Tensor]:
    """(per-row loss with masked rows at 0, mask) for one output.

    `regression` is the regression loss (REGRESSION_LOSSES of `tfxfer.config`).
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
        regression: regression only: "mse", "huber" or "mae" of that error.
    """

    def __init__(self, task: str, scale: float = 1.0, regression: str = "mse",
                 name: str | None = None, **kwargs):
        kwargs.pop("reduction", None)
        super().__init__(name=name or f"masked_{task}", reduction="sum", **kwargs)
        self.task, self.scale, self.regression = task, float(scale), regression

    def call(self, y_true, y_pred):
        loss, mask = per_row(self.task, y_true, y_pred, self.scale, self.regression)
        count = tf.reduce_sum(tf.cast(mask, tf.float32))
        return tf.reduce_sum(loss) / tf.maximum(count, 1.0)

    def get_config(self) -> dict:
        return {"task": self.task, "scale": self.scale, "regression": self.regression,
                "name": self.name}


def _metric_values(kind: str, y_true, y_pred) -> tuple[tf.Tensor, tf.Tensor]:
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
        value = tf.abs(tf.reshape(y_pred, [-1]) - tf.where(mask, y, 0.0))
    else:
        raise ValueError(f"Unknown masked metric {kind!r}")
    return tf.where(mask, value, 0.0), tf.cast(mask, tf.float32)


@keras.saving.register_keras_serializable("tfxfer")
class MaskedMetric(keras.metrics.Mean):
    """A running mean of accuracy, binary_accuracy or mae over labelled rows only."""

    def __init__(self, kind: str, name: str | None = None, **kwargs):
        super().__init__(name=name or kind, **kwargs)
        self.kind = kind

    def update_state(self, y_true, y_pred, sample_weight=None):
        values, mask = _metric_values(self.kind, y_true, y_pred)
        return super().update_state(values, sample_weight=mask)

    def get_config(self) -> dict:
        return {"kind": self.kind, "name": self.name}
