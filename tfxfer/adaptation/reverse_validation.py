"""Reverse validation: DANN's λ ceiling (and what its domain head reads) chosen without a
single target label.

Ganin et al., "Domain-Adversarial Training of Neural Networks" (JMLR 2016), choose
hyper-parameters by reverse validation (Zhong et al., ECML PKDD 2010): a good
adaptation of S -> T should also adapt back. For each candidate λ ceiling:

    forward   DANN: labelled source train S + unlabelled target T    -> classifier η
    labels    η's predictions on T (pseudo-labels)
    reverse   DANN: pseudo-labelled T + source train S, labels hidden -> classifier η_r
    score     accuracy of η_r on the labelled source validation split

With `adaptation.features: auto` the candidates are every pair of a features
choice (ADAPTATION_FEATURES: the pooled backbone features, the head's hidden layer) and a
λ, so the same score also decides where the domain head reads. The candidate whose
reverse classifier scores best wins (ties: the smaller λ, the milder adversarial
pressure, then the earlier features choice). Target labels are never read: target images come
from `scan_target_images`, which ignores class subfolders, and the source
images of the reverse run pass through a pipeline that drops their labels.

Cost: every run trains `adaptation.reverse_validation_fraction` of the real run's steps
(its phases in proportion, the schedules compressed to that length) on at most as
many target images as it can see, so the whole search costs about
2 × candidates × fraction of the real run. Every run starts from the same seed,
so candidates differ by λ and features alone (common random numbers). It runs before the
real run, outside any `tf.distribute` strategy (as the LR finder does).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tfxfer.adaptation.data import (
    decoded_images,
    endless_batches,
    mixed_batches,
    scan_target_images,
    seeded_sample,
)
from tfxfer.adaptation.model import DomainAdversarialModel, domain_adversarial_model
from tfxfer.adaptation.schedules import AdaptationSchedule
from tfxfer.adaptation.training import compile_adversarial
from tfxfer.config import ADAPTATION_FEATURES, AUTO, RunConfig
from tfxfer.data.splits import Splits
from tfxfer.reports.adaptation import REVERSE_VALIDATION
from tfxfer.training.strategies import Phase, is_pretrained, plan_phases, set_phase_trainable

logger = logging.getLogger(__name__)

ModelBuilder = Callable[[RunConfig], keras.Model]


@dataclass
class CandidateScore:
    """One candidate (λ ceiling, features) and what its two runs measured (no target label).

    Attributes:
        lambda_max: the candidate's λ ceiling.
        reverse_accuracy: the score: the reverse classifier's source validation accuracy.
        forward_val_accuracy: the forward classifier's source validation accuracy.
        forward_domain_accuracy: the forward run's domain accuracy in its last epoch.
        reverse_domain_accuracy: the same for the reverse run.
        pseudo_label_counts: pseudo-labelled target images per class.
        features: what the candidate's domain head reads (`adaptation.features`).
    """

    lambda_max: float
    reverse_accuracy: float
    forward_val_accuracy: float
    forward_domain_accuracy: float
    reverse_domain_accuracy: float
    pseudo_label_counts: list[int]
    features: str = "pooling"


@dataclass
class ReverseValidation:
    """The candidates' scores and the choice; written to reverse_validation.json.

    `choice` is the chosen λ ceiling, `features` the chosen features (the run's own
    when they were not searched).
    """

    candidates: list[CandidateScore]
    choice: float
    steps: int
    run_steps: int
    target_examples: int
    source_val_examples: int
    seconds: float
    features: str = "pooling"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def choose(scores: list[CandidateScore]) -> CandidateScore:
    """The candidate whose reverse classifier scores best; ties go to the smaller λ,
    then to the earlier features choice of ADAPTATION_FEATURES."""
    if not scores:
        raise ValueError("Reverse validation needs at least one candidate score.")
    best = max(s.reverse_accuracy for s in scores)
    return min((s for s in scores if s.reverse_accuracy == best),
               key=lambda s: (s.lambda_max, ADAPTATION_FEATURES.index(s.features)))


def choose_lambda(scores: list[CandidateScore]) -> float:
    """The λ of the best candidate (see `choose`)."""
    return choose(scores).lambda_max


def candidates(config: RunConfig) -> list[tuple[str, float]]:
    """The (features, λ) pairs to score: every λ of `adaptation.lambda_grid` when λ is
    "auto" (else the run's λ), for every features choice when they are "auto" (the
    hidden layer only when the head has one) else the run's."""
    adaptation = config.adaptation
    lambdas = (adaptation.lambda_grid if adaptation.lambda_max == AUTO
               else [adaptation.lambda_max])
    features = [adaptation.features]
    if adaptation.features == AUTO:
        features = [f for f in ADAPTATION_FEATURES
                    if f != "hidden" or config.model.hidden_units]
    return [(f, float(value)) for f in features for value in lambdas]


def _short_phases(config: RunConfig, steps_per_epoch: int) -> list[tuple[Phase, int]]:
    """The run's phases, each with `reverse_validation_fraction` of its steps (>= 1)."""
    fraction = config.adaptation.reverse_validation_fraction
    phases = plan_phases(config.train, is_pretrained(config))
    return [(p, max(1, round(fraction * p.epochs * steps_per_epoch))) for p in phases]


def _target_sample(config: RunConfig, limit: int) -> list[str]:
    """At most `limit` target image paths, a seeded sample (all of them if fewer)."""
    data = config.data
    paths = scan_target_images(config.adaptation.target_source,
                               validate=data.validate_files).paths
    return seeded_sample(paths, limit, data.seed)


def _shuffled(ds: tf.data.Dataset, n: int, seed: int) -> tf.data.Dataset:
    return ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)


class _Search:
    """The data shared by every candidate, and one forward + reverse pair per candidate.

    Decoded images are cached once; the shuffles on top are made anew for every
    run after the seed is reset, so every candidate sees the same batches.
    """

    def __init__(self, config: RunConfig, splits: Splits, build: ModelBuilder) -> None:
        data = config.data
        self.config, self.build = config, build
        self.batch_size, self.seed = data.batch_size, data.seed
        self.n_source = splits.size("train")
        steps_per_epoch = math.ceil(self.n_source / data.batch_size)
        self.run_steps = steps_per_epoch * sum(p.epochs for p in plan_phases(
            config.train, is_pretrained(config)))
        self.phases = _short_phases(config, steps_per_epoch)
        self.steps = sum(steps for _, steps in self.phases)
        self.target_paths = _target_sample(config, self.steps * data.batch_size)
        self.target = decoded_images(self.target_paths, config.model.image_input_size)
        self.source = splits.batches("train", data).unbatch()  # (image, label), cached
        self.val_ds = splits.batches("val", data)
        self.num_classes = len(splits.class_names)

    def _train(
        self, datasets: Callable[[], tf.data.Dataset], lambda_max: float, features: str
    ) -> tuple[DomainAdversarialModel, float]:
        """A fresh classifier trained adversarially over the short phases, its domain
        head reading `features`.

        `datasets()` makes the run's ((labelled, unlabelled), labels) batches.
        """
        keras.utils.set_random_seed(self.seed)
        train_ds = datasets().repeat()
        classifier = self.build(self.config)
        model = domain_adversarial_model(
            classifier, dataclasses.replace(self.config.adaptation, features=features))
        step, history = 0, None
        for phase, steps in self.phases:
            set_phase_trainable(classifier, phase, self.config.train)
            compile_adversarial(model, phase, self.config.train)
            schedule = AdaptationSchedule(
                model.reversal, self.steps, phase.learning_rate, first_step=step,
                lambda_max=lambda_max, anneal=self.config.adaptation.anneal_learning_rate)
            history = model.fit(train_ds, steps_per_epoch=steps, epochs=1, verbose=0,
                                callbacks=[schedule])
            step = schedule.step
        return model, float(history.history["domain_accuracy"][-1])

    def _forward_batches(self) -> tf.data.Dataset:
        labelled = _shuffled(self.source, self.n_source, self.seed).batch(self.batch_size)
        n_target = len(self.target_paths)
        return mixed_batches(labelled, endless_batches(self.target, n_target, self.batch_size,
                                                       self.seed))

    def _reverse_batches(self, labels: np.ndarray) -> tf.data.Dataset:
        pseudo = tf.data.Dataset.zip((self.target, tf.data.Dataset.from_tensor_slices(labels)))
        labelled = _shuffled(pseudo, len(labels), self.seed).batch(self.batch_size)
        # The source images without their labels: the adversary's side.
        hidden = self.source.map(lambda image, _label: image)
        return mixed_batches(labelled, endless_batches(hidden, self.n_source, self.batch_size,
                                                       self.seed))

    def _accuracy(self, model: DomainAdversarialModel) -> float:
        return float(model.evaluate(self.val_ds, verbose=0, return_dict=True)["accuracy"])

    def _pseudo_labels(self, classifier: keras.Model) -> np.ndarray:
        probabilities = classifier.predict(self.target.batch(self.batch_size), verbose=0)
        return np.argmax(probabilities, axis=-1).astype(np.int64)

    def score(self, lambda_max: float, features: str) -> CandidateScore:
        forward, forward_domain = self._train(self._forward_batches, lambda_max, features)
        labels = self._pseudo_labels(forward.classifier)
        reverse, reverse_domain = self._train(lambda: self._reverse_batches(labels),
                                              lambda_max, features)
        return CandidateScore(
            lambda_max=float(lambda_max), reverse_accuracy=self._accuracy(reverse),
            forward_val_accuracy=self._accuracy(forward),
            forward_domain_accuracy=forward_domain, reverse_domain_accuracy=reverse_domain,
            pseudo_label_counts=np.bincount(labels, minlength=self.num_classes).tolist(),
            features=features,
        )


def reverse_validate(
    config: RunConfig, splits: Splits, build: ModelBuilder
) -> ReverseValidation:
    """Scores every candidate (`candidates(config)`) by reverse validation.

    Args:
        config: a resolved domain-adaptation run config (image size set;
            adaptation.target_source the unlabelled target folder).
        splits: the labelled source splits; the validation split must not be empty.
        build: makes a fresh classifier for a config (`experiment.build_classifier`).

    Returns:
        The scores and the chosen λ and features (see `choose`).

    Raises:
        ValueError: the source has no validation split, or the data are not images.
    """
    if splits.modality != "image":
        raise ValueError(f"Reverse validation adapts image classifiers; {splits.source} holds "
                         f"{splits.modality} data.")
    if not splits.size("val"):
        raise ValueError("Reverse validation scores on the labelled source validation split, "
                         f"and {splits.source} has none: set data.val_fraction > 0.")
    start = time.perf_counter()
    search = _Search(config, splits, build)
    pairs = candidates(config)
    logger.info("Reverse validation over (features, λ) %s: %d+%d steps per candidate "
                "(the run: %d), %d target images", pairs, search.steps, search.steps,
                search.run_steps, len(search.target_paths))
    scores = []
    for features, lambda_max in pairs:
        scores.append(search.score(lambda_max, features))
        logger.info("Reverse validation %s λ=%g: reverse accuracy %.4f (forward source val "
                    "%.4f, domain accuracy %.3f)", features, lambda_max,
                    scores[-1].reverse_accuracy, scores[-1].forward_val_accuracy,
                    scores[-1].forward_domain_accuracy)
    best = choose(scores)
    return ReverseValidation(
        candidates=scores, choice=best.lambda_max, steps=search.steps,
        run_steps=search.run_steps, target_examples=len(search.target_paths),
        source_val_examples=splits.size("val"), seconds=time.perf_counter() - start,
        features=best.features,
    )


def write_reverse_validation(run_dir: str | Path, result: ReverseValidation) -> Path:
    """Writes RUN_DIR/reverse_validation.json."""
    path = Path(run_dir) / REVERSE_VALIDATION
    path.write_text(json.dumps(result.to_dict(), indent=2))
    return path
