"""Image folders: one subfolder per class, bad files named and skipped.

    root/
      daisy/  a.jpg b.png ...
      roses/  c.jpg ...

Every file is decoded once before training (in threads, with the same decoder
the pipeline uses, a progress bar on a terminal). Zero-byte, truncated, corrupt and
non-image files are named in a warning, counted and left out, so training goes on
with the rest.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import tensorflow as tf

from tfxfer.modality import IMAGE_EXTENSIONS
from tfxfer.utils.progress import progress

logger = logging.getLogger(__name__)



@dataclass(frozen=True)
class SkippedFile:
    path: str
    reason: str


@dataclass
class ImageFolder:
    """The usable images of a folder and what was left out.

    Attributes:
        paths: image file paths, sorted by class then name.
        labels: class id of each path.
        class_names: sorted subfolder names; the class id is the index.
        skipped: files left out, with the reason.
    """

    paths: list[str]
    labels: list[int]
    class_names: list[str]
    skipped: list[SkippedFile] = field(default_factory=list)


def check_image(path: str) -> str | None:
    """Returns why `path` cannot be used as an image, or None when it decodes."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        return f"unreadable: {err.strerror or err}"
    if not data:
        return "empty file (0 bytes)"
    try:
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as err:
        message = err.message.strip().splitlines()[-1] if err.message else type(err).__name__
        return f"not a decodable image ({message})"
    if image.shape[0] == 0 or image.shape[1] == 0:
        return "image has no pixels"
    return None


def class_dirs(root: Path, kind: str = "Image") -> list[Path]:
    """The class subfolders of a `kind` ("Image", "Audio") folder, at least two."""
    if not root.is_dir():
        raise FileNotFoundError(f"{kind} folder not found: {root}")
    dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(dirs) < 2:
        raise ValueError(
            f"{kind} folder {root} must hold at least 2 class subfolders; found "
            f"{len(dirs)}: {[d.name for d in dirs]}"
        )
    return dirs


def list_class_files(
    class_dir: Path, extensions: tuple[str, ...] | None = IMAGE_EXTENSIONS, kind: str = "an image",
) -> tuple[list[str], list[SkippedFile]]:
    """The non-hidden files under `class_dir`; with `extensions`, others are skipped as
    "not {kind} extension"."""
    files, skipped = [], []
    for path in sorted(p for p in class_dir.rglob("*") if p.is_file()):
        if any(part.startswith(".") for part in path.relative_to(class_dir).parts):
            continue  # hidden files such as .DS_Store are not data
        if extensions is not None and path.suffix.lower() not in extensions:
            skipped.append(SkippedFile(str(path), f"not {kind} extension ({path.suffix!r})"))
        else:
            files.append(str(path))
    return files, skipped


def scan_image_folder(root: str | os.PathLike, validate: bool = True) -> ImageFolder:
    """Lists the images of a class-per-subfolder tree.

    Args:
        root: the folder holding one subfolder per class.
        validate: decode every file to find bad ones. Without it, files are
            filtered by extension only and the pipeline drops undecodable ones.

    Returns:
        An ImageFolder.

    Raises:
        FileNotFoundError: `root` does not exist.
        ValueError: fewer than two classes, or a class without usable images.
    """
    root = Path(root)
    dirs = class_dirs(root)
    folder = ImageFolder([], [], [d.name for d in dirs])
    per_class = []
    for class_dir in dirs:
        files, skipped = list_class_files(class_dir, None if validate else IMAGE_EXTENSIONS)
        folder.skipped.extend(skipped)
        per_class.append(files)
    if validate:
        per_class = _drop_bad_files(per_class, folder.skipped, f"checking {root.name or root}")
    for class_id, files in enumerate(per_class):
        if not files:
            raise ValueError(
                f"Class folder {dirs[class_id]} has no usable images "
                f"(extensions {', '.join(IMAGE_EXTENSIONS)})."
            )
        folder.paths.extend(files)
        folder.labels.extend([class_id] * len(files))
    _log_skipped(root, folder.skipped)
    return folder


def _drop_bad_files(
    per_class: list[list[str]], skipped: list[SkippedFile], desc: str = "checking images"
) -> list[list[str]]:
    flat = [path for files in per_class for path in files]
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        checked = progress(pool.map(check_image, flat), total=len(flat), desc=desc,
                           unit="image")
        reasons = dict(zip(flat, checked))
    skipped.extend(SkippedFile(p, r) for p, r in reasons.items() if r is not None)
    return [[p for p in files if reasons[p] is None] for files in per_class]


def _log_skipped(root: Path, skipped: list[SkippedFile]) -> None:
    if not skipped:
        return
    logger.warning("Skipped %d file(s) under %s:", len(skipped), root)
    for item in skipped:
        logger.warning("  skipped %s: %s", item.path, item.reason)
