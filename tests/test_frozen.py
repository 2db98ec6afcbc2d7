"""frozen_function: a frozen part's weights as constants, random layers still drawing."""

import keras
import numpy as np
from conftest import random_images

from tfxfer.evaluation import inference_function
from tfxfer.image.layers import RandomAffine
from tfxfer.training.frozen import frozen_function


def _conv_bn(inputs, frozen=True):
    conv = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="conv")
    bn = keras.layers.BatchNormalization(name="bn")
    x = keras.layers.ReLU(6.0)(bn(conv(inputs)))
    bn.moving_mean.assign(np.linspace(-1, 1, 4).astype("float32"))
    bn.moving_variance.assign(np.linspace(0.5, 2, 4).astype("float32"))
    bn.trainable = not frozen
    return keras.layers.GlobalAveragePooling2D()(x)


def _inputs(n=6):
    """Preprocessed-range inputs of the tiny 10x10 models below."""
    return random_images(n, 10, low=-1, high=1, dtype="float32")


def _baked_in(model, extract, images) -> bool:
    """Whether `extract` ignores a later change of the model's convolution kernel."""
    before = np.asarray(extract(images))
    kernel = model.get_layer("conv").kernel
    kernel.assign(kernel.numpy() * 2)
    return np.allclose(np.asarray(extract(images)), before)


def test_constant_weights_give_the_same_outputs():
    inputs = keras.Input((10, 10, 3))
    model = keras.Model(inputs, _conv_bn(inputs))
    images = _inputs()
    extract = frozen_function(model)
    np.testing.assert_allclose(np.asarray(extract(images)),
                               np.asarray(inference_function(model)(images)), atol=1e-5)
    assert _baked_in(model, extract, images)


def test_random_layers_draw_afresh_and_the_rest_is_constant():
    inputs = keras.Input((10, 10, 3))
    flip = RandomAffine("horizontal", name="augmentation")  # flips only: outcomes known
    model = keras.Model(inputs, _conv_bn(flip(inputs)))
    images = _inputs(32)
    plain = inference_function(model)
    as_is, mirrored = np.asarray(plain(images)), np.asarray(plain(images[:, :, ::-1]))
    extract = frozen_function(model, training=True)
    draws = [np.asarray(extract(images)) for _ in range(2)]
    for out in draws:
        assert all(np.allclose(o, a, atol=1e-4) or np.allclose(o, m, atol=1e-4)
                   for o, a, m in zip(out, as_is, mirrored))
    assert not np.allclose(draws[0], draws[1])
    kernel = model.get_layer("conv").kernel
    kernel.assign(kernel.numpy() * 2)
    after = np.asarray(extract(images))
    assert all(np.allclose(o, a, atol=1e-4) or np.allclose(o, m, atol=1e-4)
               for o, a, m in zip(after, as_is, mirrored))


def test_a_skip_around_the_random_layer_keeps_the_variables():
    inputs = keras.Input((10, 10, 3))
    skip = RandomAffine("horizontal")(inputs)  # the layers above also read below the cut
    model = keras.Model(inputs, _conv_bn(keras.layers.Add()([skip, inputs])))
    assert not _baked_in(model, frozen_function(model, training=True), _inputs())



def test_a_layer_that_would_update_its_state_gives_the_same_outputs_and_writes_nothing():
    inputs = keras.Input((10, 10, 3))
    model = keras.Model(inputs, _conv_bn(inputs, frozen=False))  # BatchNorm in training mode
    images = _inputs()
    mean = model.get_layer("bn").moving_mean.numpy()
    out = np.asarray(frozen_function(model, training=True)(images))
    np.testing.assert_array_equal(model.get_layer("bn").moving_mean.numpy(), mean)
    np.testing.assert_allclose(out, np.asarray(model(images, training=True)), atol=1e-5)


def test_string_inputs_keep_the_variables():
    inputs = keras.Input((), dtype="string")
    lookup = keras.layers.StringLookup(vocabulary=["a", "b"], output_mode="one_hot")
    model = keras.Model(inputs, lookup(inputs))
    out = np.asarray(frozen_function(model)(np.array(["a", "b", "c"])))
    np.testing.assert_array_equal(out.argmax(1), [1, 2, 0])
