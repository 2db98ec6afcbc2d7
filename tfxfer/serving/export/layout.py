"""The directory layout TensorFlow Serving polls, and atomic publishing into it.

    BASE/                      --model_config_file names BASE/NAME per model
      NAME/                    --model_base_path of one model
        1/  2/  3/             versions: integer names only; the highest is served
        .export.tmp-PID-XXXX/  an export in progress (ignored by TF Serving)

An export is written into a temporary directory beside the version directories
(same filesystem) and renamed into place in one `rename(2)` (`tfxfer.utils.atomic`),
so a server polling NAME/ sees either no new version or a complete one, even when
the exporting process is killed. Temporary names start with a dot and are never
integers, which TF Serving's file-system poller skips. A temporary directory
left by a killed export is removed by the next export once its process is gone.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from tfxfer.serving.contract import check_model_name, list_versions
from tfxfer.utils import atomic

logger = logging.getLogger(__name__)

# Temporary exports are DIR/.export.tmp-PID-XXXX (the one scheme of tfxfer.utils.atomic).
TEMP_STEM = "export"
TEMP_PREFIX = atomic.temp_prefix(TEMP_STEM)


def model_dir(base: str | Path, name: str) -> Path:
    """BASE/NAME, after checking that NAME is a model name (`contract.check_model_name`)."""
    return Path(base) / check_model_name(name)


def next_version(path: str | Path) -> int:
    """One more than the highest existing version (1 for a new model)."""
    versions = list_versions(path)
    return versions[-1] + 1 if versions else 1


def check_new_version(path: str | Path, version: int) -> Path:
    """The directory of `version` under `path`; an error if it exists already.

    Raises:
        ValueError: the version is not a positive integer.
        FileExistsError: NAME/VERSION exists (it is never overwritten).
    """
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"A version must be a positive integer. Received: version={version!r}")
    target = Path(path) / str(version)
    if target.exists():
        raise FileExistsError(
            f"Version {version} already exists at {target}; choose another --version or "
            f"leave it out to export as version {next_version(path)} (nothing was overwritten)."
        )
    return target


def make_temp_dir(path: str | Path) -> Path:
    """A new, empty temporary directory inside the model directory `path`."""
    return atomic.make_temp_dir(path, TEMP_STEM)


def remove_stale_temp_dirs(path: str | Path) -> list[Path]:
    """Removes temporary export directories whose exporting process is gone.

    Directories of exports still running (their process id is alive) are kept,
    so two exports of the same model can run side by side.

    Returns:
        The directories removed.
    """
    return atomic.remove_temps(path, TEMP_STEM)


def publish(temp: str | Path, path: str | Path, version: int) -> Path:
    """Renames a finished temporary export to NAME/VERSION in one atomic step.

    Args:
        temp: the complete export, made by `make_temp_dir(path)`.
        path: the model directory (BASE/NAME).
        version: the version number to publish as.

    Returns:
        The version directory.

    Raises:
        FileExistsError: the version appeared meanwhile (e.g. a concurrent export);
            the temporary directory is left for the caller to retry or remove.
            (`rename(2)` would replace an *empty* directory created in the instant
            between the check and the rename; a non-empty one makes it fail.)
    """
    target = check_new_version(path, version)
    return atomic.publish_dir(temp, target)


def publish_next(temp: str | Path, path: str | Path, attempts: int = 100) -> tuple[int, Path]:
    """Publishes a finished temporary export as the next free version.

    A version taken meanwhile by a concurrent export is skipped and the next one
    tried.

    Returns:
        The version chosen and its directory.
    """
    for _ in range(attempts):
        version = next_version(path)
        try:
            return version, publish(temp, path, version)
        except FileExistsError:
            logger.info("Version %d was taken meanwhile; trying the next one.", version)
    raise FileExistsError(f"Could not find a free version under {path} in {attempts} tries.")


def publish_copy(source: str | Path, path: str | Path, version: int | None = None) -> Path:
    """Publishes a copy of a finished SavedModel directory as NAME/VERSION.

    The copy is written to a temporary directory first, then `publish`ed, so a
    polling server never sees a half-copied version.

    Args:
        source: a complete SavedModel directory (e.g. an existing version).
        path: the model directory (BASE/NAME).
        version: the version to publish as; None takes the next free one.

    Returns:
        The version directory.
    """
    temp = make_temp_dir(path)
    try:
        shutil.copytree(source, temp, dirs_exist_ok=True)
        if version is None:
            return publish_next(temp, path)[1]
        return publish(temp, path, version)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
