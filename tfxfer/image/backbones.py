"""Registry of pretrained image backbones from `keras.applications`.

Each entry is a frozen `BackboneSpec`: the Keras constructor, the default input
side, the backbone's own `preprocess_input`, the width of its pooled features and
a one-line description. Adding a backbone is one `register_backbone` call.

Example:
    spec = get_backbone("mobilenet_v2")
    backbone = build_backbone("mobilenet_v2", weights="imagenet", image_size=160)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras

from tfxfer.image.small_cnns import dann_mnist_cnn, unit_scale
from tfxfer.runtime.offline import fetching
from tfxfer.utils.registry import Registry

logger = logging.getLogger(__name__)

BACKBONE_LAYER_NAME = "backbone"

_apps = keras.applications


@dataclass(frozen=True)
class BackboneSpec:
    """What tfxfer needs to know about one `keras.applications` architecture.

    Attributes:
        name: registry name, lower-case snake_case (see `tfxfer.utils.registry`).
        builder: the keras.applications constructor.
        preprocess: the architecture's own `preprocess_input` (uint8-range RGB in).
        input_size: default square input side in pixels.
        feature_width: channels of the final feature map with default options.
        description: one line for `tfxfer list-backbones`.
        min_size: smallest input side the architecture accepts.
    """

    name: str
    builder: Callable[..., keras.Model]
    preprocess: Callable[[Any], Any]
    input_size: int
    feature_width: int
    description: str
    min_size: int = 32


BACKBONES: Registry[BackboneSpec] = Registry("backbone")


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    """Adds a backbone (naming and matching follow `tfxfer.utils.registry`)."""
    return BACKBONES.register(spec)


def list_backbones() -> list[BackboneSpec]:
    """All registered backbones, in registration order."""
    return BACKBONES.list()


def get_backbone(name: str) -> BackboneSpec:
    """The backbone matching `name` ("mobilenet_v2", "MobileNetV2", ...); errors list names."""
    return BACKBONES.get(name)


def resolve_weights(weights: str | None) -> str | None:
    """Normalises the `weights` option: "imagenet", None, or an existing file path."""
    if weights is None or str(weights).lower() in ("none", "null", ""):
        return None
    if str(weights).lower() == "imagenet":
        return "imagenet"
    path = os.fspath(weights)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Weights file not found. Expected 'imagenet', 'none' or a path to a local "
            f"weights file. Received: weights={weights!r}"
        )
    return path


def build_backbone(
    name: str,
    *,
    weights: str | None = "imagenet",
    image_size: int | None = None,
    **kwargs: Any,
) -> keras.Model:
    """Builds a headless backbone named "backbone".

    Args:
        name: registry name (see `list_backbones`).
        weights: "imagenet", None/"none", or a path to a weights file for the
            headless model (Keras reads `$KERAS_HOME/models/` before downloading).
        image_size: square input side; None takes the spec's default.
        **kwargs: passed to the constructor, e.g. `alpha=0.25` for MobileNet.

    Returns:
        A Keras model from images to an unpooled feature map.
    """
    spec = get_backbone(name)
    size = image_size or spec.input_size
    if size < spec.min_size:
        raise ValueError(
            f"Backbone {spec.name!r} needs an image size of at least {spec.min_size}. "
            f"Received: image_size={size}"
        )
    weights = resolve_weights(weights)
    with fetching(f"the ImageNet weights of backbone {spec.name!r}",
                  "--weights PATH (a local weights file; Keras also reads "
                  "$KERAS_HOME/models/) or --weights none"):
        model = spec.builder(
            include_top=False, weights=weights, input_shape=(size, size, 3), **kwargs
        )
    model.name = BACKBONE_LAYER_NAME
    logger.info("Built backbone %s (%s weights, %dpx)", spec.name, weights, size)
    return model


def _identity(x: Any) -> Any:
    return x


for _spec in (
    BackboneSpec(
        "vgg16", _apps.VGG16, _apps.vgg16.preprocess_input, 224, 512,
        "VGG16 (2014): 13 conv layers, 14.7M params, caffe preprocessing",
    ),
    BackboneSpec(
        "resnet50", _apps.ResNet50, _apps.resnet.preprocess_input, 224, 2048,
        "ResNet50 (2015): residual bottleneck blocks, 23.6M params",
    ),
    BackboneSpec(
        "resnet50_v2", _apps.ResNet50V2, _apps.resnet_v2.preprocess_input, 224, 2048,
        "ResNet50V2 (2016): pre-activation residual blocks, 23.6M params",
    ),
    BackboneSpec(
        "mobilenet", _apps.MobileNet, _apps.mobilenet.preprocess_input, 224, 1024,
        "MobileNet v1 (2017): depthwise separable convs; width 1024*alpha",
    ),
    BackboneSpec(
        "mobilenet_v2", _apps.MobileNetV2, _apps.mobilenet_v2.preprocess_input, 224, 1280,
        "MobileNetV2 (2018): inverted residuals, 2.3M params",
    ),
    BackboneSpec(
        "mobilenet_v3_small", _apps.MobileNetV3Small, _identity, 224, 576,
        "MobileNetV3 Small (2019): NAS-designed, preprocessing built in",
    ),
    BackboneSpec(
        "mobilenet_v3_large", _apps.MobileNetV3Large, _identity, 224, 960,
        "MobileNetV3 Large (2019): NAS-designed, preprocessing built in",
    ),
    BackboneSpec(
        "efficientnet_v2_b0", _apps.EfficientNetV2B0, _identity, 224, 1280,
        "EfficientNetV2-B0 (2021): fused MBConv, preprocessing built in",
    ),
    BackboneSpec(
        "inception_v3", _apps.InceptionV3, _apps.inception_v3.preprocess_input, 299, 2048,
        "InceptionV3 (2015): factorised inception modules, 21.8M params", min_size=75,
    ),
    BackboneSpec(
        "xception", _apps.Xception, _apps.xception.preprocess_input, 299, 2048,
        "Xception (2016): depthwise separable inception, 20.9M params", min_size=71,
    ),
    BackboneSpec(
        "densenet121", _apps.DenseNet121, _apps.densenet.preprocess_input, 224, 1024,
        "DenseNet121 (2016): densely connected blocks, 7.0M params, torch preprocessing",
    ),
    BackboneSpec(
        "convnext_tiny", _apps.ConvNeXtTiny, _identity, 224, 768,
        "ConvNeXt Tiny (2022): modernised ResNet, 27.8M params, preprocessing built in",
    ),
    BackboneSpec(
        "nasnet_mobile", _apps.NASNetMobile, _apps.nasnet.preprocess_input, 224, 1056,
        "NASNet Mobile (2017): NAS-designed cells, 4.3M params",
    ),
    BackboneSpec(
        "dann_mnist_cnn", dann_mnist_cnn, unit_scale, 28, 768,
        "DANN paper's MNIST CNN (2015): 2 conv + pool, 768 flat features; no pretrained "
        "weights", min_size=28,
    ),
):
    register_backbone(_spec)


# --- Cut at an intermediate layer (`model.feature_layer`, see tfxfer.auto.advisor) ---

def feature_layer_names(backbone: keras.Model) -> list[str]:
    """Layers of `backbone` the head can sit on: those with a 4-D (feature map) output."""
    return [
        layer.name for layer in backbone.layers
        if not isinstance(layer, keras.layers.InputLayer) and len(layer.output.shape) == 4
    ]


def stage_ends(backbone: keras.Model) -> list[str]:
    """The last layer at each spatial resolution, bottom to top: the natural cut points.

    Padding layers, layers with 3 channels (built-in preprocessing) and 1x1 maps
    below the top (squeeze-excitation) are skipped; the top layer always ends the
    list. For MobileNet: `conv_pw_1_relu`, `conv_pw_3_relu`, ..., `conv_pw_13_relu`.
    """
    top = backbone.layers[-1].name
    last: dict[int, str] = {}
    for layer in backbone.layers[:-1]:
        if isinstance(layer, (keras.layers.InputLayer, keras.layers.ZeroPadding2D)):
            continue
        shape = layer.output.shape
        if len(shape) == 4 and shape[-1] != 3 and shape[1] != 1:
            last[shape[1]] = layer.name
    last.pop(backbone.layers[-1].output.shape[1], None)
    return [*last.values(), top]


def cut_backbone(backbone: keras.Model, layer_name: str) -> keras.Model:
    """`backbone` truncated at `layer_name` (same weights), still named "backbone".

    Raises:
        ValueError: `layer_name` is not a layer with a feature-map output; the
            message lists the valid names, the stage ends first.
    """
    valid = feature_layer_names(backbone)
    if layer_name not in valid:
        raise ValueError(
            f"Unknown feature_layer {layer_name!r} for this backbone. Suggested cuts (stage "
            f"ends): {', '.join(stage_ends(backbone))}. All valid names: {', '.join(valid)}"
        )
    cut = keras.Model(backbone.inputs, backbone.get_layer(layer_name).output,
                      name=BACKBONE_LAYER_NAME)
    logger.info("Cut the backbone at %r (%d of %d layers kept)", layer_name,
                len(cut.layers), len(backbone.layers))
    return cut
