"""A whole run: data, model, two-phase training, evaluation, run directory.

`train(config)` is what `tfxfer train` and the apps call; `evaluate_run` reloads
a finished run and evaluates it again on its own test split.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras

from tfxfer import rundir
from tfxfer.auto import resolve_auto
from tfxfer.bottleneck import head_phase_runner, should_cache
from tfxfer.config import RunConfig
from tfxfer.data.sources import Splits, load_splits
from tfxfer.devices import distribution_strategy, set_precision
from tfxfer.evaluation import Evaluation, evaluate
from tfxfer.models import build_image_classifier, image_size_for
from tfxfer.reports import tensorboard_callbacks, write_report
from tfxfer.text.model import build_text_classifier
from tfxfer.training import TrainingHistory, fit_phases

logger = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What `train` produced; everything is also written to `run_dir`."""

    run_dir: Path
    config: RunConfig
    model: keras.Model
    splits: Splits
    history: TrainingHistory
    evaluation: Evaluation | None


def _default_out() -> str:
    return str(Path("runs", time.strftime("%Y%m%d-%H%M%S")))


def resolve_config(config: RunConfig) -> RunConfig:
    """Fills in what the defaults leave open: image size, weights, run directory."""
    model = dataclasses.replace(config.model, image_size=image_size_for(config.model))
    if config.train.strategy == "from_scratch":
        model = dataclasses.replace(model, weights=None)
    return dataclasses.replace(config, model=model, out=config.out or _default_out())


def _prepare_run_dir(path: Path) -> Path:
    if (path / rundir.CONFIG).exists():
        raise FileExistsError(
            f"Run directory {path} already holds a run; choose another --out "
            "(nothing was overwritten)."
        )
    path.mkdir(parents=True, exist_ok=True)
    return path


def build_classifier(config: RunConfig, splits: Splits) -> keras.Model:
    """The model for `splits`' modality, built from the model section."""
    from_scratch = config.train.strategy == "from_scratch"
    if splits.modality == "image":
        return build_image_classifier(
            config.model, len(splits.class_names), from_scratch=from_scratch
        )
    if splits.modality == "text":
        return build_text_classifier(
            config.model, len(splits.class_names), from_scratch=from_scratch,
            seed=config.data.seed,
        )
    raise ValueError(f"No model builder for {splits.modality!r} data ({splits.source}).")


def _build_and_fit(
    config: RunConfig, splits: Splits, callbacks: Sequence[keras.callbacks.Callback] = ()
) -> tuple[keras.Model, TrainingHistory]:
    """Builds the classifier under the distribution strategy and runs its phases.

    Phase 1 trains on cached backbone features when `tfxfer.bottleneck` allows it.
    With several replicas, Keras 3.15 fails on batches that do not split evenly
    across replicas (random layers, BatchNorm on empty replica batches), so the last
    partial training and validation batch is dropped; the test evaluation runs on
    every example (see `evaluation.inference_function`).
    """
    strategy = distribution_strategy(config.train.distribute)
    replicas = strategy.num_replicas_in_sync
    if config.data.batch_size % replicas:
        raise ValueError(
            f"batch_size must be a multiple of the {replicas} replicas. "
            f"Received: batch_size={config.data.batch_size}"
        )
    with strategy.scope():
        model = build_classifier(config, splits)
        runners = {}
        if should_cache(model, config):
            runners["head"] = head_phase_runner(model, config, splits)
        even = replicas > 1
        train_ds = splits.batches("train", config.data, training=True, drop_remainder=even)
        val_ds = splits.batches("val", config.data, drop_remainder=even)
        history = fit_phases(model, train_ds, val_ds, config.train, callbacks=callbacks,
                             runners=runners)
    return model, history


def train(config: RunConfig, splits: Splits | None = None) -> RunResult:
    """Runs a full training job described by `config` and writes its run directory.

    Args:
        config: the run configuration (see `tfxfer.config`).
        splits: data loaded already, e.g. from pandas with
            `tfxfer.data.text.load_dataframe_splits`; default: `config.data.source`.

    Returns:
        A RunResult holding the trained model, its history and test evaluation.
    """
    config = resolve_config(config.validate())
    run_dir = _prepare_run_dir(Path(config.out))
    set_precision(config.train.mixed_precision)
    keras.utils.set_random_seed(config.data.seed)

    if splits is None:
        splits = load_splits(config.data, config.model.image_size)
    # --- "auto" strategy, feature layer, learning rate (tfxfer.auto) ---
    config = resolve_config(resolve_auto(config, splits, run_dir))
    # ---
    rundir.write_setup(run_dir, config, splits)
    model, history = _build_and_fit(
        config, splits, tensorboard_callbacks(run_dir, config.train.tensorboard)
    )
    rundir.write_history(run_dir, history)
    evaluation = None
    if splits.size("test"):
        evaluation = evaluate(model, splits.batches("test", config.data), splits.class_names)
        rundir.write_evaluation(run_dir, evaluation, rundir.split_inputs(splits, "test"))
    rundir.save_model(run_dir, model)
    write_report(run_dir, splits)
    logger.info("Run written to %s", run_dir)
    return RunResult(run_dir, config, model, splits, history, evaluation)


def evaluate_run(run_dir: str | Path) -> Evaluation:
    """Reloads a run and evaluates its model on the run's own test split again."""
    config, model, class_names = rundir.load_run(run_dir)
    splits = load_splits(config.data, config.model.image_size)
    if splits.class_names != class_names:
        raise ValueError(
            f"The data at {config.data.source} now has classes {splits.class_names}, "
            f"but the run was trained on {class_names}."
        )
    if not splits.size("test"):
        raise ValueError(f"The run at {run_dir} has no test split (test_fraction=0).")
    evaluation = evaluate(model, splits.batches("test", config.data), class_names)
    rundir.write_evaluation(Path(run_dir), evaluation, rundir.split_inputs(splits, "test"))
    write_report(run_dir, splits)
    return evaluation
