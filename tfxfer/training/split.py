"""The classifier cut in two at the unfreeze boundary (shared by images and text).

`tfxfer.training.boundary` finds the cut of an image classifier and
`tfxfer.training.text_boundary` that of a transformer text classifier; both return a
`SplitModel` whose parts share the classifier's layers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np

from tfxfer.utils import keras_compat


class NoBoundary(ValueError):
    """Phase 2 cannot run on cached activations; the message says which condition failed."""


@dataclass
class SplitModel:
    """The classifier cut at the unfreeze boundary; both parts share its layers.

    Attributes:
        layer: name of the backbone layer whose input is the boundary.
        bottom: raw inputs (images, strings) -> activations at the boundary.
        top: activations at the boundary -> class probabilities.
        top_features: activations at the boundary -> the head's input (pooled features).
        lengths: for variable-length inputs, cached activations -> each example's length,
            so that batches of similar lengths are formed; None for images.
    """

    layer: str
    bottom: keras.Model
    top: keras.Model
    top_features: keras.Model
    lengths: Callable[[np.ndarray], np.ndarray] | None = None


def output_in(model: keras.Model, layer: keras.layers.Layer):
    """The tensor `layer` produces inside `model`'s graph (its own `.output` may be
    the one of its inner graph, as for a nested functional backbone).

    Raises:
        NoBoundary: no layer of `model` reads that output.
    """
    for other in model.layers:
        for tensor in keras.tree.flatten(other.input) if other is not layer else ():
            if keras_compat.producing_operation(tensor) is layer:
                return tensor
    raise NoBoundary(f"no layer of {model.name!r} reads the output of {layer.name!r}")
