"""The outputs of a task model, as learnt from the training data.

`OutputConfig` (in `tfxfer.config`) says what the user asked for: a column, a task
(or None), a loss weight. `Output` adds what the data decide: the task when it was
inferred, the class or tag names, a regression target's mean and spread, and (after
training) the multilabel thresholds chosen on validation. A run writes them to
RUN_DIR/outputs.json; export and prediction read them back.

Task inference, for a column without ":task" (logged, and documented in docs/tasks.md):

    a cell contains the tag delimiter                    -> multilabel
    at least 90% of the cells are numbers, more than 2 distinct values
                                                         -> regression (the others are bad rows)
    anything else                                        -> classification
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tfxfer.config import OutputConfig
from tfxfer.tasks.losses import CLASSIFICATION, MULTILABEL, REGRESSION

logger = logging.getLogger(__name__)

OUTPUTS_FILE = "outputs.json"
# A multilabel threshold before (or without) validation.
DEFAULT_THRESHOLD = 0.5
# The share of numeric cells from which a column is inferred to be a regression target.
_NUMERIC_SHARE = 0.9
# A distribution head (train.regression_loss "distribution") has at most this many values.
MAX_DISTRIBUTION_VALUES = 50


@dataclass
class Output:
    """One output of a task model, resolved on the training data.

    Attributes:
        name: the output's name: the model's output key and the exported prefix.
        task: classification, multilabel or regression.
        column: the target column of the table.
        loss_weight: weight in the summed loss.
        names: class names (classification) or tag names (multilabel); empty otherwise.
        mean, std: the training targets' mean and standard deviation (regression).
        low, high: the training targets' range (regression); predictions are clipped to it.
        thresholds: per-tag decision thresholds (multilabel), chosen on validation.
        values: a regression output with a distribution head (`train.regression_loss`
            "distribution"): the target's distinct training values, in increasing order;
            the head is a softmax over them. Empty otherwise.
        answer: a distribution head's answer, the median or the mean of its distribution
            (`train.distribution_answer`).
    """

    name: str
    task: str
    column: str
    loss_weight: float = 1.0
    names: list[str] = field(default_factory=list)
    mean: float = 0.0
    std: float = 1.0
    low: float | None = None
    high: float | None = None
    thresholds: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    answer: str = "median"

    @property
    def units(self) -> int:
        if self.task == REGRESSION:
            return len(self.values) or 1
        return len(self.names)

    @property
    def distribution(self) -> bool:
        """Whether the head is a softmax over `values` (its predictions are probabilities)."""
        return self.task == REGRESSION and bool(self.values)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def infer_task(given: OutputConfig, values: list[str], delimiter: str) -> str:
    """The task of `given`: its own, or inferred from the column's non-empty cells."""
    if given.task:
        return given.task
    if any(delimiter in v for v in values):
        task = MULTILABEL
    elif (values and sum(map(_is_number, values)) >= _NUMERIC_SHARE * len(values)
          and len(set(values)) > 2):
        task = REGRESSION
    else:
        task = CLASSIFICATION
    logger.info("Target %r: task inferred as %s (write %s:TASK to choose)", given.column, task,
                given.column)
    return task


def with_regression_heads(outputs: list[Output], train_targets: dict, regression_loss: str,
                          answer: str = "median") -> list[Output]:
    """Regression outputs with their distribution head's values, for the "distribution" loss.

    Raises:
        ValueError: a regression target with more distinct training values than
            MAX_DISTRIBUTION_VALUES (a continuous target: choose another loss).
    """
    if regression_loss != "distribution":
        return outputs
    resolved = []
    for output in outputs:
        if output.task == REGRESSION:
            y = np.asarray(train_targets[output.name], np.float64)
            values = np.unique(y[np.isfinite(y)])
            if len(values) > MAX_DISTRIBUTION_VALUES:
                raise ValueError(
                    f"train.regression_loss 'distribution' needs a target with at most "
                    f"{MAX_DISTRIBUTION_VALUES} distinct values; {output.column!r} has "
                    f"{len(values)} in the training split. Use mse, huber or mae.")
            output = dataclasses.replace(output, values=[float(v) for v in values], answer=answer)
        resolved.append(output)
    return resolved


def write_outputs(run_dir: str | Path, outputs: list[Output]) -> Path:
    path = Path(run_dir, OUTPUTS_FILE)
    path.write_text(json.dumps([o.to_dict() for o in outputs], indent=2) + "\n")
    return path


def read_outputs(run_dir: str | Path) -> list[Output] | None:
    """The outputs of a task run, or None for a single-label classification run."""
    path = Path(run_dir, OUTPUTS_FILE)
    if not path.is_file():
        return None
    return [Output(**item) for item in json.loads(path.read_text())]
