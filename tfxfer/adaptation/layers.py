"""The gradient reversal layer of domain-adversarial training (Ganin & Lempitsky, 2015).

Forward it is the identity; backward it multiplies the incoming gradient by -λ. Put
between the features and a domain classifier, it makes the feature extractor
*maximise* the domain loss the classifier minimises, so the features become
indistinguishable between domains. λ is a non-trainable variable, so a schedule
(`tfxfer.adaptation.schedules`) can raise it during training without retracing.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf


@tf.custom_gradient
def _reverse_gradient(x, lambda_):
    def grad(upstream):
        return -lambda_ * upstream, tf.zeros_like(lambda_)

    return tf.identity(x), grad


@keras.saving.register_keras_serializable(package="tfxfer")
class GradientReversal(keras.layers.Layer):
    """Identity forward, −λ·gradient backward.

    Args:
        lambda_: initial λ (the schedule assigns new values to `self.lambda_`).

    Example:
        reversal = GradientReversal(0.0)
        reversal.lambda_.assign(0.5)
    """

    def __init__(self, lambda_: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.initial_lambda = float(lambda_)
        self.lambda_ = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(self.initial_lambda),
            trainable=False, name="lambda", dtype="float32",
        )

    def call(self, inputs):
        lambda_ = keras.ops.cast(self.lambda_, inputs.dtype)
        return _reverse_gradient(inputs, lambda_)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "lambda_": self.initial_lambda}
