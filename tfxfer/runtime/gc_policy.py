"""Garbage collection in a training process: the long-lived heap kept out of the scans.

A run imports TensorFlow and Keras and builds a model and its traced functions: some
450,000 Python objects that live until the end. CPython's collector scans them all
at every full collection, and once more at interpreter exit. Measured on the flowers
app (MobileNet alpha=0.25, 2 CPU cores): collections took 0.9 s during the run, and
exit took 0.9-1.1 s inside the final collection (0.1 s with the heap frozen).

- `long_lived_frozen()` freezes (`gc.freeze`) what exists when a phase starts and
  unfreezes it when the phase ends, so garbage made meanwhile is still collected and
  a process that runs many experiments (the advisor, the tests) frees each one's.
- `skip_final_collection()`, for entry points whose process ends with the run, freezes
  the heap at exit: the operating system reclaims the memory anyway, and Python does
  not promise finalizers at exit for objects in reference cycles.
- `import_tensorflow()`, for entry points that will use TensorFlow, imports it and
  Keras with the collector paused: the import makes ~570,000 objects that live until
  the end, and six full collections during it freed nothing (import 2.3-2.4 s -> 1.8 s).
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import sys
from collections.abc import Iterator

_exit_registered = False


@contextlib.contextmanager
def long_lived_frozen() -> Iterator[None]:
    """Keeps the objects alive on entry out of the collector's scans until exit.

    Does nothing when something is frozen already (the caller owns that state).
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def skip_final_collection() -> None:
    """Freezes the heap at interpreter exit, skipping the final full collection."""
    global _exit_registered
    if not _exit_registered:
        atexit.register(gc.freeze)
        _exit_registered = True


def import_tensorflow() -> None:
    """Imports TensorFlow and Keras (if not imported yet) with the collector paused.

    Call it after `tfxfer.runtime.onednn.enable_onednn_default`, which must run first.
    """
    if "tensorflow" in sys.modules and "keras" in sys.modules:
        return
    from tfxfer.runtime.native_log import native_log_filtered

    enabled = gc.isenabled()
    gc.disable()
    try:
        with native_log_filtered():  # the C++ log at import ignores TF_CPP_MIN_LOG_LEVEL
            import keras  # noqa: F401
            import tensorflow

            # Listing the physical devices (not initialising them) runs cuInit now, inside
            # the filter: on a machine without a GPU it logs an error line otherwise.
            tensorflow.config.list_physical_devices()
    finally:
        if enabled:
            gc.enable()
