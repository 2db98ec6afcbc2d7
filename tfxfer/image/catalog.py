"""The built-in image backbones as plain data, readable without importing Keras.

`tfxfer.image.backbones` registers one `BackboneSpec` per row, resolving the
constructor and preprocessing references then; the CLI reads the names here to
refuse an unknown `--backbone` before TensorFlow is imported. Adding a built-in
backbone is one row.

A reference is an attribute path under `keras.applications` ("VGG16",
"vgg16.preprocess_input"), "module:attribute" for a tfxfer function, or None
for preprocessing built into the model (identity).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from tfxfer.utils.registry import registry_key


@dataclass(frozen=True)
class CatalogEntry:
    """One built-in backbone (see `tfxfer.image.backbones.BackboneSpec` for the fields)."""

    name: str
    builder: str
    preprocess: str | None
    input_size: int
    feature_width: int
    description: str
    min_size: int = 32


BUILTIN_BACKBONES: tuple[CatalogEntry, ...] = (
    CatalogEntry(
        "vgg16", "VGG16", "vgg16.preprocess_input", 224, 512,
        "VGG16 (2014): 13 conv layers, 14.7M params, caffe preprocessing",
    ),
    CatalogEntry(
        "resnet50", "ResNet50", "resnet.preprocess_input", 224, 2048,
        "ResNet50 (2015): residual bottleneck blocks, 23.6M params",
    ),
    CatalogEntry(
        "resnet50_v2", "ResNet50V2", "resnet_v2.preprocess_input", 224, 2048,
        "ResNet50V2 (2016): pre-activation residual blocks, 23.6M params",
    ),
    CatalogEntry(
        "mobilenet", "MobileNet", "mobilenet.preprocess_input", 224, 1024,
        "MobileNet v1 (2017): depthwise separable convs; width 1024*alpha",
    ),
    CatalogEntry(
        "mobilenet_v2", "MobileNetV2", "mobilenet_v2.preprocess_input", 224, 1280,
        "MobileNetV2 (2018): inverted residuals, 2.3M params",
    ),
    CatalogEntry(
        "mobilenet_v3_small", "MobileNetV3Small", None, 224, 576,
        "MobileNetV3 Small (2019): NAS-designed, preprocessing built in",
    ),
    CatalogEntry(
        "mobilenet_v3_large", "MobileNetV3Large", None, 224, 960,
        "MobileNetV3 Large (2019): NAS-designed, preprocessing built in",
    ),
    CatalogEntry(
        "efficientnet_v2_b0", "EfficientNetV2B0", None, 224, 1280,
        "EfficientNetV2-B0 (2021): fused MBConv, preprocessing built in",
    ),
    CatalogEntry(
        "inception_v3", "InceptionV3", "inception_v3.preprocess_input", 299, 2048,
        "InceptionV3 (2015): factorised inception modules, 21.8M params", min_size=75,
    ),
    CatalogEntry(
        "xception", "Xception", "xception.preprocess_input", 299, 2048,
        "Xception (2016): depthwise separable inception, 20.9M params", min_size=71,
    ),
    CatalogEntry(
        "densenet121", "DenseNet121", "densenet.preprocess_input", 224, 1024,
        "DenseNet121 (2016): densely connected blocks, 7.0M params, torch preprocessing",
    ),
    CatalogEntry(
        "convnext_tiny", "ConvNeXtTiny", None, 224, 768,
        "ConvNeXt Tiny (2022): modernised ResNet, 27.8M params, preprocessing built in",
    ),
    CatalogEntry(
        "nasnet_mobile", "NASNetMobile", "nasnet.preprocess_input", 224, 1056,
        "NASNet Mobile (2017): NAS-designed cells, 4.3M params",
    ),
    CatalogEntry(
        "dann_mnist_cnn", "tfxfer.image.small_cnns:dann_mnist_cnn",
        "tfxfer.image.small_cnns:unit_scale", 28, 768,
        "DANN paper's MNIST CNN (2015): 2 conv + pool, 768 flat features; no pretrained "
        "weights", min_size=28,
    ),
)


def check_builtin_backbone(name: str) -> None:
    """Raises ValueError, listing the valid names, unless `name` matches a built-in backbone.

    Matching follows `tfxfer.utils.registry` (case, "_" and "-" ignored), as `get_backbone`.
    """
    if registry_key(name) not in {registry_key(e.name) for e in BUILTIN_BACKBONES}:
        raise ValueError(f"Unknown backbone {name!r}. Valid backbones: "
                         f"{', '.join(e.name for e in BUILTIN_BACKBONES)}")


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
