"""Phase 1 of a task model on features computed once: the heads train on cached vectors.

As for a classifier (`tfxfer.training.bottleneck`), while the backbone is frozen its
output for an example never changes, so it is computed once per split and the heads
train on it. The features of a task run are kept in memory for the run (not in the
reusable on-disk cache, whose files hold one integer label per example); the head
model shares its layers with the task model, so the trained heads are in place when
the phase ends. Augmentation needs the full model (augmented copies are not cached
for task models): then phase 1 runs the full model, or `bottleneck_cache: on` is an error.
"""

from __future__ import annotations

import logging

import keras
import numpy as np
import tensorflow as tf

from tfxfer.config import RunConfig
from tfxfer.data.pipeline import single_pass
from tfxfer.image.model import DROPOUT, HIDDEN, head_input, optional_layer
from tfxfer.tasks.losses import REGRESSION
from tfxfer.tasks.model import OUTPUT_PREFIX, compile_args, tower_name
from tfxfer.tasks.table import TaskSplits
from tfxfer.training.bottleneck import (
    FeatureExtractor,
    has_augmentation,
    refuse_or_skip,
    trains_below_features,
)
from tfxfer.training.trainer import PhaseRunner, compile_for_phase

logger = logging.getLogger(__name__)


def should_cache_tasks(model: keras.Model, config: RunConfig) -> bool:
    """Whether phase 1 of a task model trains on cached features; logs why not."""
    train = config.train
    if train.bottleneck_cache == "off" or train.strategy == "from_scratch":
        return False
    if (reason := trains_below_features(model)) is not None:
        return refuse_or_skip(reason, train)
    if has_augmentation(model):
        return refuse_or_skip("augmentation is on, and a task model does not cache augmented "
                              "copies, so phase 1 runs the full model", train)
    logger.info("Bottleneck cache on: phase 1 trains the heads on features computed once.")
    return True


def task_head_model(model: keras.Model, splits: TaskSplits) -> keras.Model:
    """The heads of a task model as a model on feature vectors, sharing its layers."""
    features = keras.Input(shape=(head_input(model).shape[-1],), name="features")
    x = model.get_layer(DROPOUT)(features)
    hidden = optional_layer(model, HIDDEN)
    if hidden is not None:
        x = hidden(x)
    outputs = {}
    for output in splits.outputs:
        name = OUTPUT_PREFIX + output.name
        tower = optional_layer(model, tower_name(output.name))
        y = x if tower is None else tower(x)
        if output.task == REGRESSION and not output.distribution:
            y = model.get_layer(f"{name}_standardised")(y)
        outputs[output.name] = model.get_layer(name)(y)
    return keras.Model(features, outputs, name="task_heads")


def _features(extract: FeatureExtractor, ds: tf.data.Dataset):
    xs, ys = [], {}
    for inputs, targets in single_pass(ds):
        xs.append(extract(inputs))
        for name, value in targets.items():
            ys.setdefault(name, []).append(value.numpy())
    return np.concatenate(xs), {k: np.concatenate(v) for k, v in ys.items()}


def task_head_runner(model: keras.Model, config: RunConfig, splits: TaskSplits) -> PhaseRunner:
    """A runner for phase 1 that trains the heads on features computed once per split."""
    def run(phase, *, initial_epoch, epochs, verbose, callbacks):
        data = config.data
        extract = FeatureExtractor(model)
        x, y = _features(extract, splits.batches("train", data))
        train = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(
            len(x), seed=data.seed, reshuffle_each_iteration=True).batch(data.batch_size)
        val = None
        if splits.has_batches("val", data):
            val = tf.data.Dataset.from_tensor_slices(_features(extract, splits.batches(
                "val", data))).batch(data.batch_size)
        head = task_head_model(model, splits)
        compile_for_phase(head, phase, config.train, train,
                          **compile_args(splits.outputs, config.train.regression_loss))
        history = head.fit(train.prefetch(tf.data.AUTOTUNE), validation_data=val,
                           initial_epoch=initial_epoch, epochs=epochs, verbose=verbose,
                           callbacks=callbacks, shuffle=False)
        return history, "cached features (in memory)"

    return run
