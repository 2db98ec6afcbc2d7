"""The directory layout TensorFlow Serving polls, and atomic publishing into it.

    BASE/                      --model_config_file names BASE/NAME per model
      NAME/                    --model_base_path of one model
        1/  2/  3/             versions: integer names only; the highest is served
        .tmp-export-PID-XXXX/  an export in progress (ignored by TF Serving)

An export is written into a temporary directory beside the version directories
(same filesystem) and renamed into place in one `rename(2)`, so a server
polling NAME/ sees either no new version or a complete one, even when the
exporting process is killed. Temporary names start with a dot and are never
integers, which TF Serving's file-system poller skips. A temporary directory
left by a killed export is removed by the next export once its process is gone.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from tfxfer.serving.contract import check_model_name, list_versions

logger = logging.getLogger(__name__)

TEMP_PREFIX = ".tmp-export-"


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
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-", dir=path))
    # mkdtemp makes it private (0700); the published version must be readable by a
    # server running as another user, like any directory made under the umask.
    umask = os.umask(0)
    os.umask(umask)
    temp.chmod(0o777 & ~umask)
    return temp


def _owner_pid(temp_name: str) -> int | None:
    pid, _, _ = temp_name[len(TEMP_PREFIX):].partition("-")
    return int(pid) if pid.isdigit() else None


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def remove_stale_temp_dirs(path: str | Path) -> list[Path]:
    """Removes temporary export directories whose exporting process is gone.

    Directories of exports still running (their process id is alive) are kept,
    so two exports of the same model can run side by side.

    Returns:
        The directories removed.
    """
    path = Path(path)
    if not path.is_dir():
        return []
    removed = []
    for temp in sorted(path.glob(f"{TEMP_PREFIX}*")):
        pid = _owner_pid(temp.name)
        if pid == os.getpid() or (pid is not None and _process_alive(pid)):
            continue
        shutil.rmtree(temp, ignore_errors=True)
        removed.append(temp)
        logger.info("Removed the temporary directory of an interrupted export: %s", temp)
    return removed


def fsync_tree(root: Path) -> None:
    """Flushes every file and directory under `root` to disk (survives power loss too)."""
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(dirpath))


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
    temp, path = Path(temp), Path(path)
    target = check_new_version(path, version)
    fsync_tree(temp)
    try:
        os.rename(temp, target)
    except OSError as err:
        if target.exists():
            raise FileExistsError(f"Version {version} appeared at {target} during the export.") \
                from err
        raise
    fsync_dir(path)
    return target


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
