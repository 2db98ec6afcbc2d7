"""Real example inputs for warmup requests and export verification.

For an image run they are the first readable files of its `splits.csv` (test
split first), i.e. photos the model was evaluated on. When the files are gone
(or the run came from TFDS), a JPEG and a PNG are encoded from a smooth colour
gradient, so decoding of both formats is still exercised. Text models get a few
sentences; audio runs their own WAV files, or else synthetic tones (8 and 16 kHz,
so resampling is exercised).
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfxfer import rundir

logger = logging.getLogger(__name__)

TEXT_SAMPLES = (
    "A moving story with wonderful performances; I loved every minute of it.",
    "Dull, predictable and far too long.",
    "It was fine.",
)
_SPLIT_ORDER = {"test": 0, "val": 1, "train": 2}


def synthetic_images(count: int = 2, size: tuple[int, int] = (48, 40)) -> list[bytes]:
    """Encoded images of a noisy colour gradient, alternately JPEG and PNG."""
    rng = np.random.default_rng(0)
    h, w = size
    encoded = []
    for i in range(count):
        ramp = np.linspace(0, 255, w)[None, :, None] * np.ones((h, 1, 3))
        pixels = np.clip(ramp * [1.0, 0.5 + 0.2 * i, 0.25] + rng.normal(0, 8, (h, w, 3)), 0, 255)
        image = tf.constant(pixels.astype(np.uint8))
        data = tf.io.encode_jpeg(image) if i % 2 == 0 else tf.io.encode_png(image)
        encoded.append(bytes(data.numpy()))
    return encoded


def synthetic_wavs(count: int = 2) -> list[bytes]:
    """16-bit PCM WAV bytes of short tones, alternately at 8 kHz and 16 kHz."""
    import io
    import wave

    encoded = []
    for i in range(count):
        rate = (8000, 16000)[i % 2]
        t = np.arange(int(rate * 0.6)) / rate
        pcm = (0.4 * np.sin(2 * np.pi * (300 + 400 * i) * t) * 32767).astype("<i2")
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as f:
            f.setnchannels(1)
            f.setsampwidth(2)
            f.setframerate(rate)
            f.writeframes(pcm.tobytes())
        encoded.append(buffer.getvalue())
    return encoded


def _run_image_files(run_dir: Path, count: int) -> list[bytes]:
    path = run_dir / rundir.SPLITS
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: _SPLIT_ORDER.get(r.get("split"), 3))
    found = []
    for row in rows:
        try:
            found.append(Path(row["path"]).read_bytes())
        except (OSError, KeyError, TypeError):
            continue
        if len(found) == count:
            break
    return found


def run_samples(run_dir: str | Path, modality: str, count: int = 3) -> list[bytes | str]:
    """Up to `count` inputs in the form `serving_default` takes, for a run.

    Args:
        run_dir: the run directory (its `splits.csv` names the image files).
        modality: "image", "text" or "audio".
        count: how many inputs.

    Returns:
        Encoded image or WAV bytes, or text strings.
    """
    if modality == "text":
        return list(TEXT_SAMPLES[:count])
    files = _run_image_files(Path(run_dir), count)
    if files:
        return files
    if modality == "audio":
        logger.info("No WAV files of %s are readable; using synthetic tones.", run_dir)
        return synthetic_wavs(min(count, 2))
    logger.info("No image files of %s are readable; using encoded synthetic images.", run_dir)
    return synthetic_images(min(count, 2))


def read_samples(paths: list[str | Path], modality: str) -> list[bytes | str]:
    """Inputs read from files: bytes for image models, the text of each file for text."""
    samples: list[bytes | str] = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Sample file not found: {path}")
        samples.append(path.read_text() if modality == "text" else path.read_bytes())
    return samples
