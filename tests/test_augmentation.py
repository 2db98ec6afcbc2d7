"""RandomAffine: flip, rotation and zoom drawn per image and applied as one resampling."""

import keras
import numpy as np
import pytest
from conftest import random_images

from tfxfer.image.layers import RandomAffine


def test_identity_outside_training():
    images = random_images(16, 12, high=255, dtype="float32")
    out = np.asarray(RandomAffine("horizontal", 0.2, 0.2)(images, training=False))
    np.testing.assert_array_equal(out, images)


def test_flip_alone_gives_each_image_or_its_mirror_and_both_occur():
    images = random_images(32, 12, high=255, dtype="float32")
    out = np.asarray(RandomAffine("horizontal", seed=1)(images, training=True))
    same = [np.allclose(o, i, atol=1e-3) for o, i in zip(out, images)]
    mirrored = [np.allclose(o, i[:, ::-1], atol=1e-3) for o, i in zip(out, images)]
    assert all(s or m for s, m in zip(same, mirrored))
    assert 0 < sum(mirrored) < len(images)


def test_vertical_flip_mirrors_rows():
    images = random_images(32, 12, high=255, dtype="float32")
    out = np.asarray(RandomAffine("vertical", seed=2)(images, training=True))
    assert all(np.allclose(o, i, atol=1e-3) or np.allclose(o, i[::-1], atol=1e-3)
               for o, i in zip(out, images))


def test_drawn_maps_stay_in_the_configured_ranges():
    layer = RandomAffine("horizontal_and_vertical", rotation=0.1, zoom=0.2, seed=3)
    t = np.asarray(layer.transforms(2000, 20, 30))
    m = t[:, [0, 1, 3, 4]].reshape(-1, 2, 2)
    scale = np.sqrt(np.abs(np.linalg.det(m)))
    assert 0.8 - 1e-5 <= scale.min() and scale.max() <= 1.2 + 1e-5
    assert scale.min() < 0.82 and scale.max() > 1.18
    cos = np.abs(m[:, 0, 0]) / scale  # |angle| <= 0.1 of a turn; a flip only changes signs
    assert cos.min() >= np.cos(0.2 * np.pi) - 1e-5 and cos.min() < np.cos(0.18 * np.pi)
    # the centre of the image maps to itself
    cx, cy = 14.5, 9.5
    np.testing.assert_allclose(t[:, 0] * cx + t[:, 1] * cy + t[:, 2], cx, atol=1e-4)
    np.testing.assert_allclose(t[:, 3] * cx + t[:, 4] * cy + t[:, 5], cy, atol=1e-4)
    np.testing.assert_array_equal(t[:, 6:], 0)


def test_seeded_layers_repeat_and_calls_draw_afresh():
    images = random_images(16, 12, high=255, dtype="float32")
    a, b = (RandomAffine("horizontal", 0.1, 0.1, seed=5) for _ in range(2))
    first = np.asarray(a(images, training=True))
    np.testing.assert_array_equal(first, np.asarray(b(images, training=True)))
    assert not np.allclose(first, np.asarray(a(images, training=True)))


def test_config_round_trip_and_keras_file(tmp_path):
    inputs = keras.Input((12, 12, 3))
    model = keras.Model(inputs, RandomAffine("vertical", 0.05, 0.1, name="augmentation")(inputs))
    model.save(tmp_path / "m.keras")
    layer = keras.saving.load_model(tmp_path / "m.keras").get_layer("augmentation")
    assert (layer.flip, layer.rotation, layer.zoom) == ("vertical", 0.05, 0.1)


@pytest.mark.parametrize("kwargs, named", [
    ({"flip": "sideways"}, "'sideways'"), ({"rotation": 0.7}, "0.7"), ({"zoom": 1.0}, "1.0")])
def test_bad_arguments_are_named(kwargs, named):
    with pytest.raises(ValueError, match=named):
        RandomAffine(**kwargs)
