"""TensorFlow's C++ log at import, filtered like `TF_CPP_MIN_LOG_LEVEL` says.

TensorFlow 2.21 logs through absl, and what it logs while it is imported ("oneDNN custom
operations are on", "Could not find cuda drivers", "All log messages before
absl::InitializeLog() is called are written to STDERR") reaches stderr whatever
`TF_CPP_MIN_LOG_LEVEL` says: absl is not initialised yet. The first device listing
adds "failed call to cuInit" (level E) on a machine without a GPU, so
`tfxfer.runtime.gc_policy.import_tensorflow` lists the devices inside the filter too.
`native_log_filtered()` sends file descriptor 2 to a temporary file during the import
and writes back every line except those below the level (I = 0, W = 1, E = 2) and cuInit's failure
on a machine without a GPU, so Python's own messages and real errors still appear,
in order.

The entry points set `TF_CPP_MIN_LOG_LEVEL=2` unless it is set already (set it to 0
to see everything).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator

from tfxfer.runtime.onednn import gpu_in_use

# absl's line prefix: severity letter, MMDD, then the time.
_NATIVE_LINE = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d\d")
_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}
_ABSL_NOTICE = "WARNING: All log messages before absl::InitializeLog() is called"
_NO_GPU = "failed call to cuInit"


def min_log_level() -> int:
    """`TF_CPP_MIN_LOG_LEVEL` as a number (0 when unset or not a number)."""
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


def keep_line(line: str, level: int) -> bool:
    """Whether a line written to stderr during the import is shown at `level`."""
    if level >= 1 and line.startswith(_ABSL_NOTICE):
        return False
    match = _NATIVE_LINE.match(line)
    if match is None:
        return True
    if level >= 1 and _NO_GPU in line and not gpu_in_use():
        return False  # no NVIDIA GPU listed by the driver: cuInit is expected to fail
    return _SEVERITY[match.group(1)] >= level


@contextlib.contextmanager
def native_log_filtered() -> Iterator[None]:
    """Filters what native code writes to stderr meanwhile (see the module docstring)."""
    level = min_log_level()
    if level <= 0:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", "replace")
            kept = [line for line in text.splitlines(keepends=True) if keep_line(line, level)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
