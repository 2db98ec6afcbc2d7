"""What `--data` names for the unlabelled commands: images or texts, labels optional.

    photos/            a flat folder (subfolders are searched too): no labels
      a.jpg b.png ...
    photos/            two or more class subfolders: the names are reference labels,
      daisy/ roses/    used only to score clusters (NMI, ARI, accuracy)
    reviews.csv        a text column (--text-column), an optional label column

Image folders are read by `tfxfer.data.images` (the training reader) and texts by
`tfxfer.data.text.read_csv`; bad image files are named in a warning and left out.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tfxfer.data.images import (
    IMAGE_EXTENSIONS,
    SkippedFile,
    check_image,
    scan_image_folder,
)
from tfxfer.data.sources import source_kind
from tfxfer.modality import IMAGE, TEXT

logger = logging.getLogger(__name__)


@dataclass
class Items:
    """The examples of an unlabelled source.

    Attributes:
        modality: "image" or "text".
        items: image file paths or texts, in a fixed order.
        source: what `--data` named.
        labels: reference class id of each item, or None without labels.
        class_names: the names of those ids.
        skipped: image files left out, with the reason.
    """

    modality: str
    items: list[str]
    source: str
    labels: np.ndarray | None = None
    class_names: list[str] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items)


def _class_subfolders(root: Path) -> list[Path]:
    return [p for p in sorted(root.iterdir())
            if p.is_dir() and not p.name.startswith(".")
            and any(f.suffix.lower() in IMAGE_EXTENSIONS for f in p.rglob("*"))]


def _flat_images(root: Path, validate: bool) -> Items:
    files = sorted(
        str(p) for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    if not files:
        raise ValueError(
            f"--data {root} holds no image files (looked for {', '.join(IMAGE_EXTENSIONS)}, "
            "also in subfolders)."
        )
    skipped = []
    if validate:
        with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
            reasons = list(pool.map(check_image, files))
        skipped = [SkippedFile(p, r) for p, r in zip(files, reasons) if r is not None]
        files = [p for p, r in zip(files, reasons) if r is None]
        for item in skipped:
            logger.warning("Skipped %s: %s", item.path, item.reason)
        if not files:
            raise ValueError(f"--data {root}: none of its {len(skipped)} image files decodes "
                             f"(e.g. {skipped[0].path}: {skipped[0].reason}).")
    return Items(IMAGE, files, str(root), skipped=skipped)


def read_images(path: str | os.PathLike, validate: bool = True) -> Items:
    """The images of a folder; with two or more class subfolders, their labels too.

    Raises:
        FileNotFoundError: no such folder.
        ValueError: not a folder, no image files, or none decodes.
    """
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"--data not found: {root}")
    if not root.is_dir():
        raise ValueError(f"--data must be an image folder or a CSV file. Received: {root}")
    if len(_class_subfolders(root)) < 2:
        return _flat_images(root, validate)
    folder = scan_image_folder(root, validate=validate)
    labels = np.asarray(folder.labels, np.int64)
    return Items(IMAGE, folder.paths, str(root), labels, folder.class_names, folder.skipped)


def read_texts(path: str | os.PathLike, text_column: str = "text",
               label_column: str | None = "label") -> Items:
    """The texts of a CSV/TSV file; the label column is used when present.

    Raises:
        FileNotFoundError: no such file.
        ValueError: no such text column, or empty texts (naming the rows).
    """
    from tfxfer.data.text import _text_values, class_names_of, encode_labels, read_csv

    frame = read_csv(path)
    if text_column not in frame.columns:
        raise ValueError(f"{path} has no column {text_column!r}; its columns are "
                         f"{list(frame.columns)}. Choose one with --text-column.")
    texts = _text_values(frame, text_column, str(path))
    items = Items(TEXT, [str(t) for t in texts], str(path))
    if label_column and label_column in frame.columns:
        values = [v.strip() for v in frame[label_column]]
        if all(values) and len(set(values)) >= 2:
            items.class_names = class_names_of(values, str(path))
            items.labels = encode_labels(values, items.class_names, str(path))
    return items


def read_items(source: str | os.PathLike, text_column: str = "text",
               label_column: str | None = "label", validate: bool = True) -> Items:
    """An image folder or a text CSV/TSV file (`tfxfer.data.sources.source_kind`)."""
    source = os.fspath(source)
    kind = source_kind(source)
    if kind == "csv":
        return read_texts(source, text_column, label_column)
    if kind == "folder":
        return read_images(source, validate)
    raise ValueError(f"--data must be an image folder or a CSV/TSV file. Received: {source!r} "
                     f"(a {kind} source)")
