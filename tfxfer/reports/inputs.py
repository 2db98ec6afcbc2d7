"""The test images behind chosen rows of predictions.csv, for the prediction grid.

Image folder runs record each test file's path in the `input` column of
predictions.csv, so a saved run is drawn from those files. TFDS image runs
record no path; their images are read from the run's test split, which
`tfxfer report` rebuilds from config.json the way `tfxfer evaluate` does.
Rows of predictions.csv follow the test split's order (the test pipeline does
not shuffle), and every image read is checked against its row's true label.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tfxfer.config import config_from_dict
from tfxfer.data.pipeline import decode_image
from tfxfer.data.sources import load_splits
from tfxfer.data.splits import Splits
from tfxfer.modality import AUDIO, IMAGE
from tfxfer.reports.rundata import RunData

logger = logging.getLogger(__name__)

THUMBNAIL = 128


class InputsUnavailable(Exception):
    """The test images of a run cannot be read (moved files, missing data)."""


def _thumbnail(encoded: bytes | tf.Tensor, size: int, modality: str = IMAGE) -> np.ndarray:
    if modality == AUDIO:  # the log-mel spectrogram the model looks at
        from tfxfer.audio.layers import spectrogram_picture

        return spectrogram_picture(encoded, size)
    return decode_image(encoded, size).numpy()


def _from_paths(paths: Sequence[str], size: int, modality: str = IMAGE) -> list[np.ndarray]:
    images = []
    for path in paths:
        try:
            images.append(_thumbnail(tf.io.read_file(path), size, modality))
        except tf.errors.OpError as err:
            raise InputsUnavailable(f"cannot read test image {path}: {err.message}") from None
    return images


def _from_splits(splits: Splits, rows: Sequence[int], y_true: np.ndarray,
                 size: int) -> list[np.ndarray]:
    if "test" not in splits.raw:
        raise InputsUnavailable("the data has no test split")
    wanted, found, total = set(rows), {}, 0
    for row, (raw, label) in enumerate(splits.raw["test"].as_numpy_iterator()):
        total += 1
        if row in wanted:
            if row >= len(y_true) or int(label) != y_true[row]:
                raise InputsUnavailable(f"test example {row} does not match predictions.csv")
            found[row] = raw
    if total != len(y_true):
        raise InputsUnavailable(
            f"the test split has {total} examples but predictions.csv has {len(y_true)} rows"
        )
    encoded = {r: tf.io.read_file(raw) if splits.from_paths else raw for r, raw in found.items()}
    return [_thumbnail(encoded[r], size, splits.modality) for r in rows]


def _reload_splits(run: RunData) -> Splits:
    config = config_from_dict(run.config)
    logger.info("Reading the test split of %s for the prediction grid", config.data.source)
    splits = load_splits(config.data, config.model.image_input_size, config.model.audio)
    if splits.class_names != run.class_names:
        raise InputsUnavailable(
            f"{config.data.source} now has classes {splits.class_names}, "
            f"the run has {run.class_names}"
        )
    return splits


def load_test_images(
    run: RunData, rows: Sequence[int], splits: Splits | None = None, size: int = THUMBNAIL
) -> list[np.ndarray]:
    """Decodes the test images of `rows` as uint8 RGB squares of side `size`
    (audio runs: each file's log-mel spectrogram).

    Args:
        run: the run; its predictions give the row order and true labels.
        rows: row indices into predictions.csv.
        splits: the run's splits when they are at hand (during training);
            otherwise they are rebuilt from the config when needed.
        size: side of the returned images (the model also sees squares).

    Returns:
        One image per row.

    Raises:
        InputsUnavailable: the images cannot be read or do not match the rows.
    """
    predictions = run.predictions
    if predictions is None:
        raise InputsUnavailable("the run has no predictions")
    if predictions.inputs is not None and run.modality in (IMAGE, AUDIO):
        return _from_paths([predictions.inputs[r] for r in rows], size, run.modality)
    if splits is None:
        try:
            splits = _reload_splits(run)
        except (OSError, ValueError) as err:
            raise InputsUnavailable(f"cannot reload the data: {err}") from None
    return _from_splits(splits, rows, predictions.y_true, size)
