"""What `Classifier.predict` accepts, turned into batches the Keras model takes.

    image models   file paths (str or Path), folders (every image inside, sorted),
                   encoded bytes, arrays (H x W x 3, or N x H x W x 3 uint8), PIL images
    text models    strings (the texts themselves), or Path objects of text files

Images are decoded and resized as the training pipeline decodes them
(`tfxfer.data.pipeline.decode_image`), so a test file predicted here gets the
probabilities the run's predictions.csv holds for it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from tfxfer.data.images import IMAGE_EXTENSIONS
from tfxfer.data.pipeline import decode_image, resize_image
from tfxfer.modality import IMAGE


@dataclass
class Inputs:
    """Inputs to predict: a name to show for each, and the values themselves."""

    names: list[str]
    values: list[Any]

    def __len__(self) -> int:
        return len(self.names)


def _is_single(inputs: Any) -> bool:
    if isinstance(inputs, (str, bytes, os.PathLike)):
        return True
    return isinstance(inputs, np.ndarray) and inputs.ndim == 3


def as_inputs(inputs: Any, modality: str) -> Inputs:
    """Names and values of `inputs` (one input or a sequence of them).

    Raises:
        FileNotFoundError: a path that does not exist.
        ValueError: nothing to predict, or an input the modality cannot take.
    """
    if _is_single(inputs):
        inputs = [inputs]
    elif isinstance(inputs, np.ndarray) and inputs.ndim == 4:
        inputs = list(inputs)
    items = list(inputs)
    if not items:
        raise ValueError("Nothing to predict: received an empty sequence.")
    read = _image_items if modality == IMAGE else _text_items
    names, values = [], []
    for index, item in enumerate(items):
        for name, value in read(item, index):
            names.append(name)
            values.append(value)
    if not values:
        raise ValueError(f"Nothing to predict: no image files in {items!r}.")
    return Inputs(names, values)


def _image_items(item: Any, index: int) -> Iterator[tuple[str, Any]]:
    if isinstance(item, (str, os.PathLike)):
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
            yield from ((str(p), p) for p in files)
            return
        if not path.is_file():
            raise FileNotFoundError(f"Image file not found: {path}")
        yield str(path), path
    elif isinstance(item, bytes):
        yield f"bytes[{index}]", item
    else:
        array = np.asarray(item)  # arrays and PIL images
        if array.ndim == 2:
            array = np.repeat(array[..., None], 3, axis=-1)
        if array.ndim != 3 or array.shape[-1] not in (3, 4):
            raise ValueError(f"An image array must be H x W x 3 (or x 4, or H x W). "
                             f"Received: input {index} of shape {array.shape}")
        yield f"array[{index}]", array[..., :3]


def _text_items(item: Any, index: int) -> Iterator[tuple[str, str]]:
    if isinstance(item, os.PathLike):
        path = Path(item)
        if not path.is_file():
            raise FileNotFoundError(f"Text file not found: {path}")
        yield str(path), path.read_text(encoding="utf-8")
    elif isinstance(item, str):
        yield item, item
    elif isinstance(item, bytes):
        yield f"bytes[{index}]", item.decode("utf-8")
    else:
        raise ValueError(f"A text model predicts strings. Received: input {index} of type "
                         f"{type(item).__name__}")


def _image(value: Any, size: int) -> tf.Tensor:
    if isinstance(value, Path):
        return decode_image(tf.io.read_file(str(value)), size)
    if isinstance(value, bytes):
        return decode_image(value, size)
    return resize_image(tf.convert_to_tensor(value), size)


def batches(inputs: Inputs, modality: str, image_size: int | None,
            batch_size: int) -> Iterator[tf.Tensor]:
    """Batches of at most `batch_size` inputs: uint8 images of `image_size`², or strings."""
    for start in range(0, len(inputs), batch_size):
        chunk: Sequence[Any] = inputs.values[start:start + batch_size]
        if modality == IMAGE:
            yield tf.stack([_image(value, image_size) for value in chunk])
        else:
            yield tf.constant(list(chunk))
