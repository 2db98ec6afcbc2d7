"""Image folders as `Splits`: one subfolder per class, an optional separate test folder.

`scan_image_folder` (in `images.py`) lists and checks the files; this module
carves the train/val/test splits from them and wraps them as datasets of file
paths, decoded and resized by the shared pipeline.
"""

from __future__ import annotations

import numpy as np

from tfxfer.config import DataConfig
from tfxfer.data.images import ImageFolder, scan_image_folder
from tfxfer.data.pipeline import image_decoder
from tfxfer.data.splits import Splits, carve_indices, subsample_test, tensor_splits
from tfxfer.modality import modality_of_source


def _test_folder(data: DataConfig, folder: ImageFolder) -> tuple:
    """(paths, labels, indices) of the separate test folder; its skipped files join `folder`'s."""
    test = scan_image_folder(data.test_source, validate=data.validate_files)
    if test.class_names != folder.class_names:
        raise ValueError(
            f"Test folder {data.test_source} has classes {test.class_names}; the training "
            f"folder {data.source} has {folder.class_names}."
        )
    folder.skipped.extend(test.skipped)
    labels = np.asarray(test.labels, dtype=np.int64)
    return np.asarray(test.paths), labels, subsample_test(labels, data)


def load_folder_splits(data: DataConfig, image_size: int) -> Splits:
    """Splits a class-per-subfolder image tree (see `scan_image_folder`).

    Args:
        data: the data section; `source` (and optionally `test_source`) are folders.
        image_size: square side images are decoded to.

    Returns:
        Splits of image file paths with a decoder to uint8 images.
    """
    folder = scan_image_folder(data.source, validate=data.validate_files)
    labels = np.asarray(folder.labels, dtype=np.int64)
    paths = np.asarray(folder.paths)
    indices = carve_indices(labels, data, folder.class_names, carve_test=not data.test_source)
    tables = {split: (paths, labels, idx) for split, idx in indices.items()}
    if data.test_source:
        tables["test"] = _test_folder(data, folder)
    raw, split_labels = tensor_splits(tables)
    files = {split: inputs[idx].tolist() for split, (inputs, _, idx) in tables.items()
             if len(idx)}
    return Splits(
        folder.class_names, modality_of_source("folder"), raw, split_labels, str(data.source),
        decode=image_decoder(image_size, from_paths=True), from_paths=True,
        skipped=folder.skipped, files=files, skip_errors=not data.validate_files,
        example_bytes=image_size * image_size * 3,
    )
