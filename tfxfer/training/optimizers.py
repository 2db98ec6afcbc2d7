"""Optimizers, with optional per-layer (discriminative) learning rates.

Keras 3 optimizers have one learning rate for all variables. For phase 2 it
helps to move lower backbone layers less than the top ones (ULMFiT's
discriminative fine-tuning). Scaling gradients would not do it, since Adam is
invariant to gradient scale; instead `update_step` scales the learning rate of
each variable by a multiplier keyed by the variable's path.

A phase may also warm up: `WarmupSchedule` raises the learning rate linearly
from 0 over the first steps of the phase, then holds it or decays it to 0 by
the phase's end. The optimizers read it as any Keras schedule, so per-layer
multipliers and AdamW's weight decay (scaled by the rate) follow it.
"""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

from tfxfer.config import LR_SCHEDULES
from tfxfer.training.strategies import trainable_backbone_layers


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


@keras.saving.register_keras_serializable(package="tfxfer")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from 0 to `peak`, then constant, linear or cosine decay.

    Update k (0-based, the optimizer's `iterations` when it applies it) uses
    `peak * (k + 1) / warmup_steps` while k < warmup_steps; after that `peak`
    ("constant"), or a decay that starts at `peak` at step `warmup_steps` and
    would reach 0 at step `total_steps` ("linear", "cosine"). Steps past
    `total_steps` (a longer fit than planned) keep the last value of the decay.

    Args:
        peak: the learning rate after the warmup.
        warmup_steps: updates of the warmup (0: none).
        total_steps: updates of the whole phase; used by the decays.
        decay: one of LR_SCHEDULES.
    """

    def __init__(self, peak: float, warmup_steps: int, total_steps: int,
                 decay: str = "constant") -> None:
        if decay not in LR_SCHEDULES:
            raise ValueError(f"decay must be one of {', '.join(LR_SCHEDULES)}. "
                             f"Received: {decay!r}")
        if not 0 <= warmup_steps <= total_steps:
            raise ValueError("Need 0 <= warmup_steps <= total_steps. Received: "
                             f"warmup_steps={warmup_steps}, total_steps={total_steps}")
        self.peak, self.decay = float(peak), decay
        self.warmup_steps, self.total_steps = int(warmup_steps), int(total_steps)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warmup = max(self.warmup_steps, 1)
        rise = ops.minimum((step + 1.0) / warmup, 1.0) if self.warmup_steps else 1.0
        span = max(self.total_steps - self.warmup_steps, 1)
        done = ops.clip((step - self.warmup_steps) / span, 0.0, (span - 1) / span)
        if self.decay == "linear":
            fall = 1.0 - done
        elif self.decay == "cosine":
            fall = 0.5 * (1.0 + ops.cos(math.pi * done))
        else:
            fall = 1.0
        return ops.cast(self.peak * rise * fall, "float32")

    def get_config(self) -> dict[str, Any]:
        return {"peak": self.peak, "warmup_steps": self.warmup_steps,
                "total_steps": self.total_steps, "decay": self.decay}


def phase_schedule(
    peak: float, steps_per_epoch: int, epochs: int, warmup_fraction: float, decay: str
) -> float | WarmupSchedule:
    """The learning rate of a phase: `peak`, or a `WarmupSchedule` over its steps.

    Args:
        peak: the phase's learning rate.
        steps_per_epoch: training batches per epoch.
        epochs: epochs of the phase.
        warmup_fraction: share of the phase's steps spent warming up, in [0, 1).
        decay: what follows the warmup, one of LR_SCHEDULES.

    Returns:
        `peak` itself when there is neither warmup nor decay, else the schedule.
    """
    if warmup_fraction == 0 and decay == "constant":
        return peak
    total = steps_per_epoch * epochs
    warmup = math.ceil(warmup_fraction * total) if warmup_fraction else 0
    return WarmupSchedule(peak, warmup, total, decay)


def make_optimizer(
    name: str,
    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule,
    lr_multipliers: dict[str, float] | None = None,
) -> keras.optimizers.Optimizer:
    """A fresh optimizer by name; layerwise when multipliers are given.

    `learning_rate` may be a schedule (see `phase_schedule`).
    """
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
