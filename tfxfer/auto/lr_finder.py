"""An LR finder (fastai's `lr_find`): an exponential learning-rate sweep.

The model trains for `steps` batches while the learning rate grows
exponentially from `min_lr` to `max_lr`; the loss of every batch is recorded,
smoothed (bias-corrected exponential average), and the sweep stops once the
smoothed loss exceeds `diverge` times its minimum. The suggestion is a tenth of
the rate at the minimum of the smoothed loss; the rate of steepest descent is
recorded beside it. The model's weights (and BatchNorm statistics) are restored
afterwards, so the sweep leaves the model as it found it.

For phase 1 (`--learning-rate auto`) the sweep runs on the head over cached
backbone features of a training sample, which is what phase 1 trains; the
from-scratch strategy sweeps the whole model.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tfxfer.training.optimizers import make_optimizer

logger = logging.getLogger(__name__)

LR_FIND_JSON = "lr_find.json"
LR_FIND_PLOT = "lr_find.png"


@dataclass
class LRFinderResult:
    """The sweep: learning rates, raw and smoothed batch losses, and the suggestion."""

    learning_rates: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestion: float
    steepest: float
    stopped_early: bool
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def steepest_descent(learning_rates: np.ndarray, smoothed: np.ndarray) -> float:
    """The rate where the smoothed loss falls fastest (against log LR), before its minimum.

    The first tenth of the sweep is skipped (the average is still warming up).
    """
    lrs, losses = np.asarray(learning_rates), np.asarray(smoothed)
    end = int(np.argmin(losses)) + 1
    start = min(len(lrs) // 10, max(0, end - 3))
    if end - start < 3:
        return float(lrs[max(0, end - 1)])
    slope = np.gradient(losses[start:end], np.log10(lrs[start:end]))
    return float(lrs[start + int(np.argmin(slope))])


def suggest_learning_rate(learning_rates: np.ndarray, smoothed: np.ndarray) -> float:
    """A tenth of the rate at the minimum of the smoothed loss (Smith's and fastai v1's rule).

    The steepest descent (`steepest_descent`, also recorded) tends to sit just below the
    minimum on noisy sweeps (0.066 where the minimum was 0.12 on the flowers head), so
    the more conservative rule is the suggestion.
    """
    return float(np.asarray(learning_rates)[int(np.argmin(smoothed))] / 10)


def _train_step(model: keras.Model, optimizer: keras.optimizers.Optimizer):
    loss_fn = keras.losses.SparseCategoricalCrossentropy()

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    return step


def lr_sweep(
    model: keras.Model,
    dataset: tf.data.Dataset,
    *,
    optimizer: str = "adam",
    min_lr: float = 1e-7,
    max_lr: float = 10.0,
    steps: int = 100,
    diverge: float = 4.0,
    beta: float = 0.9,
    weights_of: keras.Model | None = None,
) -> LRFinderResult:
    """Sweeps the learning rate of `model` exponentially over `steps` batches of `dataset`.

    Args:
        model: the model to train (its trainable flags decide what trains).
        dataset: batched (inputs, labels); repeated as needed.
        optimizer: optimizer name (`tfxfer.training.optimizers`).
        min_lr, max_lr: the range of the sweep.
        steps: batches in the sweep.
        diverge: stop when the smoothed loss exceeds this multiple of its minimum.
        beta: smoothing of the loss (exponential average with bias correction).
        weights_of: the model whose weights to restore (default `model`; pass the
            classifier when `model` is its head).

    Returns:
        The LRFinderResult; the weights are as they were before the call.
    """
    if steps < 5 or not 0 < min_lr < max_lr:
        raise ValueError(f"lr_sweep needs steps >= 5 and 0 < min_lr < max_lr. Received: "
                         f"steps={steps}, min_lr={min_lr}, max_lr={max_lr}")
    owner = weights_of or model
    saved = [np.array(v) for v in owner.weights]
    opt = make_optimizer(optimizer, min_lr)
    opt.build(model.trainable_variables)
    step = _train_step(model, opt)
    rates = min_lr * (max_lr / min_lr) ** (np.arange(steps) / (steps - 1))
    start = time.perf_counter()
    lrs, losses, smoothed, average, stopped = [], [], [], 0.0, False
    try:
        for i, (x, y) in enumerate(dataset.repeat().take(steps)):
            opt.learning_rate.assign(rates[i])
            loss = float(step(x, y))
            if not np.isfinite(loss):
                stopped = True
                break
            average = beta * average + (1 - beta) * loss
            lrs.append(float(rates[i]))
            losses.append(loss)
            smoothed.append(average / (1 - beta ** (i + 1)))
            if i > steps // 10 and smoothed[-1] > diverge * min(smoothed):
                stopped = True
                break
    finally:
        for variable, value in zip(owner.weights, saved):
            variable.assign(value)
    if len(lrs) < 3:
        raise ValueError(f"The loss diverged after {len(lrs)} steps of the LR sweep from "
                         f"{min_lr:g}; lower min_lr.")
    suggestion = suggest_learning_rate(np.array(lrs), np.array(smoothed))
    drop = 1 - min(smoothed) / smoothed[0] if smoothed[0] > 0 else 0.0
    if drop < 0.02:
        logger.warning("The loss did not fall during the LR sweep (%.1f%% below its start): "
                       "the suggestion %.3g is unreliable.", 100 * drop, suggestion)
    steepest = steepest_descent(np.array(lrs), np.array(smoothed))
    result = LRFinderResult(lrs, losses, smoothed, suggestion, steepest, stopped,
                            round(time.perf_counter() - start, 2))
    logger.info("LR finder: %d steps in %.1f s, suggestion %.3g", len(lrs), result.seconds,
                suggestion)
    return result


def plot_lr_find(result: LRFinderResult, path: str | Path) -> Path:
    """Loss against learning rate (log scale), the suggestion marked; saved as PNG."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.add_subplot()
    ax.plot(result.learning_rates, result.losses, color="#bbb", lw=0.8, label="batch loss")
    ax.plot(result.learning_rates, result.smoothed, color="#1f77b4", label="smoothed")
    ax.axvline(result.suggestion, color="#d62728", ls="--",
               label=f"suggestion {result.suggestion:.2g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    top = min(max(result.smoothed), 3 * min(result.smoothed) + 1e-9)
    ax.set_ylim(min(result.losses) * 0.9, max(top, min(result.losses) * 1.1))
    ax.legend()
    ax.set_title("LR finder")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    return path


def write_lr_find(run_dir: str | Path, result: LRFinderResult, purpose: str) -> Path:
    """Writes lr_find.json and lr_find.png into `run_dir`; returns the plot's path."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    data = {"purpose": purpose, **result.to_dict()}
    (run_dir / LR_FIND_JSON).write_text(json.dumps(data, indent=2) + "\n")
    return plot_lr_find(result, run_dir / LR_FIND_PLOT)
