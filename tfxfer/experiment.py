"""A whole run: data, model, two-phase training, evaluation, run directory.

`train(config)` is what `tfxfer train` and the apps call; `evaluate_run` reloads
a finished run and evaluates it again on its own test split.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from tfxfer import rundir
from tfxfer.config import RunConfig
from tfxfer.data.sources import Splits, load_splits
from tfxfer.evaluation import Evaluation, evaluate
from tfxfer.models import build_image_classifier, image_size_for
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


def set_precision(mixed_precision: bool) -> str:
    """Sets the global Keras dtype policy: mixed_float16 on GPU, mixed_bfloat16 on CPU."""
    policy = "float32"
    if mixed_precision:
        on_gpu = bool(tf.config.list_physical_devices("GPU"))
        policy = "mixed_float16" if on_gpu else "mixed_bfloat16"
        if not on_gpu:
            logger.warning("Mixed precision on CPU (%s) is usually slower than float32.", policy)
    keras.mixed_precision.set_global_policy(policy)
    return policy


def build_classifier(config: RunConfig, splits: Splits) -> keras.Model:
    """The model for `splits`' modality, built from the model section."""
    from_scratch = config.train.strategy == "from_scratch"
    if splits.modality == "image":
        return build_image_classifier(
            config.model, len(splits.class_names), from_scratch=from_scratch
        )
    raise ValueError(f"No model builder for {splits.modality!r} data ({splits.source}).")


def train(config: RunConfig) -> RunResult:
    """Runs a full training job described by `config` and writes its run directory.

    Args:
        config: the run configuration (see `tfxfer.config`).

    Returns:
        A RunResult holding the trained model, its history and test evaluation.
    """
    config = resolve_config(config.validate())
    run_dir = _prepare_run_dir(Path(config.out))
    set_precision(config.train.mixed_precision)
    keras.utils.set_random_seed(config.data.seed)

    splits = load_splits(config.data, config.model.image_size)
    rundir.write_setup(run_dir, config, splits)
    model = build_classifier(config, splits)
    history = fit_phases(
        model,
        splits.batches("train", config.data, training=True),
        splits.batches("val", config.data),
        config.train,
    )
    rundir.write_history(run_dir, history)
    evaluation = None
    if splits.size("test"):
        evaluation = evaluate(model, splits.batches("test", config.data), splits.class_names)
        rundir.write_evaluation(run_dir, evaluation)
    rundir.save_model(run_dir, model)
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
    rundir.write_evaluation(Path(run_dir), evaluation)
    return evaluation
