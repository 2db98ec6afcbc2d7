"""Write-then-rename: a file or directory appears under its name complete, or not at all.

Every writer of tfxfer that others may read while it writes (or after it was killed)
goes through here: exports polled by TF Serving, LiteRT exports, run checkpoints,
feature caches, built text encoders, models.config. The output is written under a
temporary name in the target's own directory (the same filesystem, so the rename is
one `rename(2)`), flushed to disk with fsync, renamed into place, and the directory
entry flushed too, so even a power loss leaves the old state or the new one.

One naming scheme for every temporary:

    DIR/.STEM.tmp-PID-XXXXXXXX     e.g. .export.tmp-4242-k3j9x0aq, .epoch-0003.tmp-4242-...

It starts with a dot and is never an integer, so TF Serving's poller and the run and
cache readers skip it; PID names the writing process, so the temporaries of killed
writers can be told from those of live ones (`remove_temps`).

Example:
    with atomic_file(path) as f:          # a file: path appears when the block ends
        f.write(text)
    with atomic_dir(out) as temp:         # a directory: write into temp, then out appears
        (temp / "weights.npz").write_bytes(data)
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO

logger = logging.getLogger(__name__)

TEMP_MARK = ".tmp-"


def temp_prefix(stem: str) -> str:
    """The start of every temporary name of `stem` (a glob of `prefix*` finds them)."""
    return f".{stem}{TEMP_MARK}"


def temp_path(directory: str | Path, stem: str) -> Path:
    """A fresh temporary name in `directory`: DIR/.STEM.tmp-PID-XXXXXXXX (not created)."""
    token = secrets.token_hex(4)
    return Path(directory) / f"{temp_prefix(stem)}{os.getpid()}-{token}"


def owner_pid(name: str) -> int | None:
    """The process id in a temporary name, or None when `name` is not one."""
    if not name.startswith(".") or TEMP_MARK not in name:
        return None
    pid, _, _ = name.rpartition(TEMP_MARK)[2].partition("-")
    return int(pid) if pid.isdigit() else None


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def remove_temps(directory: str | Path, stem: str = "*", keep_live: bool = True) -> list[Path]:
    """Removes the temporaries of `stem` ("*": any) left in `directory` by killed writers.

    Args:
        directory: where to look (a missing directory has none).
        stem: whose temporaries.
        keep_live: keep those whose process is still running (another writer at work);
            False removes every one but this process's (a directory with one writer).

    Returns:
        The paths removed.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for temp in sorted(directory.glob(f"{temp_prefix(stem)}*")):
        pid = owner_pid(temp.name)
        if pid == os.getpid() or (keep_live and pid is not None and _process_alive(pid)):
            continue
        if temp.is_dir() and not temp.is_symlink():
            shutil.rmtree(temp, ignore_errors=True)
        else:
            temp.unlink(missing_ok=True)
        removed.append(temp)
        logger.info("Removed the temporary of an interrupted write: %s", temp)
    return removed


def make_temp_dir(directory: str | Path, stem: str) -> Path:
    """Creates a new, empty temporary directory in `directory` (made if missing).

    Its mode follows the umask like any new directory (not mkdtemp's private 0700): a
    published export must be readable by a server running as another user.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    while True:
        temp = temp_path(directory, stem)
        try:
            temp.mkdir()
            return temp
        except FileExistsError:  # a token drawn twice: draw again
            continue


def fsync_file(path: str | Path) -> None:
    """Flushes one file (or directory entry list) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | Path) -> None:
    """Flushes a directory's entries (a rename into it is durable after this)."""
    fsync_file(path)


def fsync_tree(root: str | Path) -> None:
    """Flushes every file and directory under `root` to disk."""
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            fsync_file(os.path.join(dirpath, name))
        fsync_dir(dirpath)


def publish_dir(temp: str | Path, target: str | Path, replace: bool = False) -> Path:
    """Flushes the finished directory `temp` and renames it to `target` in one step.

    Args:
        temp: a complete directory beside `target` (`make_temp_dir(target.parent, ...)`).
        target: the name it appears under.
        replace: remove an existing `target` first (then readers may briefly see none;
            never a half-written one). False: an existing target is an error.

    Returns:
        `target`.

    Raises:
        FileExistsError: `target` exists (replace=False), or appeared meanwhile: rename(2)
            fails on a non-empty directory; `temp` is left for the caller.
    """
    temp, target = Path(temp), Path(target)
    fsync_tree(temp)
    if replace:
        shutil.rmtree(target, ignore_errors=True)
    elif target.exists():
        raise FileExistsError(f"{target} exists already (nothing was overwritten).")
    try:
        os.rename(temp, target)
    except OSError as err:
        if target.exists():
            raise FileExistsError(f"{target} appeared while it was being written.") from err
        raise
    fsync_dir(target.parent)
    return target


@contextlib.contextmanager
def atomic_dir(target: str | Path, replace: bool = False) -> Iterator[Path]:
    """Yields a temporary directory beside `target`; renamed to `target` when the block ends.

    An exception in the block (or in the rename) removes the temporary directory and
    leaves `target` as it was.

    Args:
        target: the directory to write.
        replace: see `publish_dir`.
    """
    target = Path(target)
    temp = make_temp_dir(target.parent, target.name)
    try:
        yield temp
        publish_dir(temp, target, replace=replace)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_file(
    target: str | Path, mode: str = "w", permissions: int | None = None, **open_options
) -> Iterator[IO]:
    """Yields an open temporary file beside `target`; it replaces `target` when the block ends.

    The file is created like any new file (mode from the umask) and `os.replace`d over an
    existing `target`, which readers see whole, old or new. An exception in the block
    removes the temporary file and leaves `target` as it was.

    Args:
        target: the file to write (its directory is made if missing).
        mode: "w" (text) or "wb" (bytes).
        permissions: the file's mode bits (e.g. 0o644 for a file other users read,
            whatever the umask); None: from the umask.
        **open_options: passed to `open`, e.g. encoding="utf-8".
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_file writes a new file: mode 'w' or 'wb'. Received: {mode!r}")
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_path(target.parent, target.name)
    try:
        with open(temp, mode.replace("w", "x"), **open_options) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if permissions is not None:
            os.chmod(temp, permissions)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def write_text(
    target: str | Path, text: str, encoding: str = "utf-8", permissions: int | None = None
) -> Path:
    """Writes `text` to `target` atomically (see `atomic_file`); returns `target`."""
    with atomic_file(target, "w", permissions=permissions, encoding=encoding) as f:
        f.write(text)
    return Path(target)
