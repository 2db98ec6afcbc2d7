"""Target-domain data for domain adaptation: unlabelled images, and mixed batches.

The target folder may be flat (`target/*.png`) or hold class subfolders; labels
are never read from it (the log says so). A separate labelled target test folder
(`adaptation.target_test_source`) only measures target accuracy after each epoch.

    source batches (x_s, y_s) ─┐
                               zip ─> ((x_s, x_t), y_s)   one step = half source, half target
    target images x_t, repeated ┘
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfxfer.data import SkippedFile, check_image, decode_image, scan_image_folder
from tfxfer.data.images import IMAGE_EXTENSIONS

logger = logging.getLogger(__name__)

AUTOTUNE = tf.data.AUTOTUNE
TARGET_FLAG = "--target-data (adaptation.target_source)"


@dataclass
class TargetImages:
    """The usable images of an unlabelled target folder.

    Attributes:
        root: the folder.
        paths: image file paths, sorted.
        skipped: files left out, with the reason.
        had_labels: the folder holds class subfolders (whose names were ignored).
    """

    root: str
    paths: list[str]
    skipped: list[SkippedFile] = field(default_factory=list)
    had_labels: bool = False


def image_files(root: Path) -> list[Path]:
    """The image files under `root` (subfolders too, hidden ones not), sorted."""
    return sorted(
        p for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def scan_target_images(path: str | os.PathLike, validate: bool = True) -> TargetImages:
    """Lists the images of an unlabelled target folder (flat or with subfolders).

    Args:
        path: the target folder.
        validate: decode every file once and leave out the ones that fail.

    Returns:
        TargetImages.

    Raises:
        FileNotFoundError: the folder does not exist.
        ValueError: it is not a folder, holds no image files, or none of them decodes.
    """
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"{TARGET_FLAG} not found: {root}")
    if not root.is_dir():
        raise ValueError(f"{TARGET_FLAG} must be a folder of images. Received: {root}")
    files = [str(p) for p in image_files(root)]
    if not files:
        raise ValueError(
            f"{TARGET_FLAG} {root} holds no image files "
            f"(looked for {', '.join(IMAGE_EXTENSIONS)}, also in subfolders)."
        )
    had_labels = any(p.is_dir() and not p.name.startswith(".") for p in root.iterdir())
    if had_labels:
        logger.info("Target folder %s has subfolders: their names (labels) are ignored; "
                    "domain adaptation uses the target images without labels.", root)
    target = TargetImages(str(root), files, had_labels=had_labels)
    if validate:
        _drop_bad_files(target)
    logger.info("Target domain: %d unlabelled images from %s", len(target.paths), root)
    return target


def _drop_bad_files(target: TargetImages) -> None:
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        reasons = list(pool.map(check_image, target.paths))
    target.skipped = [SkippedFile(p, r) for p, r in zip(target.paths, reasons) if r is not None]
    target.paths = [p for p, r in zip(target.paths, reasons) if r is None]
    for item in target.skipped:
        logger.warning("Skipped target file %s: %s", item.path, item.reason)
    if not target.paths:
        first = target.skipped[0]
        raise ValueError(
            f"{TARGET_FLAG} {target.root}: none of its {len(target.skipped)} image files "
            f"decodes (e.g. {first.path}: {first.reason})."
        )


def seeded_sample(paths: list[str], limit: int, seed: int) -> list[str]:
    """At most `limit` of `paths`, drawn with `seed`, in their original order (all if fewer)."""
    if len(paths) <= limit:
        return list(paths)
    order = np.random.default_rng(seed).permutation(len(paths))[:limit]
    return [paths[i] for i in sorted(order)]


def _decoder(image_size: int):
    def decode(path):
        return decode_image(tf.io.read_file(path), image_size)

    return decode


def image_batches(paths: list[str], image_size: int, batch_size: int) -> tf.data.Dataset:
    """Decoded images of `paths`, in order, batched (not cached)."""
    ds = tf.data.Dataset.from_tensor_slices(np.asarray(paths))
    return ds.map(_decoder(image_size), num_parallel_calls=AUTOTUNE).batch(batch_size)


def decoded_images(paths: list[str], image_size: int) -> tf.data.Dataset:
    """Decoded images of `paths`, in order, cached in memory (decoded once)."""
    ds = tf.data.Dataset.from_tensor_slices(np.asarray(paths))
    return ds.map(_decoder(image_size), num_parallel_calls=AUTOTUNE, deterministic=True).cache()


def endless_batches(
    images: tf.data.Dataset, size: int, batch_size: int, seed: int
) -> tf.data.Dataset:
    """`images` (`size` of them) reshuffled every pass, repeated, in full batches."""
    ds = images.shuffle(size, seed=seed, reshuffle_each_iteration=True).repeat()
    return ds.batch(batch_size, drop_remainder=True)


def target_batches(
    target: TargetImages, image_size: int, batch_size: int, seed: int
) -> tf.data.Dataset:
    """An endless, reshuffled stream of decoded target image batches (cached in memory)."""
    return endless_batches(decoded_images(target.paths, image_size), len(target.paths),
                           batch_size, seed)


def mixed_batches(source: tf.data.Dataset, target: tf.data.Dataset) -> tf.data.Dataset:
    """Zips batched source (x, y) with endless target x into ((x_s, x_t), y_s).

    The source sets the length of an epoch; the target stream never runs out.
    """
    ds = tf.data.Dataset.zip((source, target))
    return ds.map(lambda s, t: ((s[0], t), s[1])).prefetch(AUTOTUNE)


def labelled_batches(
    path: str | os.PathLike, image_size: int, batch_size: int, class_names: list[str]
) -> tuple[tf.data.Dataset, np.ndarray]:
    """A labelled target folder (class subfolders) as batches, for measurement only.

    Returns:
        (batched images, labels in dataset order).

    Raises:
        ValueError: its classes differ from the source's.
    """
    folder = scan_image_folder(path)
    if folder.class_names != list(class_names):
        raise ValueError(
            f"Target test folder {path} has classes {folder.class_names}; the source has "
            f"{list(class_names)}."
        )
    labels = np.asarray(folder.labels, dtype=np.int64)
    ds = tf.data.Dataset.from_tensor_slices(np.asarray(folder.paths))
    ds = ds.map(_decoder(image_size), num_parallel_calls=AUTOTUNE, deterministic=True)
    return ds.cache().batch(batch_size).prefetch(AUTOTUNE), labels
