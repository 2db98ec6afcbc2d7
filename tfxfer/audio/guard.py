"""A duration budget for WAV bytes, checked in the exported graph before decoding.

PCM WAV is not compressed, so its bytes bound its decoded size (float32 is twice
16-bit PCM); the budget is about work and abuse: a request of an hour of audio is
decoded and resampled before the clip is cut from it. The graph reads the canonical
header (`RIFF....WAVEfmt `, the byte rate at offset 28) and refuses bytes declaring
more than `max_seconds` with INVALID_ARGUMENT (HTTP 400 in TF Serving and
`tfxfer serve`); files whose `fmt ` chunk is elsewhere are measured after decoding
(`tfxfer.audio.decode.decode_wav_bytes`, `max_seconds`), with the same message.
"""

from __future__ import annotations

import tensorflow as tf

_HEADER_BYTES = 44  # the canonical PCM header: RIFF, WAVE, fmt (16 bytes), data


def _little_endian(padded: tf.Tensor, start: int, length: int) -> tf.Tensor:
    values = tf.cast(tf.io.decode_raw(tf.strings.substr(padded, start, length), tf.uint8),
                     tf.float64)
    return tf.reduce_sum(values * (256.0 ** tf.range(length, dtype=tf.float64)))


def declared_seconds(encoded: tf.Tensor) -> tf.Tensor:
    """Seconds of audio canonical WAV bytes declare (float64); 0 when not canonical."""
    padded = tf.strings.join([encoded, tf.constant(b"\0" * _HEADER_BYTES)])
    canonical = tf.logical_and(
        tf.equal(tf.strings.substr(padded, 0, 4), b"RIFF"),
        tf.equal(tf.strings.substr(padded, 8, 8), b"WAVEfmt "))
    byte_rate = _little_endian(padded, 28, 4)
    payload = tf.cast(tf.strings.length(encoded) - _HEADER_BYTES, tf.float64)
    seconds = tf.math.divide_no_nan(tf.maximum(payload, 0.0), byte_rate)
    return tf.where(canonical, seconds, tf.constant(0.0, tf.float64))


def budget_check(seconds: tf.Tensor, max_seconds: float) -> tf.Operation:
    """An assertion that `seconds` <= `max_seconds`, with the message the export gives."""
    return tf.debugging.Assert(tf.cast(seconds, tf.float64) <= float(max_seconds), [
        tf.strings.format(
            "WAV audio of {} s is over the audio budget of " f"{max_seconds:g} s set at "
            "export (tfxfer export --max-audio-seconds).",
            tf.strings.as_string(tf.cast(seconds, tf.float64), precision=1))], summarize=1)


def within_duration_budget(encoded: tf.Tensor, max_seconds: float) -> tf.Tensor:
    """`encoded`, after checking that its header declares at most `max_seconds` of audio.

    Raises (when the graph runs):
        tf.errors.InvalidArgumentError: the audio is over the budget; the message gives
            its duration and the budget.
    """
    with tf.control_dependencies([budget_check(declared_seconds(encoded), max_seconds)]):
        return tf.identity(encoded)
