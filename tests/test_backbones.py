import keras
import numpy as np
import pytest

from tfxfer.image.backbones import BackboneSpec, build_backbone, get_backbone, list_backbones
from tfxfer.image.layers import BackbonePreprocess

SPECS = list_backbones()


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_every_backbone_builds_with_its_declared_width(spec: BackboneSpec):
    # Small inputs keep the test fast; never above the default (the width of a
    # flattening backbone such as dann_mnist_cnn is declared at its default size).
    size = min(max(spec.min_size, 32), spec.input_size)
    backbone = build_backbone(spec.name, weights=None, image_size=size)
    assert backbone.name == "backbone"
    assert backbone.input_shape == (None, size, size, 3)
    assert backbone.output_shape[-1] == spec.feature_width
    images = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype("float32")
    features = backbone(BackbonePreprocess(spec.name)(images), training=False)
    assert features.shape[0] == 2 and features.shape[-1] == spec.feature_width
    assert np.isfinite(np.asarray(features)).all()


def test_registry_has_the_required_backbones_and_defaults():
    names = {s.name for s in SPECS}
    assert {"vgg16", "resnet50", "mobilenet_v2"} <= names
    assert len(SPECS) >= 13
    assert get_backbone("inception_v3").input_size == 299
    assert all(s.description for s in SPECS)


def test_names_match_ignoring_case_and_separators():
    assert get_backbone("MobileNetV2").name == "mobilenet_v2"
    assert get_backbone("ResNet-50").name == "resnet50"


def test_unknown_backbone_lists_the_valid_names():
    with pytest.raises(ValueError, match="Unknown backbone 'resnet9000'.*vgg16.*mobilenet_v2"):
        get_backbone("resnet9000")


def test_constructor_options_pass_through():
    backbone = build_backbone("mobilenet", weights=None, image_size=32, alpha=0.25)
    assert backbone.output_shape[-1] == 256


def test_image_size_below_minimum_is_an_error():
    with pytest.raises(ValueError, match="at least 75.*image_size=32"):
        build_backbone("inception_v3", weights=None, image_size=32)


def test_missing_weights_file_names_the_argument(tmp_path):
    missing = tmp_path / "nope.h5"
    with pytest.raises(FileNotFoundError, match="weights='.*nope.h5'"):
        build_backbone("mobilenet", weights=str(missing), image_size=32, alpha=0.25)


def test_local_weights_file_is_loaded(tmp_path):
    source = build_backbone("mobilenet", weights=None, image_size=32, alpha=0.25)
    path = tmp_path / "backbone.weights.h5"
    source.save_weights(path)
    loaded = build_backbone("mobilenet", weights=str(path), image_size=32, alpha=0.25)
    for a, b in zip(source.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name, module", [
    ("vgg16", keras.applications.vgg16),
    ("mobilenet_v2", keras.applications.mobilenet_v2),
    ("densenet121", keras.applications.densenet),
])
def test_preprocess_layer_applies_the_backbones_own_function(name, module):
    images = np.random.default_rng(1).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    expected = module.preprocess_input(images.copy())
    np.testing.assert_allclose(BackbonePreprocess(name)(images), expected, rtol=1e-5, atol=1e-4)
