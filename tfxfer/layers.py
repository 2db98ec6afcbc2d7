"""Custom Keras layers that live inside tfxfer models and must survive `.keras` saving."""

from __future__ import annotations

from typing import Any

import keras

from tfxfer.backbones import get_backbone


@keras.saving.register_keras_serializable(package="tfxfer")
class BackbonePreprocess(keras.layers.Layer):
    """Applies a registered backbone's own `preprocess_input` inside the model.

    The layer stores only the backbone's registry name, so a saved model refers to
    the preprocessing by name instead of pickling a Python function (a `Lambda`
    layer would not load in safe mode).

    Args:
        backbone: registry name of the backbone whose preprocessing to apply.
    """

    def __init__(self, backbone: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.backbone = get_backbone(backbone).name
        self._preprocess = get_backbone(backbone).preprocess

    def call(self, images):
        images = keras.ops.cast(images, self.compute_dtype)
        return self._preprocess(images)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "backbone": self.backbone}
