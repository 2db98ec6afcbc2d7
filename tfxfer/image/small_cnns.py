"""Small CNNs trained from scratch, registered beside the `keras.applications` backbones.

`dann_mnist_cnn` is the feature extractor Ganin & Lempitsky (2015) used for
MNIST → MNIST-M: conv 5×5×32, max-pool 2, conv 5×5×48, max-pool 2. Its feature
map is flattened and returned as a 1×1 map, so the classifier's global pooling
passes the 768 features through unchanged (the paper's head is fully connected
on the flattened map, not on a spatial average).
"""

from __future__ import annotations

from typing import Any

import keras


def unit_scale(images):
    """uint8-range pixels to [0, 1]."""
    return images / 255.0


def dann_mnist_cnn(
    include_top: bool = False,
    weights: str | None = None,
    input_shape: tuple[int, int, int] = (28, 28, 3),
    **kwargs: Any,
) -> keras.Model:
    """The DANN paper's MNIST feature extractor (no pretrained weights exist).

    Args:
        include_top: must be False (the head is tfxfer's).
        weights: None, or a path to weights saved from this architecture.
        input_shape: (side, side, 3); 28 is the paper's.
        **kwargs: `filters=(32, 48)` to change the two convolutions' widths.

    Returns:
        A model from images in [0, 1] to a 1×1×F feature map.
    """
    if include_top:
        raise ValueError("dann_mnist_cnn has no classification top. Received: include_top=True")
    if weights == "imagenet":
        raise ValueError(
            "dann_mnist_cnn has no ImageNet weights; train it with weights='none'. "
            f"Received: weights={weights!r}"
        )
    first, second = kwargs.pop("filters", (32, 48))
    if kwargs:
        raise ValueError(f"Unknown dann_mnist_cnn arguments: {sorted(kwargs)}")
    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Conv2D(first, 5, activation="relu", name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = keras.layers.Conv2D(second, 5, activation="relu", name="conv2")(x)
    x = keras.layers.MaxPooling2D(2, name="pool2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Reshape((1, 1, -1), name="as_map")(x)
    model = keras.Model(inputs, x, name="dann_mnist_cnn")
    if weights is not None:
        model.load_weights(weights)
    return model
