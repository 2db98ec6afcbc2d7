"""A whole run, step by step: data, model, phases, evaluation, run directory.

`Experiment` holds one run; its methods are the steps, in order:

    run = Experiment(config)       validate and resolve the config, seed (writes nothing)
    run.load_data()                read and split `config.data` -> Splits; creates the run
                                   directory and writes config.json
    run.build_model()              the classifier for the data's modality
    run.fit(phase)                 each of `run.phases`: the head, then fine-tuning
    run.evaluate()                 best weights, history; test metrics and predictions
    run.save()                     model.keras and the report

`train(config)` runs them all (what `tfxfer train` calls); the apps call them one
by one. `evaluate_run` reloads a finished run and evaluates it again on its own
test split.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tfxfer import rundir
from tfxfer.auto.resolve import resolve_auto
from tfxfer.config import DataConfig, ModelConfig, RunConfig
from tfxfer.continual.experiment import ContinualMixin, continual_evaluation, reload_child
from tfxfer.continual.lineage import wants_continual
from tfxfer.data.sources import load_splits, source_kind
from tfxfer.data.splits import Splits
from tfxfer.evaluation import Evaluation, evaluate
from tfxfer.image.backbones import get_backbone
from tfxfer.image.model import build_image_classifier, image_size_for
from tfxfer.modality import AUDIO, IMAGE, validate_modality
from tfxfer.reports import tensorboard_callbacks, write_report
from tfxfer.runtime.devices import distribution_strategy, set_precision
from tfxfer.runtime.distribute import (
    barrier,
    input_options,
    is_chief,
    output_dir,
    remove_output_dir,
    with_options,
)
from tfxfer.runtime.gc_policy import long_lived_frozen
from tfxfer.runtime.preflight import check_sources
from tfxfer.tasks.bottleneck import should_cache_tasks, task_head_runner
from tfxfer.tasks.model import build_task_model, compile_args
from tfxfer.tasks.outputs import Output, read_outputs, with_regression_heads
from tfxfer.tasks.run import evaluate_task_run, validate_task_config, write_task_setup
from tfxfer.tasks.table import TaskSplits
from tfxfer.text.model import build_text_classifier
from tfxfer.training.bottleneck import head_phase_runner, should_cache, sorts_by_length
from tfxfer.training.boundary import boundary_phase_runner, features_via_boundary
from tfxfer.training.feature_norm import fit_feature_norm
from tfxfer.training.resume import CHECKPOINTS, EpochBackup, latest_checkpoint, resume_config
from tfxfer.training.strategies import Phase, is_pretrained, plan_phases
from tfxfer.training.trainer import PhaseRecord, PhaseTrainer, TrainingHistory, remaining_phases

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
    model = config.model
    if model.image is not None:
        image = dataclasses.replace(model.image, image_size=image_size_for(model))
        if config.train.strategy == "from_scratch":
            image = dataclasses.replace(image, weights=None)
        model = dataclasses.replace(model, image=image)
    return dataclasses.replace(config, model=model, out=config.out or _default_out())


def _check_run_dir(path: Path) -> None:
    if (path / rundir.CONFIG).exists():
        raise FileExistsError(
            f"Run directory {path} already holds a run; choose another --out "
            "(nothing was overwritten)."
        )


@contextlib.contextmanager
def _new_run_dir(path: Path):
    """Creates the run directory `path` for the block; removes it if the block fails.

    Only what this call created is removed: a directory that existed before (empty,
    since `_check_run_dir` passed) is left as it was found.
    """
    _check_run_dir(path)
    created = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    try:
        yield path
    except BaseException:
        if created:
            shutil.rmtree(path, ignore_errors=True)
        raise


def evaluate_split(model: keras.Model, splits: Splits, split: str, data: DataConfig,
                   class_names: list[str]) -> Evaluation:
    """The Evaluation of one split, its examples in split order (predictions.csv's).

    A transformer with dynamic padding predicts the texts from shortest to longest
    (batches pad to similar lengths, so they cost less); the answers are put back in
    split order.
    """
    order = splits.length_order(split) if sorts_by_length(model) else None
    evaluation = evaluate(model, splits.batches(split, data, order=order), class_names)
    if order is None:
        return evaluation
    back = np.argsort(order)
    return Evaluation(evaluation.class_names, evaluation.y_true[back], evaluation.y_prob[back])


def write_val_predictions(run_dir: Path, model: keras.Model, splits: Splits,
                          data: DataConfig) -> Evaluation:
    """Predicts the validation split into val_predictions.csv (for `tfxfer ensemble`)."""
    evaluation = evaluate_split(model, splits, "val", data, splits.class_names)
    rundir.write_predictions(Path(run_dir) / rundir.VAL_PREDICTIONS, evaluation,
                             rundir.split_inputs(splits, "val"))
    logger.info("Validation accuracy %.4f on %d examples (%s)", evaluation.accuracy,
                len(evaluation.y_true), rundir.VAL_PREDICTIONS)
    return evaluation


def build_classifier(config: RunConfig, modality: str, num_classes: int,
                     outputs: list[Output] | None = None) -> keras.Model:
    """The classifier for `modality` ("image", "text" or "audio"), built from the model section.

    Args:
        config: the run config (model section; the strategy and seed for from_scratch).
        modality: the data's modality (`Splits.modality`).
        num_classes: number of classes.
        outputs: a task model's outputs (`TaskSplits.outputs`): then one head per output
            on the shared backbone (`tfxfer.tasks.model`), and `num_classes` is not used.

    Returns:
        An uncompiled model from raw images or strings to class probabilities (a dict of
        outputs for a task model).
    """
    from_scratch = config.train.strategy == "from_scratch" or (
        config.train.strategy == "domain_adaptation" and not is_pretrained(config)
    )
    if outputs:
        return build_task_model(config, modality, outputs, from_scratch=from_scratch)
    batchnorm = config.train.fine_tune_batchnorm
    if validate_modality(modality) == IMAGE:
        return build_image_classifier(config.model, num_classes, from_scratch=from_scratch,
                                      train_batchnorm=batchnorm)
    if modality == AUDIO:
        from tfxfer.audio.model import build_audio_classifier

        return build_audio_classifier(config.model, num_classes, from_scratch=from_scratch,
                                      train_batchnorm=batchnorm)
    return build_text_classifier(config.model, num_classes, from_scratch=from_scratch,
                                 seed=config.data.seed)


class Experiment:
    """One training run, one method per step (see the module docstring).

    Args:
        config: the run configuration; it is validated and resolved (image size,
            run directory). Nothing is written yet: `load_data` creates the run
            directory once the data are read (never overwriting a run), and removes
            it again if the rest of that step fails.
        resume: a run directory to continue from its last completed epoch (see
            `tfxfer.training.resume`); `config` is then the run's saved config unless it
            differs from the default, when it must match the saved one.
        check_data: check now that the data paths exist; False when the data will
            come as `load_data(splits)` (e.g. a DataFrame) rather than from the config.

    Every epoch is backed up to RUN_DIR/checkpoints. In a multi-worker job only
    the chief writes the run directory; the others write to a temporary
    directory that `save` removes (see `tfxfer.runtime.distribute`).

    Example:
        run = Experiment(load_config("apps/flowers/config.yaml"))
        run.load_data()
        run.build_model()
        for phase in run.phases:
            run.fit(phase)
        run.evaluate()
        run.save()
    """

    def __init__(self, config: RunConfig, resume: str | Path | None = None,
                 check_data: bool = True) -> None:
        self.given_model = config.validate().model
        if resume is None:
            if check_data:  # False: the data come as `load_data(splits)` (a DataFrame)
                check_sources(config)
            _check_names(config)
        self.config = _resolve_run(config, resume)
        self.resume = resume
        # Created first: MultiWorkerMirroredStrategy must precede any TensorFlow op.
        self.strategy = distribution_strategy(self.config.train.distribute)
        self.chief = is_chief(self.strategy)
        if resume is None and self.chief:
            _check_run_dir(Path(self.config.out))  # fail now, not after reading the data
        self.run_dir = output_dir(Path(self.config.out), self.strategy)
        set_precision(self.config.train.mixed_precision)
        _seed(self.config)
        self.start = latest_checkpoint(Path(self.config.out) / CHECKPOINTS) if resume else None
        self.replicas = self.strategy.num_replicas_in_sync
        if self.config.data.batch_size % self.replicas:
            raise ValueError(
                f"batch_size must be a multiple of the {self.replicas} replicas. "
                f"Received: batch_size={self.config.data.batch_size}"
            )
        self.splits: Splits | None = None
        self.model: keras.Model | None = None
        self.trainer: PhaseTrainer | None = None
        self.evaluation: Evaluation | None = None

    @property
    def phases(self) -> list[Phase]:
        """The phases of the configured strategy: the head, then fine-tuning (if any)."""
        return remaining_phases(plan_phases(self.config.train, is_pretrained(self.config)),
                                self.start)

    def load_data(self, splits: Splits | None = None) -> Splits:
        """Reads and splits `config.data.source` (or takes `splits`); writes config.json.

        The run directory is created here, once the data are read; if the rest of
        this step fails, the directory it created is removed again.

        The data's modality decides which model section the run keeps; "auto"
        settings are resolved here (`tfxfer.auto.resolve`), so config.json holds the choice.
        """
        model = self.config.model
        self.splits = splits or load_splits(self.config.data, model.image_input_size,
                                            model.audio)
        if self.resume is None and self.chief:
            with _new_run_dir(self.run_dir):
                return self._set_up(model)
        return self._set_up(model)

    def _set_up(self, model: ModelConfig) -> Splits:
        """The modality's model section, "auto" settings resolved, the setup files."""
        modality = self.splits.modality
        unused = self.given_model.unused_settings(modality)
        if unused:
            logger.warning("The data are %s: these settings are not used: %s",
                           modality, ", ".join(unused))
        self.config = dataclasses.replace(self.config, model=model.for_modality(modality))
        if self.tasks:  # --- a task model: no "auto" settings (tfxfer.tasks.run) ---
            validate_task_config(self.config)
            self.config = resolve_config(self.config)
            self.splits.outputs = with_regression_heads(
                self.splits.outputs, self.splits.targets["train"],
                self.config.train.regression_loss, self.config.train.distribution_answer)
            if self.resume is None or not self.chief:
                write_task_setup(self.run_dir, self.config, self.splits)
            return self.splits
        # --- "auto" strategy, feature layer, learning rate (tfxfer.auto.resolve) ---
        build = functools.partial(build_classifier, modality=modality,
                                  num_classes=len(self.splits.class_names))
        self.config = resolve_config(resolve_auto(self.config, self.splits, self.run_dir, build))
        # ---
        if self.resume is None or not self.chief:  # a resumed run keeps what it wrote
            rundir.write_setup(self.run_dir, self.config, self.splits)
        return self.splits

    @property
    def tasks(self) -> bool:
        """Whether this run trains a task model (`tfxfer.tasks`: --target)."""
        return isinstance(self.splits, TaskSplits)

    def build_model(self) -> keras.Model:
        """Builds the classifier and prepares its phases (under the distribution strategy).

        Phase 1 trains on cached backbone features when `tfxfer.training.bottleneck` allows it,
        phase 2 on cached activations of the frozen bottom when `tfxfer.training.boundary` does
        (then phase 1's features are pooled from those activations: the bottom runs
        once). A cut backbone's feature standardisation is fitted to the training
        split here (`tfxfer.training.feature_norm`). With several replicas, Keras 3.15 fails on
        batches that do not split evenly across replicas (random layers, BatchNorm on
        empty replica batches), so the last partial training and validation batch is
        dropped; the test evaluation runs on every example (see
        `evaluation.inference_function`). A resumed run loads the weights of its
        checkpoint here.
        """
        config, splits = self.config, self._require("splits", "load_data")
        even = self.replicas > 1
        options = input_options(config.train.deterministic)
        with self.strategy.scope():
            model = build_classifier(config, splits.modality, len(splits.class_names),
                                     getattr(splits, "outputs", None))
            if self.start is not None:
                self.start.load_weights(model)
                logger.info("Resuming after epoch %d from %s", self.start.epoch, self.start.path)
            else:  # a cut's feature standardisation (a resumed run restored it above)
                fit_feature_norm(model, config, splits)
            by_length = sorts_by_length(model)
            train_ds = with_options(splits.batches(
                "train", config.data, training=True, drop_remainder=even, by_length=by_length),
                options)
            val_ds = with_options(splits.batches(
                "val", config.data, drop_remainder=even, by_length=by_length), options)
            if self.tasks:  # phase 2 runs the full model (no boundary cache for task heads)
                runners = ({"head": task_head_runner(model, config, splits)}
                           if should_cache_tasks(model, config) else {})
            elif config.train.strategy == "domain_adaptation":
                from tfxfer.adaptation import DomainAdaptation

                adaptation = DomainAdaptation(model, config, splits, drop_remainder=even)
                runners = adaptation.runners(self.phases)
            else:
                runners = {"fine_tune": boundary_phase_runner(model, config, splits, train_ds,
                                                              val_ds)}
                if should_cache(model, config):
                    runners["head"] = head_phase_runner(
                        model, config, splits, features_via_boundary(model, config, splits))
        callbacks = [*tensorboard_callbacks(self.run_dir, config.train.tensorboard),
                     EpochBackup(model, self.run_dir / CHECKPOINTS, restore_from=self.start)]
        self.trainer = PhaseTrainer(model, train_ds, val_ds, config.train, callbacks, runners,
                                    self.start,
                                    compile_args(splits.outputs, config.train.regression_loss)
                                    if self.tasks else None)
        self.model = model
        return model

    def fit(self, phase: Phase) -> PhaseRecord:
        """Trains one phase (an element of `phases`)."""
        trainer = self._require("trainer", "build_model")
        with self.strategy.scope(), long_lived_frozen():
            return trainer.fit(phase)

    def evaluate(self) -> Evaluation | None:
        """Ends training (best weights restored, history written) and evaluates on test.

        Returns:
            The test evaluation (also written to the run directory), or None when
            there is no test split or this is not the chief of a multi-worker job.
        """
        self._finish_training()
        splits = self.splits
        if self.tasks:
            if self.chief:
                self.evaluation = evaluate_task_run(self.model, splits, self.config,
                                                    self.run_dir)
            return self.evaluation
        if not self.chief:
            return self.evaluation
        if splits.size("val"):
            write_val_predictions(self.run_dir, self.model, splits, self.config.data)
        if splits.size("test"):
            self.evaluation = evaluate_split(self.model, splits, "test", self.config.data,
                                             splits.class_names)
            rundir.write_evaluation(self.run_dir, self.evaluation,
                                    rundir.split_inputs(splits, "test"))
        return self.evaluation

    def save(self) -> RunResult:
        """Saves model.keras and writes the report; returns what the run produced.

        The checkpoints go (the run is finished); a non-chief worker writes nothing
        and removes its temporary directory once the chief is done.
        """
        self._finish_training()
        run_dir = Path(self.config.out)
        if self.chief:
            rundir.save_model(self.run_dir, self.model)
            shutil.rmtree(self.run_dir / CHECKPOINTS, ignore_errors=True)
            if not self.tasks:  # a task run's plots are written by evaluate
                write_report(self.run_dir, self.splits)
            logger.info("Run written to %s", self.run_dir)
        barrier(self.strategy)
        remove_output_dir(self.run_dir, run_dir)
        return RunResult(run_dir, self.config, self.model, self.splits,
                         self.trainer.history, self.evaluation)

    def _finish_training(self) -> None:
        """Restores the best weights (with restore_best) and writes the history, once."""
        trainer = self._require("trainer", "build_model")
        if not trainer.finished:
            rundir.write_history(self.run_dir, trainer.finish())

    def _require(self, name: str, step: str):
        value = getattr(self, name)
        if value is None:
            raise RuntimeError(f"Experiment.{step}() must run before this step.")
        return value


def _resolve_run(config: RunConfig, resume: str | Path | None) -> RunConfig:
    """The resolved config of a new run, or of the run at `resume` (checked)."""
    if resume is None:
        return resolve_config(config)
    given = dataclasses.replace(config, out=str(resume))
    return resume_config(resume, None if config == RunConfig() else resolve_config(given))


def _check_names(config: RunConfig) -> None:
    """An unknown backbone fails here, before any data are read (it lists the valid ones).

    Only for folder sources, which are images; text encoders may also be handles
    or paths, which the encoder loader resolves.
    """
    image = config.model.image
    if image is not None and source_kind(config.data.source) == "folder":
        get_backbone(image.backbone)


def _seed(config: RunConfig) -> None:
    keras.utils.set_random_seed(config.data.seed)
    if config.train.deterministic:
        tf.config.experimental.enable_op_determinism()
        logger.info("Deterministic run: seed %d, op determinism on", config.data.seed)


def train(
    config: RunConfig, splits: Splits | None = None, resume: str | Path | None = None
) -> RunResult:
    """Runs a full training job described by `config` and writes its run directory.

    Args:
        config: the run configuration (see `tfxfer.config`).
        splits: data loaded already, e.g. from pandas with
            `tfxfer.data.text.load_dataframe_splits`; default: `config.data.source`.
        resume: a run directory to continue after its last completed epoch.

    Returns:
        A RunResult holding the trained model, its history and test evaluation.
    """
    run = _experiment(config, resume, check_data=splits is None)
    run.load_data(splits)
    run.build_model()
    for phase in run.phases:
        run.fit(phase)
    run.evaluate()
    return run.save()


class ContinualExperiment(ContinualMixin, Experiment):
    """An `Experiment` that continues a parent run (`--from`) or keeps exemplars
    (see `tfxfer.continual.experiment`)."""

    def new_classifier(self) -> keras.Model:
        splits = self._require("splits", "load_data")
        return build_classifier(self.config, splits.modality, len(splits.class_names))


def _experiment(config: RunConfig, resume: str | Path | None,
                check_data: bool = True) -> Experiment:
    """An `Experiment`, or a `ContinualExperiment` for a run with a parent or exemplars."""
    if wants_continual(config, resume):
        return ContinualExperiment(config, resume, check_data)
    return Experiment(config, resume, check_data)


def evaluate_run(run_dir: str | Path) -> Evaluation:
    """Reloads a run and evaluates its model on the run's own test split again."""
    if read_outputs(run_dir) is not None:
        raise ValueError(f"{run_dir} is a task run (outputs.json): its test metrics are in "
                         "metrics.json; re-evaluating task runs is not supported yet.")
    config, model, class_names = rundir.load_run(run_dir)
    splits = load_splits(config.data, config.model.image_input_size, config.model.audio)
    union = None
    if config.continual.parent:  # a child: the union of classes, the parent's test split too
        splits, union = reload_child(config, splits)
    if splits.class_names != class_names:
        raise ValueError(
            f"The data at {config.data.source} now has classes {splits.class_names}, "
            f"but the run was trained on {class_names}."
        )
    if not splits.size("test"):
        raise ValueError(f"The run at {run_dir} has no test split (test_fraction=0).")
    evaluation = evaluate_split(model, splits, "test", config.data, class_names)
    if union is not None:
        evaluation = continual_evaluation(evaluation, union)
    rundir.write_evaluation(Path(run_dir), evaluation, rundir.split_inputs(splits, "test"))
    write_report(run_dir, splits)
    return evaluation
