"""Progress bars (tqdm) for long loops, shown only to a person watching.

One helper for every bar: feature extraction, folder scanning, export verification,
`tfxfer predict`. A bar is drawn on stderr when stderr is a terminal, unless the
command ran with `--quiet` (`set_progress(False)`) or the caller passes
`enabled=False` (e.g. `train.verbose` 0). Logs and pipes get no bar characters.

Example:
    for batch in progress(batches, total=len(batches), desc="features", unit="batch"):
        ...
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm

_state = {"enabled": True}


def set_progress(enabled: bool) -> None:
    """Turns every progress bar of this process on (the default, on a terminal) or off."""
    _state["enabled"] = bool(enabled)


def progress_enabled(enabled: bool | None = None) -> bool:
    """Whether a bar is drawn: stderr is a terminal, bars are on, and `enabled` is not False."""
    if enabled is False or not _state["enabled"]:
        return False
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def progress(
    iterable: Iterable | None = None,
    *,
    total: int | None = None,
    desc: str | None = None,
    unit: str = "it",
    enabled: bool | None = None,
    **options: Any,
) -> tqdm:
    """A tqdm bar over `iterable` (or one to `update()` by hand), silent when not wanted.

    Args:
        iterable: what to iterate; None for a manual bar.
        total: the count when `iterable` has no length.
        desc: the bar's label, e.g. "features".
        unit: what one step is ("image", "batch").
        enabled: False turns this bar off (e.g. verbose 0); None follows the process.
        **options: passed to tqdm.
    """
    return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr,
                disable=not progress_enabled(enabled), leave=False, dynamic_ncols=True,
                **options)
