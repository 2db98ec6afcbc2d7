"""Which loader reads `DataConfig.source`: the dispatcher, nothing else.

    path/to/folder      a folder of class subfolders (images)   -> `folder.py`
                        ... of WAV files (audio)                -> `tfxfer.audio.folder`
    path/to/file.csv    a CSV/TSV table of texts and labels     -> `text.py`
    ... with --target   a table of texts, image or WAV paths and one or more targets
                        (regression, multilabel, multi-task)    -> `tfxfer.tasks.table`
    tfds:NAME           a TFDS dataset (images or text)         -> `tfds_source.py`

Each loader returns `Splits` (`splits.py`). `DataConfig.test_source` optionally
names a separate test folder or CSV file of the same kind as `source`.
"""

from __future__ import annotations

from pathlib import Path

from tfxfer.config import AudioConfig, DataConfig
from tfxfer.data.folder import load_folder_splits
from tfxfer.data.splits import Splits, apply_label_names
from tfxfer.data.text import load_csv_splits
from tfxfer.data.tfds_source import load_tfds_splits
from tfxfer.modality import AUDIO, modality_of_folder, source_kind

__all__ = ["load_splits", "source_kind"]


def _validate_test_source(data: DataConfig, kind: str) -> None:
    if data.test_source and (kind == "tfds" or source_kind(data.test_source) != kind):
        raise ValueError(
            f"test_source must be the same kind of source as source (a folder or a CSV file; "
            f"TFDS uses its own test split). Received: source={data.source!r}, "
            f"test_source={data.test_source!r}"
        )


def load_splits(data: DataConfig, image_size: int | None = None,
                audio: AudioConfig | None = None) -> Splits:
    """Reads and splits the data named by `data.source`, with `data.label_names` applied.

    Args:
        data: the data section of the config.
        image_size: square side images are decoded to (image sources only).
        audio: the model's audio section: the rate and clip length WAV files are
            decoded to (audio folders only; default `AudioConfig()`).

    Returns:
        Splits with decoders for the model's inputs.
    """
    from tfxfer.tasks.table import TaskSplits  # tfxfer.tasks imports tfxfer.data

    splits = _load_splits(data, image_size, audio)
    if isinstance(splits, TaskSplits):  # outputs carry their own class names
        return splits
    return apply_label_names(splits, data.label_names)


def _load_splits(data: DataConfig, image_size: int | None,
                 audio: AudioConfig | None = None) -> Splits:
    kind = source_kind(data.source)
    _validate_test_source(data, kind)
    from tfxfer.tasks.table import is_task_source, load_task_splits

    if is_task_source(data):
        if kind != "csv":
            raise ValueError("data.target / data.image_column / data.audio_column need a CSV "
                             f"or TSV table (or a DataFrame). Received: source={data.source!r}")
        return load_task_splits(data, image_size, audio)
    if kind == "tfds":
        return load_tfds_splits(data, image_size)
    if kind == "csv":
        return load_csv_splits(data)
    if Path(data.source).is_dir() and modality_of_folder(data.source) == AUDIO:
        from tfxfer.audio.folder import load_audio_folder_splits

        return load_audio_folder_splits(data, audio or AudioConfig())
    if image_size is None:
        raise ValueError("image_size is required for image folders.")
    return load_folder_splits(data, image_size)
