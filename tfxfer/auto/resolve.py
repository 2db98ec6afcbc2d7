"""Resolves the "auto" settings of a run before it trains.

    train.strategy: auto        -> tfxfer.auto.advisor (advice.json)
    model.image.feature_layer: auto   -> the best-probing depth (tfxfer.auto.probes)
    train.learning_rate: auto   -> tfxfer.auto.lr_finder on phase 1 (lr_find.json, lr_find.png)
    adaptation.lambda_max / features: auto   -> reverse validation, no target
                                   labels (tfxfer.adaptation.reverse_validation;
                                   reverse_validation.json)

`tfxfer train` calls `resolve_auto` once the data is loaded; `tfxfer advise` and
`tfxfer lr-find` call the same functions without training.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tfxfer.adaptation.reverse_validation import reverse_validate, write_reverse_validation
from tfxfer.auto.advisor import (
    AdvisorSettings,
    advise,
    apply_advice,
    best_feature_layer,
    write_advice,
)
from tfxfer.auto.lr_finder import LRFinderResult, lr_sweep, write_lr_find
from tfxfer.config import AUTO, RunConfig
from tfxfer.data.splits import Splits

logger = logging.getLogger(__name__)

# Phase-1 LR sweeps train the head on the features of at most this many training examples.
LR_FIND_SAMPLE = 2000


ModelBuilder = Callable[[RunConfig], keras.Model]


def find_learning_rate(
    config: RunConfig, splits: Splits, build: ModelBuilder, steps: int = 100
) -> LRFinderResult:
    """Sweeps the phase-1 learning rate of the classifier `build(config)` makes for `splits`.

    Phase 1 trains the head on the frozen backbone, so the sweep trains the head on
    the backbone features of a training sample (augmentation off); from_scratch has
    no frozen phase and sweeps the whole model on the training pipeline. The model
    is built for the sweep and discarded.
    """
    from tfxfer.auto.probes import sample_batches
    from tfxfer.training.bottleneck import FeatureExtractor, head_model
    from tfxfer.training.feature_norm import feature_norm_layer, fit_feature_norm
    from tfxfer.training.strategies import Phase, set_phase_trainable

    train = config.train
    if train.strategy == "auto":
        raise ValueError("Resolve strategy 'auto' before the LR sweep (tfxfer.auto.advisor).")
    keras.utils.set_random_seed(config.data.seed)
    model = build(config)
    if train.strategy == "from_scratch":
        fit_feature_norm(model, config, splits)
        set_phase_trainable(model, Phase("scratch", 1, 1e-3, "everything"), train)
        ds = splits.batches("train", config.data, training=True)
        return lr_sweep(model, ds, optimizer=train.optimizer, steps=steps)
    set_phase_trainable(model, Phase("head", 1, 1e-3, "none"), train)
    sample, labels = sample_batches(config, splits, LR_FIND_SAMPLE, LR_FIND_SAMPLE)
    extract = FeatureExtractor(model)
    features = np.concatenate([extract(images) for images, _ in sample])
    norm = feature_norm_layer(model)
    if norm is not None:  # a cut: its features are standardised as in training
        norm.set_statistics(features)
    ds = (tf.data.Dataset.from_tensor_slices((features, labels))
          .shuffle(len(labels), seed=config.data.seed).batch(config.data.batch_size))
    return lr_sweep(head_model(model), ds, optimizer=train.optimizer, steps=steps,
                    weights_of=model)


def _with_learning_rate(config: RunConfig, rate: float) -> RunConfig:
    train = config.train
    lr2 = train.fine_tune_learning_rate
    if lr2 is not None and lr2 > rate / 10:
        logger.warning("fine_tune_learning_rate %g is not 10x below the found %g; using %g",
                       lr2, rate, rate / 10)
        lr2 = rate / 10
    train = dataclasses.replace(train, learning_rate=rate, fine_tune_learning_rate=lr2)
    return dataclasses.replace(config, train=train)


def resolve_auto(
    config: RunConfig, splits: Splits, run_dir: str | Path, build: ModelBuilder,
    settings: AdvisorSettings | None = None,
) -> RunConfig:
    """`config` with every "auto" replaced; the evidence is written to `run_dir`.

    Args:
        config: a resolved run config (image size set).
        splits: the run's data.
        run_dir: where advice.json and lr_find.json/.png go.
        build: makes the classifier of a config (for the LR sweep; discarded after it).
        settings: advisor thresholds.

    Returns:
        The config to train with; the global seed is reset when anything was
        resolved, so training starts as if the resolved values had been given.
    """
    given = config
    if config.train.strategy == "auto":
        advice = advise(config, splits, settings)
        write_advice(run_dir, advice)
        config = apply_advice(config, advice)
        logger.info("Strategy auto -> %s (%s)", config.train.strategy, advice.choice)
    image = config.model.image  # None in a text run's config
    if image is not None and image.feature_layer == "auto":
        layer = best_feature_layer(config, splits, settings)
        logger.info("Feature layer auto -> %s", layer or "the top")
        image = dataclasses.replace(image, feature_layer=layer)
        config = dataclasses.replace(config, model=dataclasses.replace(config.model, image=image))
    if config.train.learning_rate == "auto":
        result = find_learning_rate(config, splits, build)
        write_lr_find(run_dir, result, f"phase 1 ({config.train.strategy})")
        config = _with_learning_rate(config, result.suggestion)
        logger.info("Learning rate auto -> %.3g", result.suggestion)
    adaptation = config.adaptation
    if config.train.strategy == "domain_adaptation" and AUTO in (adaptation.lambda_max,
                                                                 adaptation.features):
        result = reverse_validate(config, splits, build)
        write_reverse_validation(run_dir, result)
        config = dataclasses.replace(config, adaptation=dataclasses.replace(
            adaptation, lambda_max=result.choice, features=result.features))
        logger.info("Adaptation auto -> λ %g, features %s (reverse validation, %.0f s)",
                    result.choice, result.features, result.seconds)
    if config is not given:
        keras.utils.set_random_seed(config.data.seed)
    return config
