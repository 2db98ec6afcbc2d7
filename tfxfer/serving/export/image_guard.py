"""A pixel budget for encoded images, checked in the exported graph before decoding.

`tf.io.decode_image` allocates height x width x channels bytes for whatever the
header declares: a 1 MB PNG can declare 20000 x 20000 pixels (1.2 GB decoded).
The serving graph reads the dimensions from the header first (JPEG: the SOF
marker via `tf.image.extract_jpeg_shape`; PNG: IHDR; GIF: the logical screen;
BMP: the info header) and refuses an image over the budget with
INVALID_ARGUMENT, which TF Serving and `tfxfer serve` return as 400.
"""

from __future__ import annotations

import tensorflow as tf

_PNG = b"\x89PNG\r\n\x1a\n"
_GIF = b"GIF8"
_BMP = b"BM"
_HEADER_BYTES = 26  # the furthest header field read (BMP height ends at byte 26)


def _bytes_at(padded: tf.Tensor, start: int, length: int) -> tf.Tensor:
    return tf.cast(tf.io.decode_raw(tf.strings.substr(padded, start, length), tf.uint8),
                   tf.float64)


def _big_endian(padded: tf.Tensor, start: int, length: int) -> tf.Tensor:
    values = _bytes_at(padded, start, length)
    return tf.reduce_sum(values * (256.0 ** tf.range(length - 1, -1, -1, dtype=tf.float64)))


def _little_endian(padded: tf.Tensor, start: int, length: int) -> tf.Tensor:
    values = _bytes_at(padded, start, length)
    return tf.reduce_sum(values * (256.0 ** tf.range(length, dtype=tf.float64)))


def _signed32(value: tf.Tensor) -> tf.Tensor:
    return tf.abs(tf.where(value >= 2.0 ** 31, value - 2.0 ** 32, value))  # BMP: top-down < 0


def _header_dims(encoded: tf.Tensor) -> tf.Tensor:
    """[height, width] (float64) from a PNG, GIF or BMP header; [0, 0] for other bytes."""
    padded = tf.strings.join([encoded, tf.constant(b"\0" * _HEADER_BYTES)])
    is_png = tf.equal(tf.strings.substr(padded, 0, len(_PNG)), _PNG)
    is_gif = tf.equal(tf.strings.substr(padded, 0, len(_GIF)), _GIF)
    is_bmp = tf.equal(tf.strings.substr(padded, 0, len(_BMP)), _BMP)
    png = tf.stack([_big_endian(padded, 20, 4), _big_endian(padded, 16, 4)])
    gif = tf.stack([_little_endian(padded, 8, 2), _little_endian(padded, 6, 2)])
    bmp = tf.stack([_signed32(_little_endian(padded, 22, 4)),
                    _signed32(_little_endian(padded, 18, 4))])
    zero = tf.zeros([2], tf.float64)
    return tf.where(is_png, png, tf.where(is_gif, gif, tf.where(is_bmp, bmp, zero)))


def image_dims(encoded: tf.Tensor) -> tf.Tensor:
    """[height, width] (float64) an encoded image declares, read without decoding it.

    Bytes of no known format give [0, 0] (the decoder then rejects them).
    """
    return tf.cond(
        tf.image.is_jpeg(encoded),
        lambda: tf.cast(tf.image.extract_jpeg_shape(encoded)[:2], tf.float64),
        lambda: _header_dims(encoded),
    )


def within_pixel_budget(encoded: tf.Tensor, max_pixels: int) -> tf.Tensor:
    """`encoded`, after checking that its header declares at most `max_pixels` pixels.

    Raises (when the graph runs):
        tf.errors.InvalidArgumentError: the image is over the budget; the message
            gives its size and the budget.
    """
    dims = image_dims(encoded)
    pixels = dims[0] * dims[1]
    check = tf.debugging.Assert(pixels <= float(max_pixels), [tf.strings.format(
        "Image of {}x{} pixels (width x height) is over the pixel budget of "
        f"{max_pixels} set at export (tfxfer export --max-pixels).",
        (tf.cast(dims[1], tf.int64), tf.cast(dims[0], tf.int64)))], summarize=1)
    with tf.control_dependencies([check]):
        return tf.identity(encoded)
