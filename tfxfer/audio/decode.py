"""WAV bytes to the waveform an audio model takes: mono, resampled, one clip long.

    bytes -> tf.audio.decode_wav (16-bit PCM) -> mean over channels -> resample to
        `sample_rate` (linear interpolation) -> crop (centred) / zero-pad (at the end)
        to `clip_samples`

The same function runs in the training pipeline and in the exported graph, so a
served model sees exactly what it was trained on. Linear interpolation has no
anti-aliasing filter: downsampling (16 kHz -> 8 kHz) folds energy above the new
Nyquist frequency back; for speech at these rates the log-mel front end hardly
notices, but resample offline (sox, librosa) when it matters.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf


def clip_samples(sample_rate: int, clip_seconds: float) -> int:
    """Samples of one clip: `round(sample_rate * clip_seconds)`."""
    return int(round(sample_rate * clip_seconds))


def resample(waveform: tf.Tensor, rate_in: tf.Tensor, rate_out: int) -> tf.Tensor:
    """Linearly resamples a 1-D waveform from `rate_in` to `rate_out` Hz (identity when equal)."""
    rate_in = tf.cast(rate_in, tf.float64)
    length = tf.shape(waveform, out_type=tf.int64)[0]

    def interpolate():
        n_out = tf.cast(tf.math.ceil(tf.cast(length, tf.float64) * rate_out / rate_in),
                        tf.int64)
        position = tf.range(n_out, dtype=tf.float64) * rate_in / rate_out
        left = tf.minimum(tf.cast(tf.floor(position), tf.int64), length - 1)
        right = tf.minimum(left + 1, length - 1)
        frac = tf.cast(position - tf.cast(left, tf.float64), waveform.dtype)
        return (tf.gather(waveform, left) * (1 - frac) + tf.gather(waveform, right) * frac)

    same = tf.logical_or(tf.equal(rate_in, float(rate_out)), tf.equal(length, 0))
    return tf.cond(same, lambda: waveform, interpolate)


def fit_to_clip(waveform: tf.Tensor, samples: int) -> tf.Tensor:
    """Crops the middle `samples` of a longer waveform, zero-pads a shorter one at the end."""
    length = tf.shape(waveform)[0]
    start = tf.maximum((length - samples) // 2, 0)
    cropped = waveform[start:start + samples]
    padded = tf.pad(cropped, [[0, samples - tf.shape(cropped)[0]]])
    return tf.ensure_shape(padded, [samples])


def decode_wav_bytes(encoded: tf.Tensor, sample_rate: int, samples: int,
                     max_seconds: float | None = None) -> tf.Tensor:
    """Decodes one WAV file's bytes to a float32 waveform of `samples` at `sample_rate`.

    Multi-channel audio is averaged to mono. Raises (when the graph runs)
    InvalidArgumentError for bytes that are not 16-bit PCM WAV, for files with no
    channel and, with `max_seconds`, for audio longer than that (`tfxfer.audio.guard`).
    """
    audio, rate = tf.audio.decode_wav(encoded)
    checks = [tf.debugging.assert_positive(tf.shape(audio)[1],
                                           message="WAV file has no channel")]
    if max_seconds is not None:
        from tfxfer.audio.guard import budget_check

        seconds = tf.cast(tf.shape(audio)[0], tf.float64) / tf.cast(rate, tf.float64)
        checks.append(budget_check(seconds, max_seconds))
    with tf.control_dependencies(checks):
        mono = tf.reduce_mean(audio, axis=1)
    return fit_to_clip(resample(mono, rate, sample_rate), samples)


def wav_decoder(sample_rate: int, samples: int, from_paths: bool) -> Callable:
    """A map function from (path or WAV bytes, label) to (float32 waveform, label)."""

    @tf.autograph.experimental.do_not_convert
    def decode(raw, label):
        encoded = tf.io.read_file(raw) if from_paths else raw
        return decode_wav_bytes(encoded, sample_rate, samples), label

    return decode
