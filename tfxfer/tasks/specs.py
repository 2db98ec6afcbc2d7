"""The registry of tasks: what each output kind's head, loss and metrics are.

    classification  softmax over classes     masked cross-entropy       accuracy
    multilabel      a sigmoid per tag        masked binary cross-entropy binary_accuracy
    regression      one linear unit, in the  masked mse, huber or mae on mae
                    target's own units       standardised targets
                    or a softmax over its    cross-entropy of the       mae of the median
                    distinct values          nearest value

Adding a task is one `TaskSpec` entry (and its branch in `losses.per_row`).
"""

from __future__ import annotations

from dataclasses import dataclass

from tfxfer.config import TASKS
from tfxfer.tasks.losses import CLASSIFICATION, MULTILABEL, REGRESSION, MaskedLoss, MaskedMetric


@dataclass(frozen=True)
class TaskSpec:
    """How one task is trained and exported.

    Attributes:
        name: the task's name (a value of `OutputConfig.task`).
        activation: the head's activation.
        metric: the masked metric shown per epoch (`losses.MaskedMetric` kind).
        exports: what the exported signature returns for an output of this task.
        description: one line for docs and messages.
    """

    name: str
    activation: str
    metric: str
    exports: tuple[str, ...]
    description: str

    def loss(self, scale: float = 1.0, regression: str = "mse", values=()) -> MaskedLoss:
        return MaskedLoss(self.name, scale, regression, values)

    def metrics(self, values=(), answer: str = "median") -> list[MaskedMetric]:
        return [MaskedMetric(self.metric, values, answer=answer)]


_SPECS = {
    CLASSIFICATION: TaskSpec(CLASSIFICATION, "softmax", "accuracy",
                             ("probabilities", "class_id", "class_name"),
                             "one class per row (softmax, cross-entropy)"),
    MULTILABEL: TaskSpec(MULTILABEL, "sigmoid", "binary_accuracy",
                         ("probabilities", "labels"),
                         "any number of tags per row (a sigmoid per tag)"),
    REGRESSION: TaskSpec(REGRESSION, "linear", "mae", ("value",),
                         "one number per row (train.regression_loss on the standardised "
                         "target)"),
}
assert tuple(sorted(_SPECS)) == tuple(sorted(TASKS))


def list_tasks() -> list[str]:
    return sorted(_SPECS)


def get_task(name: str) -> TaskSpec:
    """The spec of task `name`; the error lists the valid ones."""
    if name not in _SPECS:
        raise ValueError(f"Unknown task {name!r}. Valid tasks: {', '.join(list_tasks())}")
    return _SPECS[name]

