"""Folders of WAV files as `Splits`: one subfolder per class, bad files named and skipped.

    root/
      yes/  a.wav b.wav ...
      no/   c.wav ...

Every file is decoded once at scan time (in threads, with `tf.audio.decode_wav`, the
decoder the pipeline uses). Empty, truncated, non-WAV, non-16-bit-PCM and
zero-channel or zero-sample files are named in a warning, counted and left out.
Files of other extensions are skipped and named too. The splits hold file paths;
the pipeline decodes them to waveforms at `model.audio.sample_rate`
(`tfxfer.audio.decode`).
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfxfer.audio.decode import clip_samples, wav_decoder
from tfxfer.config import AudioConfig, DataConfig
from tfxfer.data.images import SkippedFile, class_dirs, list_class_files
from tfxfer.data.splits import Splits, carve_indices, subsample_test, tensor_splits
from tfxfer.modality import AUDIO, AUDIO_EXTENSIONS

logger = logging.getLogger(__name__)


@dataclass
class AudioFolder:
    """The usable WAV files of a folder and what was left out.

    Attributes:
        paths: file paths, sorted by class then name.
        labels: class id of each path.
        class_names: sorted subfolder names; the class id is the index.
        sample_rates: the rate (Hz) of each usable file (0 when not checked).
        skipped: files left out, with the reason.
    """

    paths: list[str]
    labels: list[int]
    class_names: list[str]
    sample_rates: list[int] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)


def _last_line(err: tf.errors.OpError) -> str:
    return err.message.strip().splitlines()[-1] if err.message else type(err).__name__


def check_wav(path: str) -> tuple[str | None, int]:
    """(why `path` cannot be used, None when it decodes; its sample rate or 0)."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        return f"unreadable: {err.strerror or err}", 0
    if not data:
        return "empty file (0 bytes)", 0
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return "not a decodable 16-bit PCM WAV (no RIFF/WAVE header)", 0
    try:
        audio, rate = tf.audio.decode_wav(data)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError,
            tf.errors.OutOfRangeError) as err:
        return f"not a decodable 16-bit PCM WAV ({_last_line(err)})", 0
    except UnicodeDecodeError:  # TensorFlow's message quoted undecodable header bytes
        return "not a decodable 16-bit PCM WAV (corrupt header)", 0
    if audio.shape[1] == 0:
        return "WAV file has no channel", 0
    if audio.shape[0] == 0:
        return "WAV file has no samples", 0
    return None, int(rate)


def scan_audio_folder(root: str | os.PathLike, validate: bool = True) -> AudioFolder:
    """Lists the WAV files of a class-per-subfolder tree.

    Args:
        root: the folder holding one subfolder per class.
        validate: decode every file to find bad ones (otherwise the pipeline drops them).

    Returns:
        An AudioFolder.

    Raises:
        FileNotFoundError: `root` does not exist.
        ValueError: fewer than two classes, or a class without usable files.
    """
    root = Path(root)
    dirs = class_dirs(root, "Audio")
    folder = AudioFolder([], [], [d.name for d in dirs])
    listed = [list_class_files(d, AUDIO_EXTENSIONS, "a WAV") for d in dirs]
    for _, skipped in listed:
        folder.skipped.extend(skipped)
    flat = [p for files, _ in listed for p in files]
    checks = {p: (None, 0) for p in flat}
    if validate:
        with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
            checks = dict(zip(flat, pool.map(check_wav, flat)))
        folder.skipped.extend(SkippedFile(p, r) for p, (r, _) in checks.items() if r)
    for class_id, (files, _) in enumerate(listed):
        usable = [p for p in files if checks[p][0] is None]
        if not usable:
            raise ValueError(f"Class folder {dirs[class_id]} has no usable WAV files.")
        folder.paths.extend(usable)
        folder.labels.extend([class_id] * len(usable))
        folder.sample_rates.extend(checks[p][1] for p in usable)
    _log_skipped(root, folder.skipped)
    return folder


def _log_skipped(root: Path, skipped: list[SkippedFile]) -> None:
    if not skipped:
        return
    logger.warning("Skipped %d file(s) under %s:", len(skipped), root)
    for item in skipped:
        logger.warning("  skipped %s: %s", item.path, item.reason)


def _log_rates(folder: AudioFolder, rate: int) -> None:
    rates = sorted({r for r in folder.sample_rates if r})
    if any(r != rate for r in rates):
        logger.info("Sample rates %s Hz found; clips are resampled to %d Hz.", rates, rate)


def load_audio_folder_splits(data: DataConfig, audio: AudioConfig) -> Splits:
    """Splits a class-per-subfolder tree of WAV files (see `scan_audio_folder`).

    Args:
        data: the data section; `source` (and optionally `test_source`) are folders.
        audio: the model's audio section (sample rate, clip length).

    Returns:
        Splits of file paths with a decoder to float32 waveforms of one clip.
    """
    folder = scan_audio_folder(data.source, validate=data.validate_files)
    _log_rates(folder, audio.sample_rate)
    labels = np.asarray(folder.labels, dtype=np.int64)
    paths = np.asarray(folder.paths)
    indices = carve_indices(labels, data, folder.class_names, carve_test=not data.test_source)
    tables = {split: (paths, labels, idx) for split, idx in indices.items()}
    if data.test_source:
        test = scan_audio_folder(data.test_source, validate=data.validate_files)
        if test.class_names != folder.class_names:
            raise ValueError(f"Test folder {data.test_source} has classes {test.class_names}; "
                             f"the training folder {data.source} has {folder.class_names}.")
        folder.skipped.extend(test.skipped)
        test_labels = np.asarray(test.labels, dtype=np.int64)
        tables["test"] = (np.asarray(test.paths), test_labels, subsample_test(test_labels, data))
    raw, split_labels = tensor_splits(tables)
    files = {split: inputs[idx].tolist() for split, (inputs, _, idx) in tables.items()
             if len(idx)}
    samples = clip_samples(audio.sample_rate, audio.clip_seconds)
    return Splits(
        folder.class_names, AUDIO, raw, split_labels, str(data.source),
        decode=wav_decoder(audio.sample_rate, samples, from_paths=True), from_paths=True,
        skipped=folder.skipped, files=files, skip_errors=not data.validate_files,
        example_bytes=samples * 4,
    )
