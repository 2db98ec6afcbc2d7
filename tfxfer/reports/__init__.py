"""Run reports: learning curves, confusion matrix, prediction grid, report.html.

    from tfxfer.reports import write_report
    write_report("runs/flowers")       # what `tfxfer report RUN_DIR` does

`tfxfer.reports.runs` (the `tfxfer runs` table) reads run directories without
TensorFlow, so the public names here are imported on first use.
"""

from tfxfer.utils.lazy import lazy_getattr

_PUBLIC = {
    "write_report": "tfxfer.reports.report",
    "tensorboard_callbacks": "tfxfer.reports.tensorboard",
}

__all__ = sorted(_PUBLIC)

__getattr__ = lazy_getattr(__name__, _PUBLIC)
