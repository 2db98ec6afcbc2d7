"""Layers inside audio models (all survive `.keras` saving): the log-mel front end and
training-only augmentation.

    waveform [B, N] -> WaveAugment (shift, noise; training) -> LogMelSpectrogram [B, T, M]
        -> SpecAugment (training) -> SpectrogramImage [B, S, S, 3] -> the image backbone

The spectrogram is in dB below each clip's own peak, floored at `-top_db`, so the
model does not depend on the recording level; `SpectrogramImage` maps that range to
the 0-255 of a picture (low frequencies at the bottom) for the backbone's own
preprocessing.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf


def _next_power_of_two(n: int) -> int:
    return 1 << max(0, int(n - 1).bit_length())


@keras.saving.register_keras_serializable(package="tfxfer")
class LogMelSpectrogram(keras.layers.Layer):
    """Waveforms [B, N] to log-mel spectrograms [B, frames, n_mels] in dB below the peak.

    A Hann-window STFT (`tf.signal.stft`), power, a mel filter bank
    (`tf.signal.linear_to_mel_weight_matrix`), then 10·log10, relative to the clip's
    maximum and floored at `-top_db`.

    With `band_norm`, each mel band's mean over the clip's active frames (those within
    `top_db / 2` of the clip's peak) is subtracted, then the clip is put below its peak
    again: the cepstral mean normalisation of speech recognition, which removes what is
    constant over a clip (the microphone's and, in part, the voice's spectral tilt).
    Silent frames stay at the floor.

    Args:
        sample_rate: the waveforms' rate in Hz.
        frame_ms, hop_ms: STFT window and hop in milliseconds.
        n_mels: mel bands.
        fmin, fmax: band edges in Hz (fmax None: sample_rate / 2).
        top_db: dynamic range kept below each clip's peak.
        band_norm: subtract each band's mean over the active frames.
    """

    def __init__(self, sample_rate: int, frame_ms: float = 25.0, hop_ms: float = 10.0,
                 n_mels: int = 64, fmin: float = 20.0, fmax: float | None = None,
                 top_db: float = 80.0, band_norm: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sample_rate, self.frame_ms, self.hop_ms = int(sample_rate), frame_ms, hop_ms
        self.n_mels, self.fmin, self.fmax, self.top_db = n_mels, fmin, fmax, top_db
        self.band_norm = bool(band_norm)
        self.frame_length = int(round(sample_rate * frame_ms / 1000))
        self.frame_step = int(round(sample_rate * hop_ms / 1000))
        self.fft_length = _next_power_of_two(self.frame_length)
        upper = fmax or sample_rate / 2
        if not 0 <= fmin < upper <= sample_rate / 2:
            raise ValueError(f"Mel band edges must satisfy 0 <= fmin < fmax <= sample_rate/2. "
                             f"Received: fmin={fmin}, fmax={fmax}, sample_rate={sample_rate}")
        self._mel = tf.signal.linear_to_mel_weight_matrix(
            n_mels, self.fft_length // 2 + 1, sample_rate, fmin, upper)

    def frames(self, samples: int) -> int:
        """Frames of a spectrogram of `samples` samples (no padding at the ends)."""
        return 1 + max(0, (samples - self.frame_length) // self.frame_step)

    def call(self, waveforms):
        x = tf.cast(waveforms, tf.float32)
        stft = tf.signal.stft(x, self.frame_length, self.frame_step, self.fft_length)
        mel = tf.tensordot(tf.math.square(tf.abs(stft)), self._mel, 1)
        db = 10.0 * tf.math.log(tf.maximum(mel, 1e-10)) / tf.math.log(10.0)
        db = db - tf.reduce_max(db, axis=[1, 2], keepdims=True)
        if self.band_norm:
            db = self._normalise_bands(tf.maximum(db, -self.top_db))
        return tf.maximum(db, -self.top_db)

    def _normalise_bands(self, db):
        """`db` [B, T, M] minus each band's mean over the active frames, below its peak."""
        active = tf.reduce_max(db, axis=2, keepdims=True) > -self.top_db / 2  # [B, T, 1]
        weight = tf.cast(active, db.dtype)
        mean = tf.reduce_sum(db * weight, axis=1, keepdims=True) / tf.maximum(
            tf.reduce_sum(weight, axis=1, keepdims=True), 1.0)
        db = tf.where(active, db - mean, -np.inf)
        return db - tf.reduce_max(db, axis=[1, 2], keepdims=True)

    def compute_output_shape(self, input_shape):
        samples = input_shape[1]
        return (input_shape[0], None if samples is None else self.frames(samples), self.n_mels)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "sample_rate": self.sample_rate,
                "frame_ms": self.frame_ms, "hop_ms": self.hop_ms, "n_mels": self.n_mels,
                "fmin": self.fmin, "fmax": self.fmax, "top_db": self.top_db,
                "band_norm": self.band_norm}


@keras.saving.register_keras_serializable(package="tfxfer")
class SpectrogramImage(keras.layers.Layer):
    """Log-mel spectrograms [B, T, M] (dB in [-top_db, 0]) to [B, size, size, 3] pictures.

    Time runs left to right, frequency bottom to top; -top_db..0 dB becomes 0..255 in
    all three channels, the range the image backbones' `preprocess_input` expects.

    Args:
        size: the side of the picture (the backbone's input size).
        top_db: the spectrogram's floor below its peak (as in `LogMelSpectrogram`).
    """

    def __init__(self, size: int, top_db: float = 80.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.size, self.top_db = int(size), top_db

    def call(self, spectrograms):
        x = tf.cast(spectrograms, tf.float32)
        x = tf.reverse(tf.transpose(x, [0, 2, 1]), axis=[1])[..., None]  # [B, M, T, 1]
        x = tf.image.resize(x, [self.size, self.size], method="bilinear")
        x = (x + self.top_db) * (255.0 / self.top_db)
        return tf.cast(tf.tile(tf.clip_by_value(x, 0.0, 255.0), [1, 1, 1, 3]),
                       self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.size, self.size, 3)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "size": self.size, "top_db": self.top_db}


@keras.saving.register_keras_serializable(package="tfxfer")
class WaveAugment(keras.layers.Layer):
    """Random speed, time shift and Gaussian noise of waveforms [B, N] (training only).

    Each clip is played at a speed uniform in [1 - `speed`, 1 + `speed`] (pitch and
    tempo change together, the "speed perturbation" of Ko et al. 2015, which makes
    voices of other speakers), moved by a uniform shift in ±`time_shift`·N samples
    (what moves out is dropped, zeros come in), and gets noise of standard deviation
    uniform in [0, `noise`] times its peak amplitude. One linear resampling does the
    speed and the shift.

    Args:
        time_shift: largest shift as a fraction of the clip, in [0, 1).
        noise: largest noise level as a fraction of the clip's peak, in [0, 1).
        speed: largest change of playback speed, in [0, 1).
        seed: seed of the layer's random generator.
    """

    def __init__(self, time_shift: float = 0.1, noise: float = 0.01, speed: float = 0.0,
                 seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not (0 <= time_shift < 1 and 0 <= noise < 1 and 0 <= speed < 1):
            raise ValueError(f"time_shift, noise and speed must be in [0, 1). Received: "
                             f"time_shift={time_shift}, noise={noise}, speed={speed}")
        self.time_shift, self.noise, self.speed, self.seed = time_shift, noise, speed, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _resample(self, x, n, length):
        """Each clip read at a random speed from a random offset, linearly interpolated."""
        span = tf.cast(length, tf.float32)
        rate = keras.random.uniform((n, 1), 1 - self.speed, 1 + self.speed,
                                    seed=self.seed_generator)
        shift = keras.random.uniform((n, 1), -self.time_shift, self.time_shift,
                                     seed=self.seed_generator) * span
        source = tf.range(span)[None, :] * rate - shift
        left = tf.floor(source)
        frac = source - left
        left = tf.cast(left, tf.int32)

        def at(index):
            inside = tf.logical_and(index >= 0, index < length)
            values = tf.gather(x, tf.clip_by_value(index, 0, length - 1), batch_dims=1)
            return tf.where(inside, values, 0.0)

        return at(left) * (1 - frac) + at(left + 1) * frac

    def call(self, waveforms, training=None):
        if not training:
            return waveforms
        x = tf.cast(waveforms, tf.float32)
        n, length = tf.shape(x)[0], tf.shape(x)[1]
        x = self._resample(x, n, length)
        level = keras.random.uniform((n, 1), 0.0, self.noise, seed=self.seed_generator)
        peak = tf.reduce_max(tf.abs(x), axis=1, keepdims=True)
        x = x + level * peak * keras.random.normal(tf.shape(x), seed=self.seed_generator)
        return tf.cast(x, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "time_shift": self.time_shift, "noise": self.noise,
                "speed": self.speed, "seed": self.seed}


@keras.saving.register_keras_serializable(package="tfxfer")
class SpecAugment(keras.layers.Layer):
    """SpecAugment frequency and time masks on spectrograms [B, T, M] (training only).

    Park et al. (2019) without time warping: `masks` bands of up to `freq_mask` mel
    bins and `masks` spans of up to `time_mask` frames per clip, each width and start
    uniform, set to the spectrogram's floor `-top_db` (silence).

    Args:
        masks: masks of each kind per clip.
        freq_mask: widest frequency mask in mel bands.
        time_mask: widest time mask in frames.
        top_db: the value masked cells get is `-top_db`.
        seed: seed of the layer's random generator.
    """

    def __init__(self, masks: int = 1, freq_mask: int = 8, time_mask: int = 10,
                 top_db: float = 80.0, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.masks, self.freq_mask, self.time_mask = masks, freq_mask, time_mask
        self.top_db, self.seed = top_db, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _mask(self, n, size, widest):
        """[n, size] True where one of `masks` random spans of width <= `widest` lies."""
        positions = tf.range(size)[None, :]
        masked = tf.zeros((n, size), tf.bool)
        for _ in range(self.masks):
            width = keras.random.randint((n, 1), 0, widest + 1, seed=self.seed_generator)
            width = tf.minimum(tf.cast(width, tf.int32), size)
            start = tf.cast(keras.random.uniform((n, 1), 0.0, 1.0, seed=self.seed_generator)
                            * tf.cast(size - width + 1, tf.float32), tf.int32)
            masked |= (positions >= start) & (positions < start + width)
        return masked

    def call(self, spectrograms, training=None):
        if not training or self.masks == 0:
            return spectrograms
        x = tf.cast(spectrograms, tf.float32)
        n, frames, bands = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
        masked = (self._mask(n, frames, self.time_mask)[:, :, None]
                  | self._mask(n, bands, self.freq_mask)[:, None, :])
        return tf.cast(tf.where(masked, -self.top_db, x), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "masks": self.masks, "freq_mask": self.freq_mask,
                "time_mask": self.time_mask, "top_db": self.top_db, "seed": self.seed}


def spectrogram_picture(encoded, size: int = 128) -> np.ndarray:
    """A uint8 [size, size, 3] log-mel picture of WAV bytes at their own rate (for reports).

    The whole file is shown (no clip crop), with the default front end.
    """
    audio, rate = tf.audio.decode_wav(encoded)
    mono = tf.reduce_mean(audio, axis=1)[None, :]
    rate = int(rate)
    mel = LogMelSpectrogram(rate, n_mels=64, fmin=min(20.0, rate / 4))(mono)
    return np.asarray(SpectrogramImage(size)(mel)[0]).astype(np.uint8)
