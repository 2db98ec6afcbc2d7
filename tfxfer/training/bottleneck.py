"""Bottleneck caching: train the head on backbone features computed once.

While the backbone is frozen (phase 1, feature extraction) its output for an
example never changes, yet the Keras-guide recipe recomputes it every epoch.
Here the classifier is split at the head's input:

    features = everything up to the head's input (`models.head_input`: the pooled
               features, before "feature_norm" or "dropout")
    head     = [feature_norm] -> dropout -> [hidden] -> predictions, the *same* layer objects

The features of the train and validation splits are computed once, the head is
trained on them, and since the head shares its layers with the classifier, the
trained head is already in place when the phase ends. The same split works for
image backbones and text encoders.

Features are stored under the cache directory, keyed by everything that
determines them (backbone, weights, input size, pooling, the data itself and
the augmentation copies), so a second run on the same data reuses them. They
are memory-mapped from disk: the pages just written stay in the page cache, so a
batch is read from memory when it fits and from disk otherwise, and no large split is
copied whole (reading the flowers app's 180 MB of boundary activations into memory
took ~0.15 s per load, four loads per run). Small splits (up to `IN_MEMORY_BYTES`)
are read into a tensor once: fetching each batch through Python costs more than a
head's training step (see `features_dataset`).
With augmentation on, `augmented_copies` copies of every training example are
cached and each epoch draws one copy per example; with no copies, phase 1 falls
back to the full model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tfxfer.config import ImageConfig, RunConfig, TextConfig, TrainConfig
from tfxfer.data.pipeline import single_pass, with_batch_count
from tfxfer.data.splits import LENGTH_WINDOW, Splits
from tfxfer.image.model import (
    AUGMENTATION,
    BACKBONE,
    DROPOUT,
    FEATURE_NORM,
    HIDDEN,
    PREDICTIONS,
    head_input,
    optional_layer,
)
from tfxfer.text.ngrams import NGRAMS
from tfxfer.training.frozen import frozen_function
from tfxfer.training.trainer import PhaseRunner, compile_for_phase
from tfxfer.utils import atomic
from tfxfer.utils.cache import cache_root
from tfxfer.utils.progress import progress

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1

# Cached splits up to this size are read into memory whole (`features_dataset`).
IN_MEMORY_BYTES = 64 << 20


def feature_model(model: keras.Model) -> keras.Model:
    """The classifier from its input up to the head's input (the pooled features)."""
    return keras.Model(model.inputs, head_input(model), name="features")


def head_model(model: keras.Model) -> keras.Model:
    """The classifier's head as a model on feature vectors, sharing its layers."""
    width = head_input(model).shape[-1]
    features = keras.Input(shape=(width,), name="features")
    norm, hidden = optional_layer(model, FEATURE_NORM), optional_layer(model, HIDDEN)
    x = features if norm is None else norm(features)
    x = model.get_layer(DROPOUT)(x)
    if hidden is not None:
        x = hidden(x)
    return keras.Model(features, model.get_layer(PREDICTIONS)(x), name="head")


def has_augmentation(model: keras.Model) -> bool:
    return optional_layer(model, AUGMENTATION) is not None


def trains_below_features(model: keras.Model) -> str | None:
    """Why the head's input changes in phase 1 (a layer outside the backbone learns), or None."""
    if optional_layer(model, NGRAMS) is not None:
        return ("the hashed n-gram bag (model.text.ngram_buckets) trains in phase 1, so the "
                "head's input is not fixed")
    return None


def refuse_or_skip(message: str, train: TrainConfig, hint: str = "") -> bool:
    """False after logging why the cache is off (and `hint`, what would turn it on); an
    error naming the reason when `train.bottleneck_cache` asked for it to be on."""
    if train.bottleneck_cache == "on":
        raise ValueError(f"bottleneck_cache='on' cannot be honoured: {message}.")
    logger.info("Bottleneck cache off: %s%s.", message, f" ({hint})" if hint else "")
    return False


def should_cache(model: keras.Model, config: RunConfig) -> bool:
    """Whether phase 1 trains on cached features; logs the reason either way."""
    train = config.train
    if train.bottleneck_cache == "off" or train.strategy == "from_scratch":
        return False
    if (reason := trains_below_features(model)) is not None:
        return refuse_or_skip(reason, train)
    if has_augmentation(model) and train.augmented_copies == 0:
        return refuse_or_skip("augmentation is on and train.augmented_copies=0, so phase 1 "
                              "runs the full model on every batch", train,
                              hint="set augmented_copies=N to cache N augmented copies per "
                                   "example")
    copies = train.augmented_copies if has_augmentation(model) else 0
    logger.info("Bottleneck cache on: phase 1 trains the head on cached features%s.",
                f" ({copies} augmented copies per training example)" if copies else "")
    return True


def _file_identity(path: str) -> str:
    stat = os.stat(path)
    return f"{path}:{stat.st_size}:{stat.st_mtime_ns}"


def _data_digest(splits: Splits, split: str) -> str:
    """Digest of one split's inputs and labels (file identities for path sources)."""
    digest = hashlib.sha256()
    if splits.from_paths and split in splits.files:  # the same pairs, without tf.data
        pairs = zip(splits.files[split], splits.labels[split])
    else:
        pairs = ((raw.decode() if splits.from_paths else raw, label)
                 for raw, label in splits.raw[split].as_numpy_iterator())
    for value, label in pairs:
        value = _file_identity(value) if splits.from_paths else value
        digest.update(value.encode() if isinstance(value, str) else bytes(value))
        digest.update(int(label).to_bytes(8, "little", signed=True))
    return digest.hexdigest()


def _weights_identity(weights: str | None) -> str | None:
    if weights and os.path.isfile(weights):
        return _file_identity(weights)
    return weights


def _encoder_identity(classifier: keras.Model | None) -> str | None:
    """The files behind a text encoder, so a rebuilt encoder gets new features."""
    identity = getattr(_backbone_layer(classifier), "feature_identity", None)
    if identity is not None:  # transformer encoders: files, sequence length, pooling
        return identity
    path = getattr(_backbone_layer(classifier), "module_path", None)
    if path and os.path.isfile(os.path.join(path, "saved_model.pb")):
        return _file_identity(os.path.join(path, "saved_model.pb"))
    return path


def _pretrained(weights: str | None) -> bool:
    """Whether the weights are loaded (else they are drawn from the run's seed)."""
    return weights is not None and str(weights).lower() != "none"


def _backbone_layer(classifier: keras.Model | None):
    if classifier is None:
        return None
    return classifier.get_layer(BACKBONE)


def _feature_settings(
    section: ImageConfig | TextConfig, copies: int, classifier: keras.Model | None
) -> dict:
    """The model settings that determine the features: the modality's config section.

    Weights and encoder files are identified by size and modification time, so a
    file rewritten under the same name gets new features; augmentation settings
    count only when augmented copies are cached.
    """
    if isinstance(section, TextConfig):
        return {"encoder": section.encoder, "encoder_files": _encoder_identity(classifier)}
    settings = dataclasses.asdict(section)
    settings["weights"] = _weights_identity(section.weights)
    if not copies:
        for name in ("augment", "flip", "rotation", "zoom"):
            settings.pop(name)
    return settings


def cache_key(
    config: RunConfig, splits: Splits, split: str, copies: int,
    classifier: keras.Model | None = None, boundary: str | None = None,
) -> str:
    """A key for one split's features: model feature settings plus the data itself.

    For text, the key also holds the identity of the encoder's SavedModel file taken
    from `classifier`, so rebuilding an encoder under the same name is noticed.
    `boundary` names the backbone layer whose input is cached instead of the pooled
    features (phase 2 on cached activations, see `tfxfer.training.boundary`).
    """
    section = config.model.section(splits.modality)
    random_weights = isinstance(section, ImageConfig) and not _pretrained(section.weights)
    identity = {
        "format": FORMAT_VERSION,
        "modality": splits.modality,
        "features": _feature_settings(section, copies, classifier),
        "copies": copies,
        "seed": config.data.seed if copies or random_weights else None,
        "data": _data_digest(splits, split),
    }
    if boundary is not None:
        identity["boundary"] = boundary
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]


class FeatureExtractor:
    """The classifier's feature part as compiled functions, traced once per mode, with the
    frozen weights as constants (`tfxfer.training.frozen`): the part must not train meanwhile.

    Args:
        model: a tfxfer classifier.
        part: the model that computes the cached values (default: `feature_model(model)`,
            the pooled features).
    """

    def __init__(self, model: keras.Model, part: keras.Model | None = None) -> None:
        self.model = part if part is not None else feature_model(model)
        self._functions: dict[bool, object] = {}

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one example's cached value."""
        return tuple(self.model.output.shape[1:])

    def __call__(self, inputs, training: bool = False) -> np.ndarray:
        if training not in self._functions:
            self._functions[training] = frozen_function(self.model, training=training)
        return np.asarray(self._functions[training](inputs), np.float32)


def compute_features(
    extract: FeatureExtractor, ds: tf.data.Dataset, path: Path, size: int, copies: int,
    seed: int, *, desc: str = "features", show_progress: bool | None = None,
) -> None:
    """Writes the features of batched (inputs, labels) `ds` to `path` (a folder).

    Shapes on disk: `x.npy` (size, *shape) or (size, copies, *shape), `shape` being
    `extract.shape`, e.g. (width,) for pooled features; `y.npy` (size,).
    Augmented copies come from the model's own augmentation layers (training=True;
    the frozen backbone still runs in inference mode). A progress bar counts the
    examples (`tfxfer.utils.progress`; `show_progress=False` turns it off).
    """
    atomic.remove_temps(path.parent, path.name)  # of killed runs; a live writer's are kept
    try:
        with atomic.atomic_dir(path) as tmp:  # a half-written cache is never picked up
            _write_features(extract, ds, tmp, size, copies, seed, desc, show_progress)
    except FileExistsError:
        if not (path / "y.npy").is_file():
            raise
        # Another process (e.g. a second worker of a multi-worker job) wrote it first.
        logger.info("Features at %s were written by another process meanwhile.", path)


def _write_features(
    extract: FeatureExtractor, ds: tf.data.Dataset, tmp: Path, size: int, copies: int,
    seed: int, desc: str, show_progress: bool | None,
) -> None:
    """Writes x.npy and y.npy of `compute_features` into the folder `tmp`."""
    shape = (size, copies, *extract.shape) if copies else (size, *extract.shape)
    x = np.lib.format.open_memmap(tmp / "x.npy", mode="w+", dtype=np.float32, shape=shape)
    y = np.lib.format.open_memmap(tmp / "y.npy", mode="w+", dtype=np.int64, shape=(size,))
    if copies:  # the augmentation draws from the global generator: make the copies repeatable
        keras.utils.set_random_seed(seed)
    start = 0
    with progress(total=size, desc=desc, unit="example", enabled=show_progress) as bar:
        for inputs, labels in ds:
            end = start + len(labels)
            y[start:end] = labels.numpy()
            if copies:
                for c in range(copies):
                    x[start:end, c] = extract(inputs, training=True)
            else:
                x[start:end] = extract(inputs)
            bar.update(end - start)
            start = end
    if start != size:
        raise RuntimeError(f"Expected {size} examples while caching features, got {start}.")
    x.flush(), y.flush()
    del x, y


def load_features(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Features (memory-mapped, read-only) and labels from `path`."""
    return np.load(path / "x.npy", mmap_mode="r"), np.load(path / "y.npy")


def sorts_by_length(model: keras.Model) -> bool:
    """Whether `model`'s text batches are sorted by length (`Splits.batches(by_length=)`).

    True for a transformer encoder with dynamic padding, whose cost follows each
    batch's longest text; other models gain nothing from it.
    """
    return bool(getattr(optional_layer(model, BACKBONE), "dynamic_padding", False))


def cached_split(
    model: keras.Model, config: RunConfig, splits: Splits, split: str, copies: int = 0,
    extract: FeatureExtractor | None = None, boundary: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The features of one split, computed once and then read from the cache.

    Args:
        model: the classifier whose feature part computes the features.
        config: the resolved run config (feature settings and cache directory).
        splits: the data.
        split: "train", "val" or "test".
        copies: augmented copies per example (0: none).
        extract: a FeatureExtractor of `model` to reuse across splits.
        boundary: for activations at a backbone layer's input instead of pooled
            features, that layer's name (`extract` must then compute them).

    Returns:
        (features, labels); the features memory-mapped.
    """
    key = cache_key(config, splits, split, copies, model, boundary)
    path = cache_root(config.data.cache_dir) / "features" / key
    what = f"activations at {boundary!r}" if boundary else "features"
    if path.is_dir():
        logger.info("Reusing cached %s %s %s", split, what, path)
    else:
        logger.info("Computing %s %s of %d examples into %s", split, what,
                    splits.size(split), path)
        ds = single_pass(splits.batches(split, config.data, training=False,
                                        by_length=sorts_by_length(model)))
        compute_features(extract or FeatureExtractor(model), ds, path, splits.size(split),
                         copies, config.data.seed, desc=f"{split} {what}",
                         show_progress=config.train.verbose != 0)
    return load_features(path)


def features_dataset(
    x: np.ndarray, y: np.ndarray, batch_size: int, training: bool, seed: int,
    drop_remainder: bool = False, feature_rank: int = 1, in_memory_bytes: int = IN_MEMORY_BYTES,
    lengths: np.ndarray | None = None,
) -> tf.data.Dataset:
    """Batches of cached (features, labels); works for in-memory and memory-mapped arrays.

    With augmented copies (`x` of rank `feature_rank + 2`) every example contributes
    one randomly drawn copy per epoch, as live augmentation would. Arrays up to
    `in_memory_bytes` become one tensor; larger ones are read batch by batch through
    Python. Measured on the head of MobileNet alpha=0.25 (360 examples, 10 epochs,
    2 cores): 0.28 s per 9 epochs read batch by batch, 0.13 s from a tensor.
    With `lengths` (a transformer's cached activations: real tokens per text), the
    examples are sorted by length within windows of `LENGTH_WINDOW` batches, as
    `Splits.batches(by_length=True)` sorts texts, and read by index.
    """
    copies = x.ndim == feature_rank + 2
    if x.nbytes <= in_memory_bytes and lengths is None:
        ds = _tensor_batches(x, y, batch_size, training, seed, drop_remainder, copies)
    else:
        ds = _mapped_batches(x, y, batch_size, training, seed, drop_remainder, copies,
                             list(x.shape[x.ndim - feature_rank:]), lengths)
    return ds.prefetch(tf.data.AUTOTUNE)


def _tensor_batches(x, y, batch_size, training, seed, drop_remainder, copies):
    ds = tf.data.Dataset.from_tensor_slices((np.asarray(x, np.float32), np.asarray(y)))
    if training:
        ds = ds.shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if not copies:
        return ds
    n = x.shape[1]
    draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(
        batch_size, drop_remainder=drop_remainder)

    def one_copy(batch, draw):
        features, labels = batch
        draw = draw[:tf.shape(labels)[0]] % n  # the last batch may be smaller
        return tf.gather(features, draw, axis=1, batch_dims=1), labels

    return tf.data.Dataset.zip(ds, draws).map(one_copy)


def _mapped_batches(x, y, batch_size, training, seed, drop_remainder, copies, shape,
                    lengths=None):
    rng = np.random.default_rng(seed)

    def rows(index):
        index = np.sort(index)  # sequential reads from a memory map
        batch = x[index]
        if copies:
            batch = batch[np.arange(len(index)), rng.integers(0, batch.shape[1], len(index))]
        return np.asarray(batch, np.float32), y[index]

    def load(index):
        features, labels = tf.numpy_function(rows, [index], (tf.float32, tf.int64),
                                             stateful=True)
        features.set_shape([None, *shape])
        labels.set_shape([None])
        return features, labels

    ds = tf.data.Dataset.range(len(y))
    if training:
        ds = ds.shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
    if lengths is None:
        return ds.batch(batch_size, drop_remainder=drop_remainder).map(load)
    keys = tf.constant(np.asarray(lengths), tf.int64)

    def by_length(index):
        return tf.gather(index, tf.argsort(tf.gather(keys, index), stable=True))

    ds = ds.batch(batch_size * LENGTH_WINDOW).map(by_length).unbatch()
    ds = with_batch_count(ds.batch(batch_size, drop_remainder=drop_remainder), len(y),
                          batch_size, drop_remainder)
    if training:
        ds = ds.shuffle(LENGTH_WINDOW, seed=seed, reshuffle_each_iteration=True)
    return ds.map(load)


# Another way to get a split's (features, labels) given its copies; None: not available.
FeatureSource = Callable[[str, int], "tuple[np.ndarray, np.ndarray] | None"]


def head_phase_runner(
    model: keras.Model, config: RunConfig, splits: Splits, source: FeatureSource | None = None
) -> PhaseRunner:
    """A runner for the frozen-backbone phase that trains the head on cached features.

    Features are computed when the runner is called, after the phase has frozen the
    backbone, so augmented copies never touch BatchNorm statistics. `source` may
    provide them another way (`tfxfer.training.boundary.features_via_boundary`); where it
    returns None they are computed here.
    """
    def run(phase, *, initial_epoch, epochs, verbose, callbacks):
        copies = config.train.augmented_copies if has_augmentation(model) else 0
        batch, seed = config.data.batch_size, config.data.seed
        even = tf.distribute.get_strategy().num_replicas_in_sync > 1
        extract = FeatureExtractor(model)

        def features(split: str, n: int):
            found = source(split, n) if source is not None else None
            return found if found is not None else cached_split(
                model, config, splits, split, n, extract)

        train = features_dataset(*features("train", copies), batch, training=True, seed=seed,
                                 drop_remainder=even)
        val = None
        if splits.has_batches("val", config.data, drop_remainder=even):
            val = features_dataset(*features("val", 0), batch, training=False, seed=seed,
                                   drop_remainder=even)
        head = head_model(model)
        compile_for_phase(head, phase, config.train, train)
        history = head.fit(train, validation_data=val, initial_epoch=initial_epoch,
                           epochs=epochs, verbose=verbose, callbacks=callbacks, shuffle=False)
        return history, "cached features" + (f" ({copies} augmented copies)" if copies else "")

    return run
