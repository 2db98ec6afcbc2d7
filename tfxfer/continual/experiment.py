"""`ContinualMixin`: the steps of a child run (`--from RUN_DIR`) or of a run keeping exemplars.

`tfxfer.experiment.ContinualExperiment` is `Experiment` with this mixin (defined there,
so that this module does not import `tfxfer.experiment`: no import cycle). A child
changes four of the steps:

    load_data     the new data relabelled into the union of classes, the parent's
                  exemplars (rehearsal) and test split added (`data.child_splits`);
                  lineage.json written
    build_model   the parent's architecture with the grown head (`growth.grow_head`);
                  the parent's outputs on the training and validation data recorded in
                  the labels; every phase trains with `DistillationLoss` (LwF)
    evaluate      `ContinualEvaluation`: old and new classes' accuracy apart
    save          exemplars.csv (with --exemplars), the model recompiled with the usual
                  loss so model.keras loads, exports and serves as any run's

Phase 1 on cached features works as in any run (the labels beside the features carry
the parent's outputs), keyed by the parent's model file (its backbone may be
fine-tuned). Phase 2 runs the full model: the cached boundary activations of
`tfxfer.training.boundary` are not used by a child, nor are augmented copies (a child
with augmented_copies > 0 trains phase 1 on the full model), nor several replicas.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tfxfer import rundir
from tfxfer.config import RunConfig
from tfxfer.continual.data import child_splits, split_values
from tfxfer.continual.distillation import DistillationLoss, packed_labels, packed_metrics
from tfxfer.continual.evaluation import ContinualEvaluation
from tfxfer.continual.exemplars import (
    EXEMPLARS,
    read_exemplars,
    select_exemplars,
    write_exemplars,
)
from tfxfer.continual.growth import grow_head
from tfxfer.continual.lineage import (
    ClassUnion,
    class_union,
    inherit_model,
    lineage_record,
    load_parent,
    validate_modality,
    write_lineage,
)
from tfxfer.data.pipeline import make_batches
from tfxfer.data.sources import load_splits
from tfxfer.data.splits import Splits
from tfxfer.evaluation import Evaluation, evaluate, predict_dataset
from tfxfer.modality import IMAGE
from tfxfer.reports import tensorboard_callbacks
from tfxfer.training.bottleneck import (
    FeatureExtractor,
    cached_split,
    feature_model,
    features_dataset,
    has_augmentation,
    head_model,
    should_cache,
)
from tfxfer.training.resume import CHECKPOINTS, EpochBackup
from tfxfer.training.trainer import PhaseTrainer, compile_for_phase

logger = logging.getLogger(__name__)


class ContinualMixin:
    """The steps of an `Experiment` that continues a parent run and/or keeps exemplars.

    The class it is mixed into provides `new_classifier()`: the classifier of the run's
    config for its splits (`tfxfer.experiment.build_classifier`).

    Args:
        config: the run config; `config.continual.parent` names the parent run (its
            model settings are taken, see `lineage.inherit_model`).
        resume: a child's run directory to continue (its saved config names the parent).
    """

    def __init__(self, config: RunConfig, resume: str | Path | None = None,
                 check_data: bool = True) -> None:
        self.parent = None
        if resume is None and config.continual.parent:
            self.parent = load_parent(config.continual.parent)
            continual = dataclasses.replace(config.continual, parent=str(self.parent.run_dir))
            config = dataclasses.replace(inherit_model(config.validate(), self.parent),
                                         continual=continual)
        super().__init__(config, resume, check_data=check_data)
        if self.parent is None and self.config.continual.parent:
            self.parent = load_parent(self.config.continual.parent)
        self.union: ClassUnion | None = None

    def load_data(self, splits: Splits | None = None) -> Splits:
        """The child's splits (see `data.child_splits`); lineage.json is written."""
        if self.parent is None:
            return self._check_exemplar_inputs(super().load_data(splits))
        c = self.config.continual
        new = splits or load_splits(self.config.data, self.config.model.image_input_size,
                                    self.config.model.audio)
        validate_modality(self.parent, new.modality, new.source)
        self.union = class_union(self.parent.class_names, new.class_names, c.keep)
        result = super().load_data(child_splits(new, self.union, self.parent.run_dir,
                                                c.rehearsal, c.balance_rehearsal))
        if self.resume is None and self.chief:
            write_lineage(self.run_dir, lineage_record(self.parent, self.union,
                                                       Path(self.config.out), new.source))
        return self._check_exemplar_inputs(result)

    def _check_exemplar_inputs(self, splits: Splits) -> Splits:
        if self.config.continual.exemplars and splits.modality == IMAGE and not splits.from_paths:
            raise ValueError(
                "--exemplars stores file paths of images, and the data "
                f"{splits.source} are not files (TFDS); use an image folder.")
        return splits

    @property
    def old_ids(self) -> list[int]:
        return self.union.ids(self.union.old) if self.union is not None else []

    def build_model(self) -> keras.Model:
        """The grown classifier and the phase runners with the distillation loss."""
        if self.parent is None:
            return super().build_model()
        config, splits = self.config, self._require("splits", "load_data")
        with self.strategy.scope():
            model = self.new_classifier()
            if self.start is not None:
                self.start.load_weights(model)
                logger.info("Resuming after epoch %d from %s", self.start.epoch, self.start.path)
            else:
                grow_head(model, self.parent.model, self.old_ids)
            c = config.continual
            lwf = bool(self.old_ids) and c.lwf_weight > 0
            targets = {split: self._parent_outputs(split) if lwf else None
                       for split in ("train", "val")}
            loss = DistillationLoss(self.old_ids if lwf else (), c.temperature, c.lwf_weight)
            train_ds = self._packed_batches("train", targets["train"], training=True)
            val_ds = self._packed_batches("val", targets["val"])
            full = _full_runner(model, config, train_ds, val_ds, loss, lwf)
            runners = {"head": full, "fine_tune": full, "scratch": full}
            if should_cache(model, config):
                if has_augmentation(model) and config.train.augmented_copies:
                    logger.info("A continual run does not cache augmented copies: phase 1 "
                                "runs the full model.")
                else:
                    runners["head"] = _cached_head_runner(
                        model, _keyed_by_parent(config, self.parent.run_dir), splits,
                        targets, loss, lwf)
        callbacks = [*tensorboard_callbacks(self.run_dir, config.train.tensorboard),
                     EpochBackup(model, self.run_dir / CHECKPOINTS, restore_from=self.start)]
        self.trainer = PhaseTrainer(model, train_ds, val_ds, config.train, callbacks, runners,
                                    self.start)
        self.model = model
        return model

    def _parent_outputs(self, split: str) -> np.ndarray | None:
        """The parent's probabilities on every example of `split`, in split order."""
        ds = self.splits.batches(split, self.config.data)
        if ds is None:
            return None
        labels, probs = predict_dataset(self.parent.model, ds)
        if not np.array_equal(labels, self.splits.labels[split]):
            raise ValueError(f"The {split} split decoded to {len(labels)} examples, not the "
                             f"{self.splits.size(split)} listed (files dropped while decoding?).")
        logger.info("Recorded the parent's outputs on %d %s examples (LwF targets)",
                    len(labels), split)
        return probs

    def _packed_batches(self, split: str, targets: np.ndarray | None,
                        training: bool = False) -> tf.data.Dataset | None:
        """Batches of (input, [label, parent outputs...]) of one split."""
        splits, data = self.splits, self.config.data
        if not splits.has_batches(split, data):
            return None
        ds = tf.data.Dataset.from_tensor_slices((
            np.asarray(split_values(splits, split), dtype=object),
            packed_labels(splits.labels[split], targets)))
        return make_batches(ds, batch_size=data.batch_size, training=training,
                            decode=splits.decode, cache=splits.cache_mode(split, data),
                            seed=data.seed, num_examples=splits.size(split),
                            skip_errors=splits.skip_errors)

    def evaluate(self) -> Evaluation | None:
        """The test evaluation with the old and new classes' accuracy (metrics.json)."""
        if self.parent is None:
            return super().evaluate()
        self._finish_training()
        splits, union = self.splits, self.union
        if splits.size("test") and self.chief:
            self.evaluation = continual_evaluation(
                evaluate(self.model, splits.batches("test", self.config.data),
                         splits.class_names), union)
            rundir.write_evaluation(self.run_dir, self.evaluation,
                                    rundir.split_inputs(splits, "test"))
            logger.info("Accuracy on the old classes %.4f, on the new %.4f",
                        self.evaluation.groups()["old_accuracy"],
                        self.evaluation.groups()["new_accuracy"])
        return self.evaluation

    def save(self):
        """Keeps the exemplars (with --exemplars), then saves as any run."""
        self._finish_training()
        if self.chief and self.config.continual.exemplars:
            self._keep_exemplars()
        if isinstance(getattr(self.model, "loss", None), DistillationLoss):
            # model.keras must load without tfxfer.continual: the usual loss and metric.
            self.model.compile(optimizer=self.model.optimizer,
                               loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return super().save()

    def _keep_exemplars(self) -> None:
        """Chooses exemplars among the training split (and the parent's exemplars)."""
        c, splits = self.config.continual, self.splits
        pairs = zip((v.decode("utf-8") for v in split_values(splits, "train")),
                    splits.labels["train"])
        if self.parent is not None and (self.parent.run_dir / EXEMPLARS).is_file():
            pairs = [*pairs, *((x, splits.class_names.index(name))
                               for x, name in read_exemplars(self.parent.run_dir)
                               if name in splits.class_names)]
        candidates = dict(pairs)  # one per input: rehearsal repeats exemplars
        inputs, labels = list(candidates), list(candidates.values())
        labels = np.asarray(labels, np.int64)
        features = None
        if c.exemplar_selection == "herding":
            ds = tf.data.Dataset.from_tensor_slices(
                (np.asarray([x.encode("utf-8") for x in inputs], dtype=object), labels))
            ds = make_batches(ds, batch_size=self.config.data.batch_size, training=False,
                              decode=splits.decode, cache="none")
            _, features = predict_dataset(feature_model(self.model), ds)
        chosen = select_exemplars(labels, c.exemplars, c.exemplar_selection,
                                  self.config.data.seed, features)
        write_exemplars(self.run_dir, inputs, labels, splits.class_names, chosen)


def _full_runner(model, config: RunConfig, train_ds, val_ds, loss, lwf: bool):
    """A phase on the full model with the distillation loss."""
    def run(phase, **fit_args):
        compile_for_phase(model, phase, config.train, train_ds, loss=loss,
                          metrics=packed_metrics())
        history = model.fit(train_ds, validation_data=val_ds, shuffle=False, **fit_args)
        return history, "full model" + (" (LwF)" if lwf else "")
    return run


def _cached_head_runner(model, keyed: RunConfig, splits: Splits, targets: dict, loss,
                        lwf: bool):
    """Phase 1 on cached features, the parent's outputs beside them in the labels."""
    def run(phase, **fit_args):
        extract = FeatureExtractor(model)
        data = keyed.data

        def batches(split: str, training: bool):
            if not splits.has_batches(split, data):
                return None
            x, y = cached_split(model, keyed, splits, split, 0, extract)
            return features_dataset(x, packed_labels(y, targets.get(split)), data.batch_size,
                                    training=training, seed=data.seed,
                                    in_memory_bytes=max(x.nbytes, 1))

        train = batches("train", True)
        head = head_model(model)
        compile_for_phase(head, phase, keyed.train, train, loss=loss, metrics=packed_metrics())
        history = head.fit(train, validation_data=batches("val", False), shuffle=False,
                           **fit_args)
        return history, "cached features" + (" (LwF)" if lwf else "")
    return run


def _keyed_by_parent(config: RunConfig, parent_dir: Path) -> RunConfig:
    """`config` with the backbone identified by the parent's model file, for the feature
    cache's key: the parent may have fine-tuned its backbone."""
    path = parent_dir / rundir.MODEL
    stat = os.stat(path)
    identity = f"continual-parent:{path}:{stat.st_size}:{stat.st_mtime_ns}"
    model = config.model
    if model.image is not None:
        model = dataclasses.replace(model, image=dataclasses.replace(model.image,
                                                                     weights=identity))
    else:
        model = dataclasses.replace(model, text=dataclasses.replace(model.text,
                                                                    encoder=identity))
    return dataclasses.replace(config, model=model)


def reload_child(config: RunConfig, splits: Splits) -> tuple[Splits, ClassUnion]:
    """A finished child's splits and classes again, from its new data and its parent's
    run directory (for `tfxfer evaluate`); the parent's model is not loaded."""
    c = config.continual
    union = class_union(rundir.read_labels(c.parent), splits.class_names, c.keep)
    return child_splits(splits, union, Path(c.parent), c.rehearsal, c.balance_rehearsal), union


def continual_evaluation(evaluation: Evaluation, union: ClassUnion) -> ContinualEvaluation:
    """`evaluation` with the old and new classes' accuracy."""
    return ContinualEvaluation(evaluation.class_names, evaluation.y_true, evaluation.y_prob,
                               list(union.old), list(union.new), list(union.merged))
