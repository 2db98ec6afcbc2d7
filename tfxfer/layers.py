"""Custom Keras layers that live inside tfxfer models and must survive `.keras` saving."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

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


@keras.saving.register_keras_serializable(package="tfxfer")
class FeatureStandardization(keras.layers.Layer):
    """Standardises feature vectors with the statistics of the training data.

    `(x - mean) / sqrt(variance)` per feature; `mean` and `variance` are
    non-trainable weights (so they are saved, restored from checkpoints and
    exported with the model) set once by `set_statistics` before training. Until
    then the layer is the identity (mean 0, variance 1).

    Args:
        floor: variances are floored at this fraction of their mean, so a feature
            that is (almost) constant on the training data is not blown up when it
            moves at test time.
    """

    def __init__(self, floor: float = 0.01, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.floor = floor

    def build(self, input_shape) -> None:
        width = (input_shape[-1],)
        self.mean = self.add_weight(shape=width, initializer="zeros", trainable=False,
                                    name="mean")
        self.variance = self.add_weight(shape=width, initializer="ones", trainable=False,
                                        name="variance")

    def call(self, inputs):
        x = keras.ops.cast(inputs, self.compute_dtype)
        return (x - self.mean) * keras.ops.rsqrt(self.variance)

    def set_statistics(self, features: np.ndarray) -> None:
        """Sets mean and (floored) variance from `features`, shape (n, ..., width)."""
        x = np.asarray(features, np.float64).reshape(-1, np.shape(features)[-1])
        if not len(x):
            raise ValueError(f"Layer {self.name!r} needs at least one feature vector to "
                             "standardise with; received none.")
        variance = x.var(0)
        floor = max(self.floor * float(variance.mean()), 1e-12)
        self.mean.assign(x.mean(0).astype("float32"))
        self.variance.assign(np.maximum(variance, floor).astype("float32"))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "floor": self.floor}
