"""Calibration images for full-integer quantization, from the run's training split.

A few hundred training examples (default 300, drawn with the run's seed so
every class is covered) are decoded exactly as in training (`decode_image`:
decode, antialiased resize to S x S, uint8). An example that cannot be read or
decoded is skipped and counted, not fatal: the calibration only needs enough
typical images, and the count goes into `tflite_report.json`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfxfer.data.pipeline import decode_image
from tfxfer.lite.quantization import DEFAULT_REPRESENTATIVE_EXAMPLES

logger = logging.getLogger(__name__)

@dataclass
class RepresentativeSet:
    """Decoded calibration images and what was skipped.

    Attributes:
        images: uint8 [N, S, S, 3].
        source: where they came from (e.g. "train split of flower_photos").
        skipped: (example, reason) of every example that could not be used.
    """

    images: np.ndarray
    source: str
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> dict:
        return {
            "source": self.source,
            "examples": int(len(self.images)),
            "skipped": len(self.skipped),
            "skipped_examples": [{"example": n, "reason": r} for n, r in self.skipped],
        }


def _encoded(item: bytes | str | Path) -> tuple[str, bytes]:
    """(name, encoded bytes) of a file path or of bytes."""
    if isinstance(item, (bytes, bytearray)):
        return f"<{len(item)} bytes>", bytes(item)
    return str(item), Path(item).read_bytes()


def collect_images(
    items: Iterable[bytes | str | Path],
    image_size: int,
    limit: int = DEFAULT_REPRESENTATIVE_EXAMPLES,
    source: str = "",
) -> RepresentativeSet:
    """Decodes up to `limit` images, skipping and counting the unreadable ones.

    Args:
        items: encoded images or paths of image files, in the order to use them.
        image_size: the model's side S.
        limit: how many images to keep.
        source: a description for the report.

    Returns:
        The decoded images and the skipped examples.
    """
    images, skipped = [], []
    for position, item in enumerate(items):
        if len(images) == limit:
            break
        name = str(item) if not isinstance(item, (bytes, bytearray)) else f"example {position}"
        try:
            _, data = _encoded(item)
            image = decode_image(tf.constant(data), image_size).numpy()
        except (OSError, tf.errors.InvalidArgumentError) as err:
            reason = getattr(err, "message", None) or str(err)
            skipped.append((name, reason.splitlines()[0][:200]))
            logger.warning("Skipped representative example %s: %s", name, skipped[-1][1])
            continue
        images.append(image)
    if skipped:
        logger.warning("Skipped %d unreadable representative example(s) of %d kept.",
                       len(skipped), len(images))
    shape = (0, image_size, image_size, 3)
    stacked = np.stack(images) if images else np.zeros(shape, np.uint8)
    return RepresentativeSet(stacked, source, skipped)


def training_examples(splits, seed: int) -> Iterable[bytes | str]:
    """The run's training examples in a seeded random order: file paths or encoded bytes."""
    if "train" in splits.files:
        paths = splits.files["train"]
        return [paths[i] for i in np.random.default_rng(seed).permutation(len(paths))]
    raw = splits.raw["train"].shuffle(min(splits.size("train"), 4096), seed=seed)
    return (example for example, _ in raw.as_numpy_iterator())
