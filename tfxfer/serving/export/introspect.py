"""What an export needs to know about a Keras classifier: modality, image size, classes.

The modality is read from the model's input by `tfxfer.modality`, the one place
that decides it. Nothing here builds or writes anything.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from tfxfer.modality import ModalityError, modality_of
from tfxfer.serving.contract import DEFAULT_TOP_K
from tfxfer.serving.export.errors import ExportError

RESIZE_LAYER = "resize"


def export_modality(model: keras.Model) -> str:
    """The model's modality (`tfxfer.modality.modality_of`), or why it cannot be exported.

    Raises:
        ExportError: several inputs, or one that is neither images nor strings.
    """
    try:
        return modality_of(model)
    except ModalityError as err:
        raise ExportError(f"Cannot export this model: {err}") from err


def image_size_of(model: keras.Model, image_size: int | None = None) -> int:
    """The side images are decoded to: given, the model's "resize" layer, or its input."""
    if image_size:
        return int(image_size)
    try:
        layer = model.get_layer(RESIZE_LAYER)
    except ValueError:
        layer = None
    if isinstance(layer, keras.layers.Resizing):
        if layer.height != layer.width:
            raise ExportError(f"Square images expected; the resize layer gives "
                              f"{layer.height}x{layer.width}.")
        return int(layer.height)
    height, width = model.inputs[0].shape[1:3]
    if height and height == width:
        return int(height)
    raise ExportError(
        "Cannot tell the image size: the model has no square 'resize' layer and no static "
        "square input; pass image_size."
    )


def validate_classes(model: keras.Model, class_names: Sequence[str]) -> None:
    width = model.outputs[0].shape[-1]
    if width != len(class_names):
        raise ExportError(
            f"The model predicts {width} classes but {len(class_names)} labels were given."
        )
    bad = [n for n in class_names if not n or "\n" in n or "\r" in n]
    if bad:
        raise ExportError(f"Labels must be non-empty single lines. Received: {bad}")


def top_k_of(top_k: int | None, num_classes: int) -> int:
    k = min(DEFAULT_TOP_K, num_classes) if top_k is None else int(top_k)
    if not 1 <= k <= num_classes:
        raise ExportError(f"top_k must be in [1, {num_classes}]. Received: top_k={top_k}")
    return k


def weights_bytes(model: keras.Model) -> int:
    """Bytes of the model's weights (each variable counted once)."""
    unique = {id(v): v for v in model.weights}.values()
    return sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in unique)
