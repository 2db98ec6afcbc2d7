"""Run reports: learning curves, confusion matrix, prediction grid, report.html.

    from tfxfer.reports import write_report
    write_report("runs/flowers")       # what `tfxfer report RUN_DIR` does
"""

from tfxfer.reports.report import write_report
from tfxfer.reports.tensorboard import tensorboard_callbacks

__all__ = ["tensorboard_callbacks", "write_report"]
