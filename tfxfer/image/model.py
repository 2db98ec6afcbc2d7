"""The classifier factory: a pretrained backbone under a new head.

Image models take raw uint8 RGB images of any size and do everything else
inside the graph, so a saved or exported model needs no client-side
preprocessing:

    image (uint8) -> resize -> [augmentation] -> preprocess -> backbone
        -> pooling -> [feature_norm] -> dropout -> [hidden] -> predictions (softmax)

`feature_norm` standardises the pooled features of a backbone cut at an earlier
layer (`feature_layer`) with the statistics of the training data (set by
`tfxfer.training.feature_norm` before training): an intermediate layer's pooled features
are on another scale than the top's, and a head on them trains poorly at the
learning rates that suit the top (see docs/strategies.md).

Layers that other code looks up have stable names (the constants below).
"""

from __future__ import annotations

from collections.abc import Callable

import keras

from tfxfer.config import ImageConfig, ModelConfig
from tfxfer.image.backbones import BACKBONE_LAYER_NAME, build_backbone, cut_backbone, get_backbone
from tfxfer.image.layers import BackbonePreprocess, FeatureStandardization, RandomAffine
from tfxfer.modality import IMAGE

IMAGE_INPUT = "image"
AUGMENTATION = "augmentation"
POOLING = "pooling"
FEATURE_NORM = "feature_norm"
DROPOUT = "dropout"
HIDDEN = "hidden"
PREDICTIONS = "predictions"
BACKBONE = BACKBONE_LAYER_NAME


def image_size_for(config: ModelConfig) -> int:
    """The square input side an image model built from `config` uses."""
    image = config.section(IMAGE)
    return image.image_size or get_backbone(image.backbone).input_size


def optional_layer(model: keras.Model, name: str) -> keras.layers.Layer | None:
    """`model`'s top-level layer called `name`, or None when it has none."""
    return next((layer for layer in model.layers if layer.name == name), None)


def head_input(model: keras.Model):
    """The symbolic pooled features the head starts from (the cached bottleneck).

    The input of `feature_norm` when the model standardises its features, else of
    `dropout`.
    """
    norm = optional_layer(model, FEATURE_NORM)
    return (model.get_layer(DROPOUT) if norm is None else norm).input


def build_head(features, num_classes: int, config: ModelConfig):
    """Dropout, an optional hidden layer and the softmax classifier.

    Shared by image and text models so both expose the same layer names. The
    classifier computes in float32 so that mixed precision keeps stable outputs.

    Args:
        features: a rank-2 symbolic tensor of pooled features.
        num_classes: number of output classes (>= 2).
        config: the model section (dropout, hidden_units).

    Returns:
        The symbolic class probabilities.
    """
    if num_classes < 2:
        raise ValueError(f"A classifier needs at least 2 classes. Received: {num_classes}")
    x = keras.layers.Dropout(config.dropout, name=DROPOUT)(features)
    if config.hidden_units:
        x = keras.layers.Dense(config.hidden_units, activation="relu", name=HIDDEN)(x)
    return keras.layers.Dense(
        num_classes, activation="softmax", dtype="float32", name=PREDICTIONS
    )(x)


def _augmentation(config: ImageConfig) -> RandomAffine:
    flip = config.flip or "none"
    return RandomAffine(flip, config.rotation or 0.0, config.zoom or 0.0, name=AUGMENTATION)


def pooling_layer(kind: str) -> keras.layers.Layer:
    """The global pooling layer (named POOLING) of `model.image.pooling`: "max" or "avg"."""
    if kind == "max":
        return keras.layers.GlobalMaxPooling2D(name=POOLING)
    return keras.layers.GlobalAveragePooling2D(name=POOLING)


def build_image_classifier(
    config: ModelConfig, num_classes: int, *, from_scratch: bool = False,
    head: Callable | None = None,
    train_batchnorm: bool = False,
) -> keras.Model:
    """Builds a classifier on a registered `keras.applications` backbone.

    Args:
        config: the model section: the head and `config.image` (backbone, weights,
            image size, pooling, augmentation, and `feature_layer`, a backbone layer
            to put the head on instead of the top, whose pooled features are then
            standardised by a `feature_norm` layer).
        num_classes: number of classes.
        from_scratch: build the architecture with random weights and let its
            BatchNormalization layers follow the training flag (for the
            `from_scratch` strategy). Otherwise the backbone is called with
            `training=False`, as transfer learning requires.
        head: builds the outputs from the pooled features instead of `build_head`
            (task heads, `tfxfer.tasks.model`); `num_classes` is then not used.
        train_batchnorm: call the pretrained backbone without `training=False`, so
            its BatchNorm layers follow the training flag once they are trainable
            (`train.fine_tune_batchnorm`; frozen layers stay in inference mode).

    Returns:
        An uncompiled `keras.Model` from uint8 images to class probabilities.
    """
    image = config.section(IMAGE)
    spec = get_backbone(image.backbone)
    size = image_size_for(config)
    weights = None if from_scratch else image.weights
    backbone = build_backbone(
        spec.name, weights=weights, image_size=size, **image.backbone_kwargs
    )
    # --- cut at an intermediate layer (tfxfer.auto.advisor resolves "auto" before this) ---
    if image.feature_layer == "auto":
        raise ValueError("feature_layer='auto' is resolved by tfxfer.auto.advisor before the model "
                         "is built; pass a layer name here.")
    if image.feature_layer:
        backbone = cut_backbone(backbone, image.feature_layer)
    # ---

    inputs = keras.Input(shape=(None, None, 3), dtype="uint8", name=IMAGE_INPUT)
    x = keras.layers.Resizing(size, size, name="resize")(inputs)
    if image.augment:
        x = _augmentation(image)(x)
    x = BackbonePreprocess(spec.name, name="preprocess")(x)
    x = backbone(x) if from_scratch or train_batchnorm else backbone(x, training=False)
    x = pooling_layer(image.pooling)(x)
    if image.feature_layer:
        x = FeatureStandardization(name=FEATURE_NORM)(x)
    outputs = head(x) if head is not None else build_head(x, num_classes, config)
    return keras.Model(inputs, outputs, name=f"{spec.name}_classifier")

