"""The one place that decides whether data or a model is "image", "text" or "audio".

    data    a folder of class subfolders is audio when most of its files are WAVs
            (`.wav`), else images; a CSV/TSV table is text, and a TFDS dataset is
            what its input feature is (`tfds.features.Image` or `Text`)
    model   a model with one `[batch, H, W, 3]` input takes images, one with a
            `[batch]` (or `[batch, 1]`) string input takes text, one with a
            `[batch, samples]` float input into a "log_mel" layer takes audio
            waveforms (its export decodes WAV bytes to them, as an image export
            decodes JPEG bytes)

The data's modality picks the model's config sections (`ModelConfig.image`,
`ModelConfig.text`, or `ModelConfig.audio` with `image`, see `tfxfer.config`) and its
builder; an exported model's
modality is read back from its input. Nothing else in tfxfer works modality out.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

IMAGE = "image"
TEXT = "text"
AUDIO = "audio"
MODALITIES = (IMAGE, TEXT, AUDIO)
# File suffixes read as images (folders, `tfxfer predict`).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp")
AUDIO_EXTENSIONS = (".wav", ".wave")
# The layer an audio model's waveforms go through first (`tfxfer.audio.model.LOG_MEL`).
AUDIO_FRONT_END = "log_mel"


def source_kind(source: str) -> str:
    """"tfds", "csv" or "folder", from the form of `source` (a `DataConfig.source`)."""
    if source.startswith("tfds:"):
        return "tfds"
    if Path(source).suffix.lower() in (".csv", ".tsv"):
        return "csv"
    return "folder"


# Source kinds (see `source_kind`) whose modality is fixed.
_SOURCE_MODALITY = {"folder": IMAGE, "csv": TEXT}


class ModalityError(ValueError):
    """The modality of a dataset or model cannot be told."""


def validate_modality(modality: str) -> str:
    if modality not in MODALITIES:
        raise ModalityError(
            f"Unknown modality {modality!r}. Valid modalities: {', '.join(MODALITIES)}"
        )
    return modality


def modality_of_folder(root: str | os.PathLike) -> str:
    """"audio" when most non-hidden files under `root` are WAVs, else "image"."""
    wav = other = 0
    for path in Path(root).rglob("*"):
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.suffix.lower() in AUDIO_EXTENSIONS:
            wav += 1
        else:
            other += 1
    return AUDIO if wav > other else IMAGE


def modality_of_source(kind: str, feature: Any = None, name: str = "") -> str:
    """The modality of data read from a source of `kind`.

    Args:
        kind: "folder", "csv" or "tfds" (`tfxfer.data.sources.source_kind`).
        feature: for TFDS, the `tfds.features` object of the supervised input.
        name: the dataset's name (for a folder: its path, whose files decide), for the
            error message.

    Raises:
        ModalityError: a TFDS input feature that is neither an image nor text.
    """
    if kind == "folder" and name:
        return modality_of_folder(name)
    if kind in _SOURCE_MODALITY:
        return _SOURCE_MODALITY[kind]
    import tensorflow_datasets as tfds

    if isinstance(feature, tfds.features.Image):
        return IMAGE
    if isinstance(feature, tfds.features.Text):
        return TEXT
    raise ModalityError(
        f"TFDS dataset {name!r} has an input feature of type {type(feature).__name__}; "
        "tfxfer handles Image and Text inputs."
    )


def modality_of(model: Any) -> str:
    """"text" for a model with one string input, "image" for one rank-4 image input,
    "audio" for one rank-2 float waveform input.

    Raises:
        ModalityError: several inputs, or one of another kind.
    """
    import keras

    if len(model.inputs) != 1:
        raise ModalityError(
            f"Only single-input models are supported. Received {len(model.inputs)} inputs: "
            f"{[t.name for t in model.inputs]}"
        )
    spec = model.inputs[0]
    dtype = keras.backend.standardize_dtype(spec.dtype)
    if dtype == "string" and len(spec.shape) in (1, 2) and spec.shape[1:] in ((), (1,)):
        return TEXT
    if len(spec.shape) == 4 and spec.shape[-1] == 3 and dtype != "string":
        return IMAGE
    if (len(spec.shape) == 2 and spec.shape[1] and dtype.startswith("float")
            and any(layer.name == AUDIO_FRONT_END for layer in model.layers)):
        return AUDIO
    raise ModalityError(
        "Cannot tell the model's modality: expected a [batch] or [batch, 1] string input "
        "(text), a [batch, H, W, 3] image input or a [batch, samples] float waveform into a "
        "'log_mel' layer (audio). "
        f"Received: dtype={dtype}, "
        f"shape={tuple(spec.shape)}"
    )
