"""The child's classifier from the parent's: every layer copied, the head grown.

The child is built like any run of the parent's config, with one row of the
`predictions` layer per class of the union. Every other layer with weights takes
the parent's layer of the same name (backbone, feature_norm, hidden, ...); the
`predictions` kernel columns and biases of the parent's classes are copied to
their ids in the union, and the new classes keep the fresh initialisation
(Glorot-uniform kernel, zero bias).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import keras
import numpy as np

from tfxfer.image.model import PREDICTIONS

logger = logging.getLogger(__name__)


def grow_head(child: keras.Model, parent: keras.Model, old_ids: Sequence[int]) -> None:
    """Copies `parent`'s weights into `child`; parent class i becomes child class old_ids[i].

    Args:
        child: a classifier of the same architecture as `parent`, with at least as
            many classes.
        parent: the trained classifier.
        old_ids: the child's class id of each of the parent's classes, in order; empty
            to copy every layer but the head (`keep none`).

    Raises:
        ValueError: a layer of the child is missing from the parent, or its weights have
            other shapes.
    """
    parent_layers = {layer.name: layer for layer in parent.layers}
    for layer in child.layers:
        if not layer.weights:
            continue
        source = parent_layers.get(layer.name)
        if source is None:
            raise ValueError(f"The parent model has no layer {layer.name!r} to copy into the "
                             f"child; its layers: {sorted(parent_layers)}")
        if layer.name == PREDICTIONS:
            _grow(layer, source, old_ids)
            continue
        mine, theirs = layer.get_weights(), source.get_weights()
        shapes = [np.shape(w) for w in mine], [np.shape(w) for w in theirs]
        if shapes[0] != shapes[1]:
            raise ValueError(f"Layer {layer.name!r}: the parent's weights have shapes "
                             f"{shapes[1]}, the child's {shapes[0]}.")
        layer.set_weights(theirs)


def _grow(layer: keras.layers.Layer, source: keras.layers.Layer, old_ids: Sequence[int]) -> None:
    kernel, bias = layer.get_weights()
    old_kernel, old_bias = source.get_weights()
    if not len(old_ids):
        logger.info("Head: %d classes, none copied from the parent (keep none)", bias.shape[0])
        return
    if len(old_ids) != old_bias.shape[0] or kernel.shape[0] != old_kernel.shape[0]:
        raise ValueError(
            f"Cannot grow the head: the parent's predictions are {old_kernel.shape}, the "
            f"child's {kernel.shape}, with {len(old_ids)} old class ids.")
    kernel[:, list(old_ids)] = old_kernel
    bias[list(old_ids)] = old_bias
    layer.set_weights([kernel, bias])
    logger.info("Head grown from %d to %d classes (the parent's rows copied)",
                old_bias.shape[0], bias.shape[0])
