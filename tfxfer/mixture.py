"""A Keras model that mixes the probabilities of several classifiers (`tfxfer ensemble`).

    model = ensemble_model([model_a, model_b], temperatures=[1.3, 0.8], weights=[0.6, 0.4])

Each member's probabilities are tempered (p ** (1/T), renormalised) and averaged with
the weights; the result saves as `model.keras` and exports like any classifier.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

EPS = 1e-7  # probabilities are clipped to [EPS, 1] before their log


@keras.saving.register_keras_serializable(package="tfxfer")
class ProbabilityMixture(keras.layers.Layer):
    """The weighted mean of probability inputs, each tempered first (`with_temperature`)."""

    def __init__(self, temperatures: Sequence[float], weights: Sequence[float], **kwargs):
        super().__init__(**kwargs)
        if len(temperatures) != len(weights):
            raise ValueError(f"Expected one temperature per weight. Received "
                             f"{len(temperatures)} temperatures, {len(weights)} weights")
        self.temperatures = [float(t) for t in temperatures]
        self.mixture_weights = [float(w) for w in weights]

    def call(self, probabilities):
        mixed = 0.0
        for p, t, w in zip(probabilities, self.temperatures, self.mixture_weights):
            logits = ops.log(ops.clip(ops.cast(p, "float32"), EPS, 1.0)) / t
            mixed = mixed + w * ops.softmax(logits, axis=-1)
        return mixed

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]

    def get_config(self):
        return {**super().get_config(), "temperatures": self.temperatures,
                "weights": self.mixture_weights}


def ensemble_model(models: Sequence[keras.Model], temperatures: Sequence[float],
                   weights: Sequence[float]) -> keras.Model:
    """One model: the input given to every member, their probabilities mixed.

    Raises:
        ValueError: the members do not take the same kind of input.
    """
    specs = [(tuple(m.inputs[0].shape[1:]), m.inputs[0].dtype) for m in models]
    if len(set(specs)) != 1 or any(len(m.inputs) != 1 for m in models):
        raise ValueError(f"The runs' models take different inputs ({specs}): an ensemble "
                         "model needs one input shape and dtype for all")
    shape, dtype = specs[0]
    inputs = keras.Input(shape=shape, dtype=dtype, name="inputs")
    outputs = []
    for i, model in enumerate(models):
        model.name = f"member_{i}"  # two runs' models may share a name
        outputs.append(model(inputs))
    mixed = ProbabilityMixture(temperatures, weights, name="predictions")(outputs)
    return keras.Model(inputs, mixed, name="ensemble")
