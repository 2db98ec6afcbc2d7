"""Domain-adversarial phases for `tfxfer.training.trainer.fit_phases`.

`DomainAdaptation` replaces `model.fit` in every phase of the plan (see
`strategies.plan_phases`: one phase from scratch, or the usual head and
fine-tuning phases on a pretrained backbone). Each phase compiles the
`DomainAdversarialModel` with the phase's learning rate and fits it on mixed
source/target batches, while `AdaptationSchedule` raises λ and anneals the
learning rate over the progress of the whole run. The label classifier itself is
what the run saves and exports: the domain head lives only in the wrapper.

Per epoch the history gains `domain_loss`, `domain_accuracy` (0.5 is chance),
`lambda` and, with `adaptation.target_test_source`, `target_accuracy` (measured on
labelled target images that training never sees). Pooled features of source and
target samples before and after adaptation go to `adaptation_features.npz` in the
run directory for the report's 2-D projection.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tfxfer.adaptation.data import (
    image_batches,
    labelled_batches,
    mixed_batches,
    scan_target_images,
    target_batches,
)
from tfxfer.adaptation.model import DomainAdversarialModel, domain_adversarial_model
from tfxfer.adaptation.schedules import AdaptationSchedule
from tfxfer.config import AdaptationConfig, RunConfig, TrainConfig
from tfxfer.reports.adaptation import FEATURES_FILE
from tfxfer.training.optimizers import layerwise_multipliers, make_optimizer
from tfxfer.training.strategies import Phase

logger = logging.getLogger(__name__)

# Examples per domain in the feature projection.
PROJECTION_EXAMPLES = 500


class TargetAccuracy(keras.callbacks.Callback):
    """Adds `target_accuracy` of `classifier` on labelled target batches to each epoch's logs."""

    def __init__(self, classifier: keras.Model, batches: tf.data.Dataset,
                 labels: np.ndarray) -> None:
        super().__init__()
        self.classifier = classifier
        self.batches = batches
        self.labels = labels

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        probabilities = self.classifier.predict(self.batches, verbose=0)
        accuracy = float(np.mean(np.argmax(probabilities, axis=-1) == self.labels))
        if logs is not None:
            logs["target_accuracy"] = accuracy


def _images(ds: tf.data.Dataset, limit: int) -> tf.data.Dataset:
    """The images of the first `limit` examples of a batched dataset."""
    ds = ds.unbatch().take(limit)
    if isinstance(ds.element_spec, tuple):
        ds = ds.map(lambda x, *_: x)
    return ds.batch(64)


def compile_adversarial(model: DomainAdversarialModel, phase: Phase, train: TrainConfig) -> None:
    """Compiles `model` for `phase`: its learning rate, layer-wise multipliers if set."""
    multipliers = None
    if train.layer_lr_decay is not None and phase.unfreeze in ("top", "all"):
        multipliers = layerwise_multipliers(
            model.classifier, train.layer_lr_decay, train.layer_lr_block
        )
    model.compile(
        optimizer=make_optimizer(train.optimizer, phase.learning_rate, multipliers),
        loss="sparse_categorical_crossentropy", metrics=["accuracy"],
        jit_compile=train.jit_compile,
    )


def lambda_ceiling(adaptation: AdaptationConfig) -> float:
    """`adaptation.lambda_max` as a number (an unresolved "auto" is an error)."""
    if isinstance(adaptation.lambda_max, str):
        raise ValueError(
            "adaptation.lambda_max is still 'auto': resolve it first with reverse "
            "validation (tfxfer.auto.resolve.resolve_auto, which `tfxfer train` calls)."
        )
    return float(adaptation.lambda_max)


class DomainAdaptation:
    """Fits a classifier with a domain-adversarial head through all phases of a run.

    Args:
        classifier: the tfxfer classifier, built under the distribution strategy.
        config: the resolved run config (`config.out` is the run directory).
        splits: the source splits (labelled).
        drop_remainder: drop partial batches (several replicas).
    """

    def __init__(self, classifier: keras.Model, config: RunConfig, splits,
                 drop_remainder: bool = False) -> None:
        if splits.modality != "image":
            raise ValueError(
                "strategy 'domain_adaptation' adapts image classifiers; the source "
                f"{splits.source} holds {splits.modality} data."
            )
        data, adaptation = config.data, config.adaptation
        size = config.model.image_input_size
        self.classifier = classifier
        self.config = config
        self.model = domain_adversarial_model(classifier, adaptation)
        target = scan_target_images(adaptation.target_source, validate=data.validate_files)
        source = splits.batches("train", data, training=True, drop_remainder=drop_remainder)
        self.train_ds = mixed_batches(
            source, target_batches(target, size, data.batch_size, data.seed)
        )
        self.val_ds = splits.batches("val", data, drop_remainder=drop_remainder)
        self.steps_per_epoch = self._steps(source, splits.size("train"), data.batch_size)
        self.step = 0
        self.target_test = None
        if adaptation.target_test_source:
            self.target_test = labelled_batches(
                adaptation.target_test_source, size, data.batch_size, splits.class_names
            )
        self._samples = self._projection_samples(splits, target, size)
        self.features: dict[str, np.ndarray] = {}

    @staticmethod
    def _steps(source: tf.data.Dataset, examples: int, batch_size: int) -> int:
        known = int(source.cardinality())
        return known if known > 0 else math.ceil(examples / batch_size)

    def _projection_samples(self, splits, target, size: int) -> dict[str, tf.data.Dataset]:
        split = "val" if splits.size("val") else "train"
        source = _images(splits.batches(split, self.config.data), PROJECTION_EXAMPLES)
        if self.target_test is not None:
            target_ds = _images(self.target_test[0], PROJECTION_EXAMPLES)
        else:
            target_ds = image_batches(target.paths[:PROJECTION_EXAMPLES], size, 64)
        return {"source": source, "target": target_ds}

    def _snapshot(self, when: str) -> None:
        for domain, ds in self._samples.items():
            features, _ = self.model.extractor.predict(ds, verbose=0)
            self.features[f"{domain}_{when}"] = features.reshape(len(features), -1)
        run_dir = Path(self.config.out)
        if run_dir.is_dir():
            np.savez_compressed(run_dir / FEATURES_FILE, **self.features)

    def runners(self, phases: list[Phase]) -> dict:
        """Phase name -> runner for `fit_phases`; the schedules span all `phases`."""
        self.total_steps = self.steps_per_epoch * sum(p.epochs for p in phases)
        return {phase.name: self.run for phase in phases}

    def run(self, phase: Phase, *, initial_epoch: int, epochs: int, verbose: int,
            callbacks: list) -> tuple[keras.callbacks.History, str]:
        """Fits one phase (the signature `fit_phases` calls runners with)."""
        if not self.features:
            self._snapshot("before")
        compile_adversarial(self.model, phase, self.config.train)
        schedule = AdaptationSchedule(
            self.model.reversal, self.total_steps, phase.learning_rate, first_step=self.step,
            lambda_max=lambda_ceiling(self.config.adaptation),
            anneal=self.config.adaptation.anneal_learning_rate,
        )
        own = [schedule]
        if self.target_test is not None:
            own.append(TargetAccuracy(self.classifier, *self.target_test))
        result = self.model.fit(
            self.train_ds, validation_data=self.val_ds, initial_epoch=initial_epoch,
            epochs=epochs, verbose=verbose,
            callbacks=[*own, *callbacks],
        )
        self.step = schedule.step
        self._snapshot("after")
        return result, "domain adaptation"
