"""Atomic publishing of an export directory (the one place tfxfer.lite touches the layout).

The export is written into `.tmp-export-PID-XXXX/` beside the target (same
filesystem, made by `tfxfer.serving.export.layout`, which also removes the temporary
directories of killed exports), flushed to disk, and renamed to the target in
one `rename(2)`: the target directory either does not exist or is complete.
"""

from __future__ import annotations

import os
from pathlib import Path

from tfxfer.serving.export import layout


def check_new_target(target: str | Path) -> Path:
    """The target directory; FileExistsError when it exists (nothing is overwritten)."""
    target = Path(target)
    if target.exists():
        raise FileExistsError(f"{target} exists already; choose another --out "
                              "(nothing was overwritten).")
    return target


def make_temp_dir(target: Path) -> Path:
    """A fresh temporary directory beside `target`, after removing stale ones."""
    layout.remove_stale_temp_dirs(target.parent)
    return layout.make_temp_dir(target.parent)


def publish_directory(temp: Path, target: Path) -> Path:
    """Flushes `temp` and renames it to `target` in one step.

    Raises:
        FileExistsError: `target` appeared meanwhile (`rename(2)` fails on a
            non-empty directory and this check covers an existing empty one).
    """
    check_new_target(target)
    layout.fsync_tree(temp)
    try:
        os.rename(temp, target)
    except OSError as err:
        if target.exists():
            raise FileExistsError(f"{target} appeared during the export.") from err
        raise
    layout.fsync_dir(target.parent)
    return target
