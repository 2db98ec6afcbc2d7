"""Atomic publishing of an export directory (tfxfer.utils.atomic, in the serving layout's names).

The export is written into `.export.tmp-PID-XXXX/` beside the target (same filesystem;
the temporary directories of killed exports are removed first), flushed to disk, and
renamed to the target in one `rename(2)`: the target directory either does not exist
or is complete.
"""

from __future__ import annotations

from pathlib import Path

from tfxfer.serving.export import layout
from tfxfer.utils import atomic


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
        FileExistsError: `target` exists, or appeared meanwhile (`rename(2)` fails on a
            non-empty directory and `atomic.publish_dir` checks for an empty one).
    """
    check_new_target(target)
    return atomic.publish_dir(temp, target)
