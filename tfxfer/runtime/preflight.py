"""Checks of a command's paths and names before TensorFlow is imported.

Importing TensorFlow takes seconds and prints its C++ log; a misspelt folder or
backbone should fail at once, in one line, and leave no run directory behind.
These checks read only the config and the file system (no Keras, no TensorFlow);
the loaders check the same things again, in detail, once the data are read.

`check_sources` (the data paths alone) is also what `Experiment` checks when it is
built in Python, so a notebook and the CLI refuse a missing folder in the same words.

Example:
    check_run_paths(load_config(None, {"data": {"source": "photos/"}}))
"""

from __future__ import annotations

from pathlib import Path

from tfxfer.config import RunConfig
from tfxfer.image.catalog import check_builtin_backbone, resolve_weights
from tfxfer.modality import source_kind


def check_run_paths(config: RunConfig, resume: str | Path | None = None) -> None:
    """Raises FileNotFoundError or ValueError naming the first bad path or name of `config`.

    Args:
        config: the config a command was given (before its data are read).
        resume: the `--resume` run directory, if any.
    """
    if resume is not None:
        check_run_dir(resume, "--resume")
    check_sources(config)
    if config.continual.parent:
        check_run_dir(config.continual.parent, "--from (continual.parent)",
                      needs=("config.json", "model.keras", "labels.txt"))
    image = config.model.image
    if image is not None:
        check_builtin_backbone(image.backbone)
        resolve_weights(image.weights)
    text = config.model.text
    if text is not None:
        _check_encoder(text.encoder)


def check_sources(config: RunConfig) -> None:
    """Raises FileNotFoundError or ValueError naming the first data path of `config` that is
    missing or of the wrong kind (TFDS names are left to TFDS, what a path holds to the
    loaders)."""
    data, adaptation = config.data, config.adaptation
    for value, name in (
        (data.source, "--data (data.source)"),
        (data.test_source, "--test-data (data.test_source)"),
        (data.unlabelled_source, "--unlabelled-data (data.unlabelled_source)"),
    ):
        if value:
            _check_source(value, name)
    for path, name in (
        (adaptation.target_source, "--target-data (adaptation.target_source)"),
        (adaptation.target_test_source, "--target-test-data (adaptation.target_test_source)"),
    ):
        if path:
            _check_folder(Path(path), name)


def check_run_dir(
    path: str | Path, flag: str, needs: tuple[str, ...] = ("config.json",)
) -> Path:
    """`path` as a Path when it is a directory holding the files `needs`, else
    FileNotFoundError naming what is missing."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{flag}: no such directory: {path}")
    missing = [name for name in needs if not (path / name).exists()]
    if missing:
        raise FileNotFoundError(f"{flag}: {path} is not a tfxfer run directory "
                                f"(missing: {', '.join(missing)})")
    return path


def _check_source(source: str, name: str) -> None:
    kind = source_kind(source)
    if kind == "tfds":
        return
    path = Path(source)
    if kind == "csv":
        if not path.is_file():
            raise FileNotFoundError(f"{name} not found: text file {path} does not exist.")
        return
    if path.is_file():
        raise ValueError(f"{name} must be a folder of class subfolders (images) or a .csv/.tsv "
                         f"file (text). Received the file {path}")
    _check_folder(path, name)


def _check_folder(path: Path, name: str) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{name} not found: {path}")
    if not path.is_dir():
        raise ValueError(f"{name} must be a folder. Received the file {path}")


def _check_encoder(encoder: str) -> None:
    """A local-looking encoder path must exist (names, presets and URLs are not checked)."""
    if "://" in encoder or encoder.startswith(("hf:", "kaggle:", "gs:")):
        return
    looks_local = "/" in encoder or "\\" in encoder or encoder.startswith(".")
    if looks_local and not Path(encoder).exists():
        raise FileNotFoundError(
            f"--encoder (model.text.encoder) not found: {encoder} is neither an existing file "
            "or folder nor a name (see `tfxfer list-encoders`)")
