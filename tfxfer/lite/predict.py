"""`tfxfer predict --tflite MODEL.tflite FILE...`: rows shaped like the SavedModel's outputs.

Images are decoded and resized exactly as in training and in the SavedModel's
`serving_default` (`decode_image`), then run one at a time. Each row has the
SavedModel signature's output names, so `tfxfer.serving.client.summarize` and
`format_table` print them the same way as the other predict modes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfxfer.data.pipeline import decode_image
from tfxfer.lite.metadata import LABELS_FILE, read_labels
from tfxfer.lite.runtime import LiteClassifier
from tfxfer.serving.contract import (
    CLASS_ID,
    CLASS_NAME,
    DEFAULT_TOP_K,
    PROBABILITIES,
    TOP_K_CLASS_IDS,
    TOP_K_CLASS_NAMES,
    TOP_K_PROBABILITIES,
)


class LitePredictError(ValueError):
    """An input could not be decoded for the model."""


def _decode(data: bytes, size: int | None) -> np.ndarray:
    if size is not None:
        return decode_image(tf.constant(data), size).numpy()
    image = tf.io.decode_image(data, channels=3, expand_animations=False)
    return image.numpy()


def row(probabilities: np.ndarray, class_names: Sequence[str], top_k: int) -> dict:
    """One prediction in the SavedModel signature's output names."""
    order = np.argsort(-probabilities, kind="stable")[:top_k]
    class_id = int(order[0])
    return {
        PROBABILITIES: [float(p) for p in probabilities],
        CLASS_ID: class_id,
        CLASS_NAME: class_names[class_id],
        TOP_K_CLASS_IDS: [int(i) for i in order],
        TOP_K_CLASS_NAMES: [class_names[i] for i in order],
        TOP_K_PROBABILITIES: [float(probabilities[i]) for i in order],
    }


def predict_tflite(
    model_path: str | Path, values: Sequence[bytes], *, labels: str | Path | None = None,
    top_k: int | None = None,
) -> list[dict]:
    """Predicts encoded images with a .tflite classifier.

    Args:
        model_path: the .tflite file.
        values: encoded images (JPEG, PNG, GIF, BMP).
        labels: labels file (default: labels.txt beside the model).
        top_k: classes in the top-k outputs (default min(5, classes)).

    Returns:
        One dict per input (see `row`).
    """
    model_path = Path(model_path)
    if not model_path.is_file():  # before the labels beside it, so the message names it
        raise FileNotFoundError(f"LiteRT model file not found: {model_path}")
    class_names = read_labels(labels or model_path.with_name(LABELS_FILE))
    classifier = LiteClassifier(model_path)
    if classifier.output.shape[-1] != len(class_names):
        raise ValueError(f"{model_path} predicts {classifier.output.shape[-1]} classes but "
                         f"the labels file has {len(class_names)}.")
    k = min(top_k or DEFAULT_TOP_K, len(class_names))
    rows = []
    for index, data in enumerate(values):
        if isinstance(data, str):
            raise LitePredictError("LiteRT models take images; text inputs are not supported.")
        try:
            image = _decode(bytes(data), classifier.image_size)
        except tf.errors.InvalidArgumentError as err:
            raise LitePredictError(f"Input {index + 1} is not a readable image: "
                                   f"{err.message.splitlines()[0]}") from err
        rows.append(row(classifier.predict_one(image), class_names, k))
    return rows
