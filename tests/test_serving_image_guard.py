"""The pixel budget of exported image models: header dimensions read before decoding."""

import io
import struct

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfxfer.serving.export.image_guard import image_dims, within_pixel_budget
from tfxfer.serving.export.serving_module import build_serving_module

FORMATS = ["JPEG", "PNG", "GIF", "BMP"]


def _encoded(fmt: str, width: int = 6, height: int = 4) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), 120, np.uint8)).save(buffer, format=fmt)
    return buffer.getvalue()


def _bomb(fmt: str, width: int = 20000, height: int = 20000) -> bytes:
    """A small real image whose header is rewritten to declare width x height."""
    data = bytearray(_encoded(fmt))
    if fmt == "PNG":
        data[16:24] = struct.pack(">II", width, height)
    elif fmt == "GIF":
        data[6:10] = struct.pack("<HH", width, height)
    elif fmt == "BMP":
        data[18:26] = struct.pack("<ii", width, -height)  # negative height: top-down rows
    else:
        sof = data.index(b"\xff\xc0")
        data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.mark.parametrize("fmt", FORMATS)
def test_header_dims_are_read_without_decoding(fmt):
    assert image_dims(tf.constant(_encoded(fmt))).numpy().tolist() == [4.0, 6.0]
    assert image_dims(tf.constant(_bomb(fmt, 30000, 20000))).numpy().tolist() == \
        [20000.0, 30000.0]


@pytest.mark.parametrize("fmt", FORMATS)
def test_image_within_the_budget_passes_and_decodes(fmt):
    checked = within_pixel_budget(tf.constant(_encoded(fmt)), max_pixels=24)
    assert tf.io.decode_image(checked, channels=3, expand_animations=False).shape == (4, 6, 3)


@pytest.mark.parametrize("fmt", FORMATS)
def test_image_over_the_budget_is_refused_before_decoding(fmt):
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"6x4 pixels .* budget of 23"):
        within_pixel_budget(tf.constant(_encoded(fmt)), max_pixels=23)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"20000x20000 pixels"):
        within_pixel_budget(tf.constant(_bomb(fmt)), max_pixels=50_000_000)


def test_bytes_of_no_image_format_are_left_to_the_decoder():
    assert image_dims(tf.constant(b"nope")).numpy().tolist() == [0.0, 0.0]
    assert within_pixel_budget(tf.constant(b"nope"), max_pixels=1).numpy() == b"nope"


def test_exported_bytes_signature_enforces_the_budget(tmp_path):
    inputs = keras.Input((8, 8, 3), dtype="uint8")
    pooled = keras.layers.GlobalAveragePooling2D()(keras.ops.cast(inputs, "float32"))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(pooled))
    module, _ = build_serving_module(model, ["a", "b"], tmp_path / "labels.txt",
                                     max_pixels=100)
    ok = module.serve(tf.constant([_encoded("PNG", 10, 10)]))
    assert ok["probabilities"].shape == (1, 2)
    with pytest.raises(tf.errors.InvalidArgumentError, match="11x10 pixels .* --max-pixels"):
        module.serve(tf.constant([_encoded("PNG", 10, 10), _encoded("PNG", 11, 10)]))
