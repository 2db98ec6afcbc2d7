"""Tiny synthetic WAV folders for the audio tests: one sine pitch per class."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

PITCHES = {"low": 300.0, "high": 1500.0}


def tone(pitch: float, rate: int, seconds: float, phase: float = 0.0,
         channels: int = 1) -> np.ndarray:
    """int16 samples [n, channels] of a sine tone with a little noise."""
    t = np.arange(int(rate * seconds)) / rate
    rng = np.random.default_rng(int(pitch + phase * 100))
    x = 0.5 * np.sin(2 * np.pi * pitch * t + phase) + rng.normal(0, 0.01, t.shape)
    return np.repeat((np.clip(x, -1, 1) * 32767).astype(np.int16)[:, None], channels, axis=1)


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(samples.shape[1])
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(samples.astype("<i2").tobytes())
    return path


def tone_folder(root: Path, per_class: int = 6, rates=(8000, 16000),
                seconds: float = 0.5) -> Path:
    """root/<class>/<i>.wav: sine tones per class, alternating sample rates and lengths."""
    for name, pitch in PITCHES.items():
        for i in range(per_class):
            rate = rates[i % len(rates)]
            length = seconds * (0.6 + 0.2 * (i % 4))
            write_wav(root / name / f"{i}.wav", tone(pitch, rate, length, phase=i), rate)
    return root
