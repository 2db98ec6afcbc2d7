"""Which layers train in which phase: the four classic transfer strategies.

    feature_extraction  phase 1 only: the head on the frozen backbone
    fine_tune           phase 1, then the top of the backbone unfrozen
    fine_tune_all       phase 1, then the whole backbone unfrozen
    from_scratch        one phase, random weights, everything trainable
    domain_adaptation   as fine_tune on a pretrained backbone, as from_scratch without
                        pretrained weights; every phase is domain-adversarial
                        (see `tfxfer.adaptation`)

Whenever pretrained backbone layers are unfrozen, BatchNormalization layers stay
frozen: their moving statistics were estimated on the pretraining data and a
small dataset would overwrite them. Keras 3 runs a non-trainable BN layer in
inference mode; calling the backbone with `training=False` is not enough on its
own, because Keras 3.15 functional models pass the outer call's `training` flag
down to nested layers, overriding the explicit argument.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass

import keras

from tfxfer.config import RunConfig, TrainConfig, fine_tune_learning_rate
from tfxfer.image.backbones import BACKBONE_LAYER_NAME, resolve_weights

logger = logging.getLogger(__name__)

DEFAULT_UNFREEZE_FRACTION = 0.3


@dataclass(frozen=True)
class Phase:
    """One `fit` call of a schedule.

    Attributes:
        name: "head", "fine_tune" or "scratch"; recorded in the history.
        epochs: epochs of this phase.
        learning_rate: learning rate it is compiled with.
        unfreeze: "none" (backbone frozen), "top", "all" (BN stays frozen) or
            "everything" (BN trains too, for from-scratch training).
    """

    name: str
    epochs: int
    learning_rate: float
    unfreeze: str


def is_pretrained(config: RunConfig) -> bool:
    """Whether the image backbone starts from pretrained weights (text encoders always do)."""
    image = config.model.image
    return image is None or resolve_weights(image.weights) is not None


def plan_phases(train: TrainConfig, pretrained: bool = True) -> list[Phase]:
    """The phases a strategy runs, with their epochs and learning rates.

    `pretrained` (the backbone has pretrained weights) matters to
    `domain_adaptation` only.
    """
    lr2 = fine_tune_learning_rate(train)
    adapting = train.strategy == "domain_adaptation"
    if train.strategy == "from_scratch" or (adapting and not pretrained):
        total = train.epochs + train.fine_tune_epochs
        return [Phase("scratch", total, train.learning_rate, "everything")]
    phases = [Phase("head", train.epochs, train.learning_rate, "none")]
    if train.strategy == "fine_tune" or adapting:
        phases.append(Phase("fine_tune", train.fine_tune_epochs, lr2, "top"))
    elif train.strategy == "fine_tune_all":
        phases.append(Phase("fine_tune", train.fine_tune_epochs, lr2, "all"))
    return [p for p in phases if p.epochs > 0]


def backbone_of(model: keras.Model) -> keras.layers.Layer:
    """The pretrained part of a tfxfer model (the layer named "backbone")."""
    try:
        return model.get_layer(BACKBONE_LAYER_NAME)
    except ValueError as err:
        raise ValueError(
            f"Model {model.name!r} has no layer named {BACKBONE_LAYER_NAME!r}; "
            "it was not built by tfxfer."
        ) from err


def walk_layers(layer: keras.layers.Layer) -> Iterator[keras.layers.Layer]:
    """Yields `layer` and all layers nested inside it, depth first."""
    yield layer
    units = getattr(layer, "unfreeze_units", None)  # transformer encoders
    for child in units if units is not None else getattr(layer, "layers", []):
        yield from walk_layers(child)


def freeze_batch_norm(layer: keras.layers.Layer) -> int:
    """Sets every BatchNormalization inside `layer` non-trainable; returns the count."""
    count = 0
    for sub in walk_layers(layer):
        if isinstance(sub, keras.layers.BatchNormalization):
            sub.trainable = False
            count += 1
    return count


def _top_start(layers: list, train: TrainConfig) -> int:
    """Index of the first layer to unfreeze among `layers` (bottom to top)."""
    if train.unfreeze_from is not None:
        names = [layer.name for layer in layers]
        if train.unfreeze_from not in names:
            raise ValueError(
                f"unfreeze_from={train.unfreeze_from!r} is not a layer of the backbone "
                f"({len(names)} layers, from {names[0]!r} to {names[-1]!r})."
            )
        return names.index(train.unfreeze_from)
    if train.unfreeze_layers is not None:
        if train.unfreeze_layers < 1:
            raise ValueError(f"unfreeze_layers must be >= 1. Received: {train.unfreeze_layers}")
        return max(0, len(layers) - train.unfreeze_layers)
    fraction = train.unfreeze_fraction
    fraction = DEFAULT_UNFREEZE_FRACTION if fraction is None else fraction
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"unfreeze_fraction must be in (0, 1]. Received: {fraction}")
    return len(layers) - math.ceil(fraction * len(layers))


def _sublayers(backbone: keras.layers.Layer) -> list:
    units = getattr(backbone, "unfreeze_units", None)  # transformer encoders: blocks
    if units is not None:
        return list(units)
    return [
        layer for layer in getattr(backbone, "layers", [])
        if not isinstance(layer, keras.layers.InputLayer)
    ]


def set_phase_trainable(model: keras.Model, phase: Phase, train: TrainConfig) -> None:
    """Sets which layers of `model` train during `phase`.

    The head is always trainable. The backbone is frozen, unfrozen at the top,
    unfrozen whole, or (from scratch) made trainable including BatchNorm.
    """
    # Keras does not pass `trainable=True` down to the layers of a nested
    # functional model, so every layer is reset explicitly before freezing.
    for layer in walk_layers(model):
        layer.trainable = True
    backbone = backbone_of(model)
    if phase.unfreeze == "none":
        backbone.trainable = False
        return
    if phase.unfreeze == "everything":
        return
    layers = _sublayers(backbone)
    if phase.unfreeze == "top" and layers:
        start = _top_start(layers, train)
        for layer in layers[:start]:
            layer.trainable = False
        logger.info(
            "Unfroze the top %d of %d backbone layers (from %r)",
            len(layers) - start, len(layers), layers[start].name if start < len(layers) else None,
        )
    if train.fine_tune_batchnorm:
        logger.info("BatchNormalization layers of the unfrozen backbone train "
                    "(train.fine_tune_batchnorm)")
        return
    frozen = freeze_batch_norm(backbone)
    logger.info("Kept %d BatchNormalization layers frozen", frozen)


def trainable_backbone_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Backbone layers that own trainable weights, bottom to top."""
    backbone = backbone_of(model)
    layers = _sublayers(backbone) or [backbone]
    return [layer for layer in layers if layer.trainable_weights]
