"""Two-phase training: the head on a frozen backbone, then fine-tuning.

`fit_phases` runs the phases a strategy plans (see `strategies.plan_phases`).
Each phase sets the trainable flags, recompiles with its own learning rate and
continues the epoch count of the previous one, so the history of all phases
joins into one record with a `phase` column.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import keras
import numpy as np
import tensorflow as tf

from tfxfer.config import TrainConfig
from tfxfer.training.optimizers import layerwise_multipliers, make_optimizer, phase_schedule
from tfxfer.training.strategies import Phase, plan_phases, set_phase_trainable
from tfxfer.utils import keras_compat

logger = logging.getLogger(__name__)


@dataclass
class PhaseRecord:
    """What one phase did: for the run directory and reports."""

    name: str
    first_epoch: int
    epochs_run: int
    learning_rate: float
    trainable_weights: int
    trainable_params: int
    seconds: float
    # How the phase ran: "full model", or the cached variant its runner chose.
    mode: str = "full model"


@dataclass
class TrainingHistory:
    """Joined per-epoch history of all phases and a record per phase."""

    rows: list[dict] = field(default_factory=list)
    phases: list[PhaseRecord] = field(default_factory=list)

    def column(self, name: str) -> list[float]:
        return [row[name] for row in self.rows if name in row]


class WeightSnapshots:
    """The classifier's weights during one fit, reading only what the fit can change.

    A fit changes only the variables of the model it fits (the head alone when a phase
    runs on cached features). The first snapshot of a fit reads every weight of the
    classifier; later ones start from it and read only the fitted model's: 4 arrays
    instead of MobileNetV2's 260 (12 ms per snapshot).
    """

    def __init__(self, classifier: keras.Model) -> None:
        self.classifier = classifier
        self._first: list[np.ndarray] | None = None
        self._live: list[tuple[int, keras.Variable]] | None = None  # None: outside a fit

    def begin(self, fitted: keras.Model) -> None:
        """Starts a fit of `fitted` (the classifier or a model sharing its layers)."""
        ids = {id(v) for v in fitted.weights}
        self._first = None
        self._live = [(i, v) for i, v in enumerate(self.classifier.weights) if id(v) in ids]

    def take(self) -> list[np.ndarray]:
        if self._live is None:
            return self.classifier.get_weights()
        if self._first is None:
            self._first = self.classifier.get_weights()
            return list(self._first)
        weights = list(self._first)
        for index, variable in self._live:
            weights[index] = variable.numpy()
        return weights


class BestWeights(keras.callbacks.Callback):
    """Keeps the weights of `model` at the epoch with the lowest `monitor`, across fits.

    The snapshot is of the whole classifier even when a phase fits only its head
    on cached features (then Keras hands the callback the head model).
    """

    def __init__(self, model: keras.Model, monitor: str = "val_loss") -> None:
        super().__init__()
        self.classifier = model
        self.monitor = monitor
        self.best = np.inf
        self.best_epoch: int | None = None
        self.best_weights: list[np.ndarray] | None = None
        self.snapshots = WeightSnapshots(model)

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.snapshots.begin(self.model)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        _check_monitor(self.monitor, logs)
        value = logs.get(self.monitor)
        if value is not None and value < self.best:
            self.best, self.best_epoch = float(value), epoch + 1
            self.best_weights = self.snapshots.take()

    def restore(self) -> None:
        if self.best_weights is not None:
            self.classifier.set_weights(self.best_weights)
            logger.info("Restored weights of epoch %d (%s=%.4f)", self.best_epoch,
                        self.monitor, self.best)


def compile_for_phase(
    model: keras.Model, phase: Phase, train: TrainConfig,
    train_ds: tf.data.Dataset | None = None, loss="sparse_categorical_crossentropy",
    metrics: Sequence | dict | None = None, loss_weights: dict | None = None,
) -> keras.Model:
    """Compiles `model` for `phase`: a fresh optimizer at the phase's learning rate.

    `loss` and `metrics` (default ["accuracy"]) replace the classifier's own, e.g. the
    distillation loss of a continual run (`tfxfer.continual.distillation`), or a task
    model's per-output losses, `loss_weights` and metrics (`tfxfer.tasks.model.compile_args`).

    Discriminative learning rates apply to phases that unfreeze pretrained layers.
    With `train.warmup_fraction` or a decaying `train.lr_schedule` the rate follows
    a schedule over the phase's steps, counted from `train_ds` (the batches the
    phase fits on, needed then).
    """
    multipliers = None
    if train.layer_lr_decay is not None and phase.unfreeze in ("top", "all"):
        multipliers = layerwise_multipliers(model, train.layer_lr_decay, train.layer_lr_block)
    learning_rate = phase.learning_rate
    if train.warmup_fraction > 0 or train.lr_schedule != "constant":
        learning_rate = phase_schedule(phase.learning_rate, steps_per_epoch(train_ds),
                                       phase.epochs, train.warmup_fraction, train.lr_schedule)
    model.compile(
        optimizer=make_optimizer(train.optimizer, learning_rate, multipliers),
        loss=loss,
        loss_weights=loss_weights,
        metrics=(metrics if isinstance(metrics, dict)
                 else list(metrics) if metrics is not None else ["accuracy"]),
        jit_compile=train.jit_compile,
    )
    # Built here, the optimizer's variables exist before the train step is traced; built
    # inside it, TensorFlow traces the step twice (once to create them): 0.1 s per phase.
    model.optimizer.build(model.trainable_variables)
    if train_ds is not None:
        _build_compiled_state(model, train_ds.element_spec)
    return model


def _build_compiled_state(model: keras.Model, batch_spec) -> None:
    """Creates the compiled loss's and metrics' variables before `fit` traces a step.

    Outside a distribution strategy's scope Keras creates them inside the first trace
    of the train step, and TensorFlow then traces the step again (the same double trace
    as the optimizer's): 0.05 s more on a small head. This is the symbolic build Keras
    itself runs in `fit` under a strategy, from the batch's spec.
    """
    keras_compat.symbolic_build(model, batch_spec)


def steps_per_epoch(train_ds: tf.data.Dataset | None) -> int:
    """Batches per epoch of `train_ds`, for learning-rate schedules."""
    steps = -1 if train_ds is None else int(train_ds.cardinality())
    if steps < 1:
        raise ValueError(
            "train.warmup_fraction / train.lr_schedule need the number of training batches "
            "per epoch, and the training dataset does not know it (cardinality "
            f"{'missing' if train_ds is None else steps}: unknown or infinite). Received: "
            f"{train_ds!r}"
        )
    return steps


def _schedule_note(train: TrainConfig) -> str:
    if train.warmup_fraction == 0 and train.lr_schedule == "constant":
        return ""
    return f" (warmup {train.warmup_fraction:.0%} of the phase's steps, then {train.lr_schedule})"


def _check_monitor(monitor: str, logs: dict) -> None:
    """Refuses a monitor that an epoch with validation logs does not report."""
    if monitor not in logs and any(key.startswith("val_") for key in logs):
        raise ValueError(f"train.monitor {monitor!r} is not among the epoch's logs: "
                         f"{sorted(logs)}")


def _phase_callbacks(train: TrainConfig) -> list[keras.callbacks.Callback]:
    if train.early_stopping_patience is None:
        return []
    return [keras.callbacks.EarlyStopping(
        monitor=train.monitor, mode="min", patience=train.early_stopping_patience, verbose=1
    )]


def _count_params(weights: Sequence) -> int:
    return int(sum(np.prod(w.shape) for w in weights))


def _validate_fit(train: TrainConfig, val_ds: tf.data.Dataset | None) -> None:
    if val_ds is None and (train.restore_best or train.early_stopping_patience is not None):
        raise ValueError(
            "restore_best and early_stopping_patience need validation data; "
            "set data.val_fraction > 0."
        )


# Called as runner(phase, initial_epoch=, epochs=, verbose=, callbacks=); returns the
# Keras history and how the phase ran (recorded as PhaseRecord.mode).
PhaseRunner = Callable[..., tuple[keras.callbacks.History, str]]


class ResumePoint(Protocol):
    """Where a resumed run continues; `tfxfer.training.resume.Checkpoint` is one."""

    epoch: int
    phase: str
    history: TrainingHistory

    def load_best(self, best: BestWeights) -> None: ...


def remaining_phases(phases: Sequence[Phase], start: ResumePoint | None) -> list[Phase]:
    """`phases` from the one `start` was in (all of them without `start`)."""
    names = [phase.name for phase in phases]
    if start is None:
        return list(phases)
    if start.phase not in names:
        raise ValueError(f"The checkpoint is in phase {start.phase!r}, which this run's "
                         f"strategy does not have (phases: {names}).")
    return list(phases[names.index(start.phase):])


class PhaseTrainer:
    """Runs phases one at a time on one model, joining their histories.

    Each `fit(phase)` sets the phase's trainable flags, recompiles with its own
    learning rate and continues the epoch count of the previous phase; `finish()`
    restores the best weights (with `train.restore_best`) and returns the history.

    Args:
        model: a tfxfer classifier (it has a layer named "backbone").
        train_ds: batched (inputs, labels) for training.
        val_ds: batched validation data, or None.
        train: the training section of the config.
        callbacks: extra Keras callbacks passed to every phase.
        runners: optional replacements of `model.fit` by phase name, called as
            `runner(phase, initial_epoch=, epochs=, verbose=, callbacks=)` after the
            phase's trainable flags are set and returning (history, mode); used to
            train on cached backbone features (`tfxfer.training.bottleneck`) or cached
            activations at the unfreeze boundary (`tfxfer.training.boundary`).
        start: where a resumed run continues (see `tfxfer.training.resume`): its history and
            epoch count carry on and its phase continues after its epoch. Callbacks
            with an `on_phase_begin(phase, history, best)` method are told each
            phase before it runs.
        compile_args: the loss and metrics of a task model (see `compile_for_phase`).
    """

    def __init__(
        self,
        model: keras.Model,
        train_ds: tf.data.Dataset,
        val_ds: tf.data.Dataset | None,
        train: TrainConfig,
        callbacks: Sequence[keras.callbacks.Callback] = (),
        runners: dict[str, PhaseRunner] | None = None,
        start: ResumePoint | None = None,
        compile_args: dict | None = None,
    ) -> None:
        _validate_fit(train, val_ds)
        self.compile_args = compile_args
        self.model, self.train_ds, self.val_ds, self.train = model, train_ds, val_ds, train
        self.callbacks = list(callbacks)
        self.runners = runners or {}
        self.history = start.history if start else TrainingHistory()
        self.best = BestWeights(model, train.monitor) if train.restore_best else None
        if self.best is not None and start is not None:
            start.load_best(self.best)
        self.epoch = start.epoch if start else 0
        self.finished = False

    def fit(self, phase: Phase) -> PhaseRecord:
        """Trains one phase and records it."""
        model, train = self.model, self.train
        first = _first_epoch(self.history, phase, self.epoch)
        set_phase_trainable(model, phase, train)
        logger.info(
            "Phase %r: epochs %d-%d (from %d), learning rate %g%s, %d trainable weights",
            phase.name, first, first - 1 + phase.epochs, self.epoch + 1, phase.learning_rate,
            _schedule_note(train), len(model.trainable_weights),
        )
        for callback in self.callbacks:
            if hasattr(callback, "on_phase_begin"):
                callback.on_phase_begin(phase, self.history, self.best)
        fit_args = {
            "initial_epoch": self.epoch, "epochs": first - 1 + phase.epochs,
            "verbose": train.verbose,
            # BestWeights first: a backup callback then saves this epoch's best.
            "callbacks": [*([self.best] if self.best else []), *self.callbacks,
                          *_phase_callbacks(train)],
        }
        began = time.perf_counter()
        runner = self.runners.get(phase.name)
        if runner is None:
            compile_for_phase(model, phase, train, self.train_ds, **(self.compile_args or {}))
            result = model.fit(self.train_ds, validation_data=self.val_ds, shuffle=False,
                               **fit_args)
            mode = "full model"
        else:
            result, mode = runner(phase, **fit_args)
        seconds = time.perf_counter() - began
        _append_rows(self.history, result, phase)
        epochs_run = sum(row["phase"] == phase.name for row in self.history.rows)
        record = PhaseRecord(
            phase.name, first, epochs_run, phase.learning_rate,
            len(model.trainable_weights), _count_params(model.trainable_weights), seconds,
            mode,
        )
        self.history.phases.append(record)
        self.epoch = first - 1 + epochs_run
        return record

    def finish(self) -> TrainingHistory:
        """Restores the best epoch's weights (once, with `restore_best`); the history."""
        if self.best is not None and not self.finished:
            self.best.restore()
        self.finished = True
        return self.history


def fit_phases(
    model: keras.Model,
    train_ds: tf.data.Dataset,
    val_ds: tf.data.Dataset | None,
    train: TrainConfig,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    runners: dict[str, PhaseRunner] | None = None,
    start: ResumePoint | None = None,
    pretrained: bool = True,
) -> TrainingHistory:
    """Trains `model` through the phases of `train.strategy` (see `PhaseTrainer`).

    `pretrained` (the backbone has pretrained weights) is passed to `plan_phases`.

    Returns:
        The joined history and a record per phase.
    """
    trainer = PhaseTrainer(model, train_ds, val_ds, train, callbacks, runners, start)
    for phase in remaining_phases(plan_phases(train, pretrained), start):
        trainer.fit(phase)
    return trainer.finish()


def _first_epoch(history: TrainingHistory, phase: Phase, epoch: int) -> int:
    """The first epoch of `phase`: from the history when a resumed run is inside it."""
    done = [row["epoch"] for row in history.rows if row["phase"] == phase.name]
    return min(done) if done else epoch + 1


def _append_rows(history: TrainingHistory, result: keras.callbacks.History, phase: Phase) -> None:
    for i, epoch in enumerate(result.epoch):
        row = {"epoch": epoch + 1, "phase": phase.name, "learning_rate": phase.learning_rate}
        row.update({k: float(v[i]) for k, v in result.history.items()})
        history.rows.append(row)
