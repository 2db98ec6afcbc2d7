"""Learning without Forgetting (Li & Hoiem 2016): distil the parent into the child.

Before training, the parent's class probabilities on every training and validation
example are recorded (as the paper does, once, on unaugmented inputs). They travel
with the example in its label, `packed_labels`: a float row

    [class id, p_parent(class 0), ..., p_parent(class K-1)]

and `DistillationLoss` reads them back: the usual cross-entropy over all of the
child's classes plus `weight` times the distillation term

    T² · KL( softmax(log p_parent / T) || softmax(log p_child[old] / T) )

where p_child[old] are the child's probabilities of the parent's K classes. Because
the child's output is a softmax, log p equals the logits up to a constant per
example, so tempering log-probabilities tempers the logits; the term is zero when
the child's old-class logits equal the parent's (up to that constant). The labels
work the same for batches of images or text and for cached features.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

_EPSILON = 1e-7


def packed_labels(labels: np.ndarray, parent_probs: np.ndarray | None) -> np.ndarray:
    """Rows [label, parent probabilities...] (float32); only the label without a parent."""
    labels = np.asarray(labels, np.float32).reshape(-1, 1)
    if parent_probs is None:
        return labels
    if len(parent_probs) != len(labels):
        raise ValueError(f"{len(parent_probs)} parent outputs for {len(labels)} examples.")
    return np.concatenate([labels, np.asarray(parent_probs, np.float32)], axis=1)


def distillation_term(parent_probs, child_old_probs, temperature: float):
    """T² · KL(parent_T || child_T) per example, both tempered from their log-probabilities."""
    log_p = keras.ops.log_softmax(keras.ops.log(parent_probs + _EPSILON) / temperature, axis=-1)
    log_q = keras.ops.log_softmax(keras.ops.log(child_old_probs + _EPSILON) / temperature,
                                  axis=-1)
    kl = keras.ops.sum(keras.ops.exp(log_p) * (log_p - log_q), axis=-1)
    return temperature**2 * kl


@keras.saving.register_keras_serializable(package="tfxfer")
class DistillationLoss(keras.losses.Loss):
    """Cross-entropy on the class id plus `weight` × the LwF distillation term.

    Args:
        old_ids: the child's class id of each of the parent's classes (the columns
            1.. of the labels, in order); empty: cross-entropy only.
        temperature: T of the distillation.
        weight: the distillation term's weight (0: cross-entropy only).
    """

    def __init__(self, old_ids: Sequence[int] = (), temperature: float = 2.0,
                 weight: float = 1.0, name: str = "lwf_loss", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.old_ids = [int(i) for i in old_ids]
        self.temperature, self.weight = float(temperature), float(weight)

    def call(self, y_true, y_pred):
        labels = keras.ops.cast(y_true[:, 0], "int32")
        loss = keras.losses.sparse_categorical_crossentropy(labels, y_pred)
        if not self.old_ids or self.weight == 0:
            return loss
        old = keras.ops.take(y_pred, self.old_ids, axis=1)
        return loss + self.weight * distillation_term(y_true[:, 1:], old, self.temperature)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "old_ids": self.old_ids,
                "temperature": self.temperature, "weight": self.weight}


def packed_accuracy(y_true, y_pred):
    """Accuracy against the class id in column 0 of packed labels."""
    labels = keras.ops.cast(y_true[:, 0], "int32")
    predicted = keras.ops.cast(keras.ops.argmax(y_pred, axis=-1), "int32")
    return keras.ops.cast(keras.ops.equal(labels, predicted), "float32")


def packed_metrics() -> list[keras.metrics.Metric]:
    """["accuracy"] for packed labels (the history keeps its accuracy columns)."""
    return [keras.metrics.MeanMetricWrapper(packed_accuracy, name="accuracy")]
