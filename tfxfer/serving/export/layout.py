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

logger = logging.getLogger(__name__)

TEMP_PREFIX = ".tmp-export-"


def model_dir(base: str | Path, name: str) -> Path:
    """BASE/NAME, after checking that NAME is a usable model name."""
    _validate_name(name)
    return Path(base) / name


def _validate_name(name: str) -> None:
    if not name or name.startswith(".") or "/" in name or "\\" in name or name.isdigit():
        raise ValueError(
            "A model name must be non-empty, must not start with '.', contain a path "
            f"separator or be an integer. Received: name={name!r}"
        )


def list_versions(path: str | Path) -> list[int]:
    """The integer version directories under a model directory, ascending."""
    path = Path(path)
    if not path.is_dir():
        return []
    return sorted(int(p.name) for p in path.iterdir() if p.is_dir() and _is_version(p.name))


def _is_version(name: str) -> bool:
    return name.isascii() and name.isdigit()


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


def _fsync_tree(root: Path) -> None:
    """Flushes every file and directory under `root` to disk (survives power loss too)."""
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))


def _fsync_dir(path: Path) -> None:
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
    _fsync_tree(temp)
    try:
        os.rename(temp, target)
    except OSError as err:
        if target.exists():
            raise FileExistsError(f"Version {version} appeared at {target} during the export.") \
                from err
        raise
    _fsync_dir(path)
    return target


def find_models(base: str | Path) -> dict[str, list[int]]:
    """Every model under BASE with at least one complete version, and its versions.

    A version counts when its directory holds a `saved_model.pb`.
    """
    base = Path(base)
    if not base.is_dir():
        raise FileNotFoundError(f"Base directory of exported models not found: {base}")
    models = {}
    for child in sorted(base.iterdir()):
        if not child.is_dir() or child.name.startswith("."):
            continue
        versions = [v for v in list_versions(child)
                    if (child / str(v) / "saved_model.pb").is_file()]
        if versions:
            models[child.name] = versions
    return models
