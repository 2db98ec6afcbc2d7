"""Optimizers, with optional per-layer (discriminative) learning rates.

Keras 3 optimizers have one learning rate for all variables. For phase 2 it
helps to move lower backbone layers less than the top ones (ULMFiT's
discriminative fine-tuning). Scaling gradients would not do it, since Adam is
invariant to gradient scale; instead `update_step` scales the learning rate of
each variable by a multiplier keyed by the variable's path.
"""

from __future__ import annotations

from typing import Any

import keras

from tfxfer.strategies import trainable_backbone_layers


class _LayerwiseMixin:
    """Multiplies the learning rate of each variable by `lr_multipliers[path]`."""

    def __init__(self, *args: Any, lr_multipliers: dict[str, float] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lr_multipliers = dict(lr_multipliers or {})
        self._lr_scales: list[float] = []

    def build(self, var_list):
        super().build(var_list)
        self._lr_scales = [float(self.lr_multipliers.get(v.path, 1.0)) for v in var_list]

    def update_step(self, gradient, variable, learning_rate):
        scale = self._lr_scales[self._get_variable_index(variable)]
        if scale != 1.0:
            learning_rate = learning_rate * scale
        return super().update_step(gradient, variable, learning_rate)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "lr_multipliers": self.lr_multipliers}


@keras.saving.register_keras_serializable(package="tfxfer")
class LayerwiseAdam(_LayerwiseMixin, keras.optimizers.Adam):
    """Adam with per-variable learning-rate multipliers."""


@keras.saving.register_keras_serializable(package="tfxfer")
class LayerwiseAdamW(_LayerwiseMixin, keras.optimizers.AdamW):
    """AdamW with per-variable learning-rate multipliers."""


@keras.saving.register_keras_serializable(package="tfxfer")
class LayerwiseSGD(_LayerwiseMixin, keras.optimizers.SGD):
    """SGD (momentum 0.9) with per-variable learning-rate multipliers."""


@keras.saving.register_keras_serializable(package="tfxfer")
class LayerwiseRMSprop(_LayerwiseMixin, keras.optimizers.RMSprop):
    """RMSprop with per-variable learning-rate multipliers."""


# Variable names AdamW does not decay: biases, LayerNorm/BatchNorm gamma and beta.
NO_WEIGHT_DECAY = ["bias", "gamma", "beta"]

_OPTIMIZERS = {
    "adam": (keras.optimizers.Adam, LayerwiseAdam, {}),
    "adamw": (keras.optimizers.AdamW, LayerwiseAdamW, {}),
    "sgd": (keras.optimizers.SGD, LayerwiseSGD, {"momentum": 0.9}),
    "rmsprop": (keras.optimizers.RMSprop, LayerwiseRMSprop, {}),
}


def make_optimizer(
    name: str, learning_rate: float, lr_multipliers: dict[str, float] | None = None
) -> keras.optimizers.Optimizer:
    """A fresh optimizer by name; layerwise when multipliers are given."""
    if name not in _OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {name!r}. Valid optimizers: {', '.join(_OPTIMIZERS)}")
    plain, layerwise, defaults = _OPTIMIZERS[name]
    if lr_multipliers:
        optimizer = layerwise(learning_rate=learning_rate, lr_multipliers=lr_multipliers,
                              **defaults)
    else:
        optimizer = plain(learning_rate=learning_rate, **defaults)
    if name == "adamw":  # as BERT fine-tuning recipes: no decay of biases and norm scales
        optimizer.exclude_from_weight_decay(var_names=NO_WEIGHT_DECAY)
    return optimizer


def layerwise_multipliers(model: keras.Model, decay: float, block: int) -> dict[str, float]:
    """Learning-rate multipliers for the trainable backbone variables of `model`.

    Trainable backbone layers are grouped from the top in blocks of `block`
    layers; block k (k = 1 at the top) gets `decay**k`. Head variables are left
    out, so they keep the full rate.

    Args:
        model: a tfxfer model whose phase-2 trainable flags are already set.
        decay: factor in (0, 1] applied per block.
        block: layers with weights per block.

    Returns:
        A dict from variable path to multiplier.
    """
    if not 0.0 < decay <= 1.0:
        raise ValueError(f"layer_lr_decay must be in (0, 1]. Received: {decay}")
    if block < 1:
        raise ValueError(f"layer_lr_block must be >= 1. Received: {block}")
    multipliers = {}
    top_down = list(reversed(trainable_backbone_layers(model)))
    for i, layer in enumerate(top_down):
        for variable in layer.trainable_weights:
            multipliers[variable.path] = decay ** (i // block + 1)
    return multipliers
