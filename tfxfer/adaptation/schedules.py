"""The schedules of the DANN paper over training progress p in [0, 1].

    λ_p = 2 / (1 + exp(-γ p)) - 1            γ = 10: from 0 to ~1, suppressing the
                                             noisy domain signal early on
    η_p = η0 / (1 + α p) ** β                α = 10, β = 0.75: the annealed learning rate

`AdaptationSchedule` is the Keras callback that applies both before every batch.
"""

from __future__ import annotations

import math

import keras

GAMMA = 10.0
ALPHA = 10.0
BETA = 0.75


def grl_lambda(progress: float, gamma: float = GAMMA, maximum: float = 1.0) -> float:
    """λ_p of the paper (times `maximum`), for progress p in [0, 1]."""
    p = min(max(progress, 0.0), 1.0)
    return maximum * (2.0 / (1.0 + math.exp(-gamma * p)) - 1.0)


def annealed_learning_rate(
    progress: float, eta0: float, alpha: float = ALPHA, beta: float = BETA
) -> float:
    """η_p = η0 / (1 + α p)^β of the paper, for progress p in [0, 1]."""
    p = min(max(progress, 0.0), 1.0)
    return eta0 / (1.0 + alpha * p) ** beta


class AdaptationSchedule(keras.callbacks.Callback):
    """Sets λ of a `GradientReversal` layer and the learning rate before every batch.

    Progress counts batches over the whole run (all phases), so a second phase
    continues the schedules where the first left them.

    Args:
        reversal: the layer whose `lambda_` variable is set.
        total_steps: training batches of the whole run.
        eta0: the phase's base learning rate.
        first_step: batches run before this phase.
        lambda_max: λ's ceiling (the paper: 1).
        anneal: apply η_p; otherwise the learning rate stays at eta0.
    """

    def __init__(self, reversal, total_steps: int, eta0: float, first_step: int = 0,
                 lambda_max: float = 1.0, anneal: bool = True) -> None:
        super().__init__()
        if total_steps < 1:
            raise ValueError(f"total_steps must be >= 1. Received: {total_steps}")
        self.reversal = reversal
        self.total_steps = total_steps
        self.eta0 = eta0
        self.step = first_step
        self.lambda_max = lambda_max
        self.anneal = anneal

    @property
    def progress(self) -> float:
        return self.step / self.total_steps

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self.reversal.lambda_.assign(grl_lambda(self.progress, maximum=self.lambda_max))
        if self.anneal:
            self.model.optimizer.learning_rate = annealed_learning_rate(self.progress, self.eta0)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.step += 1

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["lambda"] = float(self.reversal.lambda_.numpy())
            logs["adapt_learning_rate"] = float(
                keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
