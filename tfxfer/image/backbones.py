"""Registry of pretrained image backbones from `keras.applications`.

Each entry is a frozen `BackboneSpec`: the Keras constructor, the default input
side, the backbone's own `preprocess_input`, the width of its pooled features and
a one-line description. Adding a backbone is one `register_backbone` call (a built-in
one is a row of `tfxfer.image.catalog`, which the CLI reads without Keras).

Example:
    spec = get_backbone("mobilenet_v2")
    backbone = build_backbone("mobilenet_v2", weights="imagenet", image_size=160)
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras

from tfxfer.image.catalog import BUILTIN_BACKBONES, resolve_weights
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


def _resolve(reference: str | None) -> Any:
    """A catalog reference (`tfxfer.image.catalog`) -> the function it names."""
    if reference is None:
        return _identity
    if ":" in reference:
        module, _, attribute = reference.partition(":")
        return getattr(importlib.import_module(module), attribute)
    return functools.reduce(getattr, reference.split("."), _apps)


for _entry in BUILTIN_BACKBONES:
    register_backbone(BackboneSpec(
        _entry.name, _resolve(_entry.builder), _resolve(_entry.preprocess), _entry.input_size,
        _entry.feature_width, _entry.description, min_size=_entry.min_size,
    ))


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
