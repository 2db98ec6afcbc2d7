"""Phase 2 on cached activations at the unfreeze boundary.

When phase 2 unfreezes only the top of the backbone, the frozen bottom computes
the same activations for an example in every epoch (BatchNorm is frozen and the
frozen layers never change). Here the classifier is split where one tensor
carries everything the top needs:

    bottom = image -> resize -> [augmentation] -> preprocess -> backbone up to T
    top    = T -> rest of the backbone -> pooling -> dropout -> [hidden] -> predictions

Both parts share their layers with the classifier. The bottom's output T is
computed once per example (N augmented copies when augmentation is on, as in
phase 1) and stored with the bottleneck cache machinery (`tfxfer.training.bottleneck`:
same keys plus the boundary's name, memory-mapped); the top trains on it, and
since it shares its layers, the trained layers are already grafted into the
classifier when the phase ends.

For MobileNet-style sequential backbones T is the input of the first unfrozen
layer. When skip connections cross that point (MobileNetV2, ResNet), the boundary
moves down to the nearest layer below it whose input alone feeds everything above
(the frozen layers between then run in the top, still frozen). Phase 2 falls back
to the full model, with a log line naming the failed condition, when: the setting
is "off"; the phase unfreezes the whole backbone; the model is neither an image
classifier with a nested backbone nor a keras-hub transformer text classifier (whose
cut, above its frozen blocks, `tfxfer.training.text_boundary` makes); augmentation is
on without cached copies; no single-tensor boundary exists; a layer below it is
trainable; or the split model's predictions differ from the classifier's by more than
1e-5 on a batch.
"""

from __future__ import annotations

import dataclasses
import logging

import keras
import numpy as np
import tensorflow as tf

from tfxfer.config import RunConfig
from tfxfer.data.splits import Splits
from tfxfer.evaluation import inference_function
from tfxfer.image.model import BACKBONE, head_input
from tfxfer.training.bottleneck import (
    FeatureExtractor,
    FeatureSource,
    cached_split,
    features_dataset,
    has_augmentation,
)
from tfxfer.training.split import NoBoundary, SplitModel, output_in
from tfxfer.training.strategies import Phase, backbone_of, plan_phases, set_phase_trainable
from tfxfer.training.text_boundary import is_transformer_classifier, split_transformer_classifier
from tfxfer.training.trainer import PhaseRunner, compile_for_phase
from tfxfer.utils import keras_compat

logger = logging.getLogger(__name__)

# Largest difference allowed between the split model's and the classifier's predictions.
TOLERANCE = 1e-5
# Examples of the first training batch the check runs on.
CHECK_EXAMPLES = 4
PREPROCESS = "preprocess"


def _sublayers(backbone: keras.Model) -> list[keras.layers.Layer]:
    return [layer for layer in backbone.layers if not isinstance(layer, keras.layers.InputLayer)]


def _crossing(layers_above: list[keras.layers.Layer]) -> list:
    """Distinct tensors that layers_above read but that no layer among them produces."""
    inside = {id(layer) for layer in layers_above}
    crossing = {}
    for layer in layers_above:
        for tensor in keras.tree.flatten(layer.input):
            if id(keras_compat.producing_operation(tensor)) not in inside:
                crossing[id(tensor)] = tensor
    return list(crossing.values())


def find_boundary(backbone: keras.Model) -> int:
    """Index (among the backbone's layers) of the lowest trainable layer's boundary.

    Starts at the lowest layer that owns trainable weights and moves down until the
    layers from there up read a single tensor from below.

    Raises:
        NoBoundary: nothing below the unfrozen part, or no single-tensor boundary.
    """
    layers = _sublayers(backbone)
    trainable = [i for i, layer in enumerate(layers) if layer.trainable_weights]
    if not trainable:
        raise NoBoundary("no backbone layer is trainable in this phase")
    for index in range(trainable[0], 0, -1):
        if len(_crossing(layers[index:])) == 1:
            return index
    raise NoBoundary(
        f"no single tensor below {layers[trainable[0]].name!r} carries everything the "
        "unfrozen layers read (skip connections cross every point down to the input)"
    )


def split_model(model: keras.Model) -> SplitModel:
    """Cuts `model` (trainable flags already set for the phase) at its unfreeze boundary.

    Raises:
        NoBoundary: the model cannot be split (the message says why).
    """
    names = [layer.name for layer in model.layers]
    backbone = backbone_of(model)
    if is_transformer_classifier(model, backbone):
        return split_transformer_classifier(model, backbone)
    if PREPROCESS not in names or not isinstance(backbone, keras.Model):
        raise NoBoundary("the model is neither an image classifier with a nested backbone "
                         "nor a transformer text classifier")
    index = find_boundary(backbone)
    layers = _sublayers(backbone)
    frozen_ok = [layer.name for layer in layers[:index] if layer.trainable_weights]
    if frozen_ok:
        raise NoBoundary(f"layers below the boundary are trainable: {frozen_ok[:3]}")
    boundary = layers[index].input
    backbone_top = keras.Model(boundary, backbone.output, name=BACKBONE)
    backbone_bottom = keras.Model(backbone.inputs, boundary, name="backbone_bottom")
    backbone_out = output_in(model, backbone)
    after = keras.Model(backbone_out, model.output, name="after_backbone")
    pooling = keras.Model(backbone_out, head_input(model), name="pooling_part")
    before = keras.Model(model.inputs, model.get_layer(PREPROCESS).output, name="before_backbone")

    images = keras.Input(shape=model.inputs[0].shape[1:], dtype=model.inputs[0].dtype)
    bottom = keras.Model(images, backbone_bottom(before(images)), name="bottom")
    activations = keras.Input(shape=boundary.shape[1:], name="activations")
    top_out = backbone_top(activations)
    top = keras.Model(activations, after(top_out), name="top")
    top_features = keras.Model(activations, pooling(top_out), name="top_features")
    return SplitModel(layers[index].name, bottom, top, top_features)


def max_difference(model: keras.Model, split: SplitModel, images) -> float:
    """Largest absolute difference of inference predictions, full vs split, on `images`.

    Runs eagerly: a one-off check should not pay for tracing three models.
    """
    full = np.asarray(model(images, training=False))
    parts = np.asarray(split.top(split.bottom(images, training=False), training=False))
    return float(np.max(np.abs(full - parts)))


def _check_conditions(model: keras.Model, config: RunConfig, phase: Phase) -> None:
    train = config.train
    if train.phase2_cache == "off":
        raise NoBoundary("train.phase2_cache='off'")
    if phase.unfreeze != "top":
        raise NoBoundary(f"the phase unfreezes {phase.unfreeze!r}, not the top of the backbone")
    if has_augmentation(model) and train.augmented_copies == 0:
        raise NoBoundary("augmentation is on and train.augmented_copies=0")


def plan_split(
    model: keras.Model, config: RunConfig, phase: Phase, splits: Splits
) -> SplitModel:
    """The split model for `phase`, checked against the classifier on one batch.

    Raises:
        NoBoundary: a condition failed (the message names it).
    """
    _check_conditions(model, config, phase)
    split = split_model(model)
    data = dataclasses.replace(config.data, cache="none")  # one batch: leave no partial cache
    images, _ = next(iter(splits.batches("train", data)))
    difference = max_difference(model, split, images[:CHECK_EXAMPLES])
    if not difference <= TOLERANCE:
        raise NoBoundary(
            f"the split model's predictions differ from the classifier's by {difference:.2e} "
            f"(> {TOLERANCE:g})"
        )
    return split


def boundary_phase_runner(
    model: keras.Model, config: RunConfig, splits: Splits,
    train_ds: tf.data.Dataset, val_ds: tf.data.Dataset | None,
) -> PhaseRunner:
    """A runner for phase 2 that trains the top on cached boundary activations.

    The conditions are checked when the runner is called (after the phase's trainable
    flags are set); when one fails it logs why and fits the full model on
    `train_ds`/`val_ds` instead.
    """
    def run(phase, *, initial_epoch, epochs, verbose, callbacks):
        fit = {"initial_epoch": initial_epoch, "epochs": epochs, "verbose": verbose,
               "callbacks": callbacks, "shuffle": False}
        try:
            split = plan_split(model, config, phase, splits)
        except NoBoundary as reason:
            logger.info("Phase 2 cache off: %s; phase 2 runs the full model.", reason)
            compile_for_phase(model, phase, config.train, train_ds)
            return model.fit(train_ds, validation_data=val_ds, **fit), "full model"
        copies = config.train.augmented_copies if has_augmentation(model) else 0
        logger.info("Phase 2 cache on: the top trains on cached activations at the input of "
                    "%r%s.", split.layer, f" ({copies} augmented copies)" if copies else "")
        train, val = _cached_datasets(model, config, splits, split, copies)
        compile_for_phase(split.top, phase, config.train, train)
        history = split.top.fit(train, validation_data=val, **fit)
        mode = f"cached activations at {split.layer!r}"
        return history, mode + (f" ({copies} augmented copies)" if copies else "")

    return run


def _cached_datasets(
    model: keras.Model, config: RunConfig, splits: Splits, split: SplitModel, copies: int
) -> tuple[tf.data.Dataset, tf.data.Dataset | None]:
    batch, seed = config.data.batch_size, config.data.seed
    even = tf.distribute.get_strategy().num_replicas_in_sync > 1
    extract = FeatureExtractor(model, split.bottom)
    rank = len(extract.shape)

    def batches(name: str, n: int, training: bool) -> tf.data.Dataset:
        x, y = cached_split(model, config, splits, name, n, extract, split.layer)
        lengths = split.lengths(x) if split.lengths is not None else None
        return features_dataset(x, y, batch, training=training, seed=seed,
                                drop_remainder=even, feature_rank=rank, lengths=lengths)

    train = batches("train", copies, True)
    val = None
    if splits.has_batches("val", config.data, drop_remainder=even):
        val = batches("val", 0, False)
    return train, val


def features_via_boundary(model: keras.Model, config: RunConfig, splits: Splits) -> FeatureSource:
    """Phase 1's features derived from the activations phase 2 will train on.

    When phase 2 will run on cached boundary activations, phase 1 computes those (the
    frozen bottom, with its augmented copies) and pools its features from them through
    the frozen top, so the bottom runs once for both phases. Returns None for a split
    when phase 2 will not be cached (phase 1 then computes its features directly).
    """
    planned: list[SplitModel | None] = []

    def features(split_name: str, copies: int) -> tuple[np.ndarray, np.ndarray] | None:
        if not planned:
            planned.append(_plan_phase2(model, config, splits))
        split = planned[0]
        if split is None:
            return None
        extract = FeatureExtractor(model, split.bottom)
        x, y = cached_split(model, config, splits, split_name, copies, extract, split.layer)
        logger.info("Phase 1 %s features pooled from the activations at %r", split_name,
                    split.layer)
        return _pool(split.top_features, x, len(extract.shape), config.data.batch_size), y

    return features


def _plan_phase2(model: keras.Model, config: RunConfig, splits: Splits) -> SplitModel | None:
    """Phase 2's split, planned during phase 1 (whose trainable flags are restored)."""
    phases = plan_phases(config.train)
    if len(phases) < 2 or phases[1].name != "fine_tune":
        return None
    set_phase_trainable(model, phases[1], config.train)
    try:
        return plan_split(model, config, phases[1], splits)
    except NoBoundary:
        return None  # phase 2 logs the reason when it runs
    finally:
        set_phase_trainable(model, phases[0], config.train)


def _pool(top_features: keras.Model, x: np.ndarray, rank: int, batch: int) -> np.ndarray:
    """Pooled features of boundary activations `x` (n, [copies,] *shape), in batches."""
    run = inference_function(top_features)
    rows = x.reshape(-1, *x.shape[x.ndim - rank:])  # a view, also of a memory map
    out = np.concatenate([np.asarray(run(rows[i:i + batch]), np.float32)
                          for i in range(0, len(rows), batch)])
    return out.reshape(*x.shape[:x.ndim - rank], -1)
