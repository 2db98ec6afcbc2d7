"""Cheap measurements of how well a pretrained backbone suits a dataset.

One forward pass over a stratified sample of the training split gives:

- **linear probes at several depths**: the pooled features at the end of every
  spatial stage of the backbone (`backbones.stage_ends`) are fitted with a ridge
  classifier, scored by exact leave-one-out accuracy, and normalised to [0, 1]
  (0: no better than guessing the commonest class, 1: perfect). Which depth
  separates the classes best tells how specific the top layers are to the
  pretraining data;
- (when asked for) the same probes on the **same architecture with random
  weights**, so the gain that the pretrained weights bring can be told apart from
  what any deep convolutional feature map gives;
- (when asked for) the **BatchNorm shift**: the mean and variance of each
  BatchNormalization layer's input on the sample against the moving statistics
  the layer stored from its pretraining data (a per-channel Gaussian KL
  divergence, median over channels, mean over layers), as a similarity
  `exp(-KL)` in [0, 1].

`tfxfer.auto.advisor` turns these numbers into a strategy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

from tfxfer.config import RunConfig
from tfxfer.data.splits import Splits, stratified_subset
from tfxfer.image.backbones import build_backbone, get_backbone, stage_ends
from tfxfer.image.layers import BackbonePreprocess
from tfxfer.modality import IMAGE
from tfxfer.training.strategies import walk_layers

logger = logging.getLogger(__name__)

# Ridge penalties tried by the probe, as multiples of the mean kernel diagonal.
_RIDGES = (0.1, 1.0, 10.0)
# Pixels per eager probe call (the batch size is this over the image area, see
# `probe_batch_size`): few large calls, with the activations of one call kept small.
_PROBE_PIXELS = 2 ** 21


@dataclass(frozen=True)
class LayerProbe:
    """The linear probe of one depth.

    Attributes:
        layer: backbone layer name (a stage end).
        depth: position of the layer in the backbone, 0 (input) to 1 (top).
        accuracy: leave-one-out accuracy of the ridge probe.
        score: accuracy normalised to [0, 1] against the majority-class rate.
    """

    layer: str
    depth: float
    accuracy: float
    score: float


@dataclass
class Measurement:
    """What `measure` found on a sample of the training split.

    Attributes:
        examples: size of the sample.
        pretrained: probes of the configured weights, bottom to top.
        random: probes of the same architecture with random weights.
        bn_similarity: exp(-mean BatchNorm KL shift) in [0, 1]; None without BN layers.
        layers: names of all the backbone's layers, bottom to top.
        seconds: wall time of the measurement.
    """

    examples: int
    pretrained: list[LayerProbe]
    random: list[LayerProbe]
    bn_similarity: float | None
    layers: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def best(self) -> LayerProbe:
        """The pretrained depth with the highest score (the shallower one on ties)."""
        return max(self.pretrained, key=lambda p: (round(p.score, 6), -p.depth))


def ridge_loo_accuracy(features: np.ndarray, labels: np.ndarray) -> float:
    """Exact leave-one-out accuracy of a one-vs-all ridge classifier, best of a few penalties.

    Uses the dual form (n x n kernel), so it costs the same for wide features.

    Args:
        features: (n, d) feature vectors.
        labels: (n,) integer labels.

    Returns:
        The accuracy in [0, 1].
    """
    x = np.asarray(features, np.float64)
    std = x.std(0)  # scale-free: random deep networks can pool features of ~1e-17
    x = (x - x.mean(0)) / np.where(std > 0, std, 1.0) / np.sqrt(x.shape[1])
    classes, y = np.unique(labels, return_inverse=True)
    onehot = np.eye(len(classes))[y]
    target = onehot - onehot.mean(0)
    # TensorFlow's linear algebra, not numpy's: multithreaded OpenBLAS LAPACK calls run
    # 10-20x slower than single-threaded ones on a machine loaded with other jobs.
    x_t = tf.constant(x)
    values, vectors = tf.linalg.eigh(tf.matmul(x_t, x_t, transpose_b=True))
    values, vectors = np.maximum(values.numpy(), 0.0), vectors.numpy()
    projected = vectors.T @ target  # the hat matrix U diag(w) U^T is never formed
    squares = vectors ** 2
    best = 0.0
    for ridge in _RIDGES:
        lam = ridge * max(values.sum() / len(y), 1e-12)
        shrink = values / (values + lam)
        fitted = vectors @ (shrink[:, None] * projected)
        leverage = np.clip(squares @ shrink, None, 1 - 1e-9)[:, None]
        loo = (fitted - leverage * target) / (1 - leverage)
        best = max(best, float(np.mean(np.argmax(loo, 1) == y)))
    return best


def normalised(accuracy: float, labels: np.ndarray) -> float:
    """`accuracy` rescaled so the majority-class rate is 0 and perfect is 1 (clipped)."""
    base = np.bincount(labels).max() / len(labels)
    return float(np.clip((accuracy - base) / max(1 - base, 1e-9), 0.0, 1.0))


def sample_batches(
    config: RunConfig, splits: Splits, per_class: int, max_examples: int,
    batch_size: int | None = None,
) -> tuple[tf.data.Dataset, np.ndarray]:
    """A stratified sample of the training split, decoded and batched, and its labels.

    Batches hold `batch_size` examples (default: the run's `data.batch_size`).
    """
    labels = splits.labels["train"]
    per_class_cap = per_class * len(splits.class_names)
    size = min(max_examples, per_class_cap, len(labels))
    keep = stratified_subset(np.arange(len(labels)), labels, size, config.data.seed)
    mask = np.zeros(len(labels), bool)
    mask[keep] = True
    mask_t = tf.constant(mask)

    def kept(index, example):
        return tf.gather(mask_t, index)

    def drop_index(index, example):
        return example

    ds = splits.raw["train"].enumerate().filter(kept).map(drop_index)
    if splits.decode is not None:
        ds = ds.map(splits.decode, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size or config.data.batch_size).prefetch(2), labels[keep]


def _probe_model(
    config: RunConfig, weights: str | None, with_bn: bool
) -> tuple[keras.Model, list[tuple[str, float]], int, list[keras.layers.Layer], list[str]]:
    """uint8 images -> pooled features at every stage end [+ per-example BN input moments]."""
    model = config.model.section(IMAGE)
    spec = get_backbone(model.backbone)
    backbone = build_backbone(spec.name, weights=weights, image_size=model.image_size,
                              **model.backbone_kwargs)
    names = stage_ends(backbone)
    bns = [layer for layer in walk_layers(backbone)
           if isinstance(layer, keras.layers.BatchNormalization)
           and len(layer.input.shape) == 4] if with_bn else []
    inner = keras.Model(backbone.inputs,
                        [backbone.get_layer(n).output for n in names]
                        + [bn.input for bn in bns])
    inputs = keras.Input((None, None, 3), dtype="uint8")
    x = keras.layers.Resizing(model.image_size, model.image_size)(inputs)
    x = BackbonePreprocess(spec.name)(x)
    outs = inner(x, training=False)
    outs = outs if isinstance(outs, list) else [outs]
    pooled = [keras.ops.mean(o, axis=(1, 2)) for o in outs[:len(names)]]
    moments = [keras.ops.mean(o, axis=(1, 2)) for o in outs[len(names):]]
    squares = [keras.ops.mean(keras.ops.square(o), axis=(1, 2)) for o in outs[len(names):]]
    probe = keras.Model(inputs, [*pooled, *moments, *squares])
    depths = {layer.name: i for i, layer in enumerate(backbone.layers)}
    positions = [depths[n] / (len(backbone.layers) - 1) for n in names]
    layers = [layer.name for layer in backbone.layers]
    return probe, list(zip(names, positions)), len(names), bns, layers


def probe_batch_size(image_size: int, batch_size: int) -> int:
    """Images per eager probe call: about 2M pixels, at least `batch_size`."""
    return max(batch_size, _PROBE_PIXELS // image_size ** 2)


def _forward(probe: keras.Model, ds: tf.data.Dataset) -> list[np.ndarray]:
    """The probe's outputs on every batch of `ds`, run eagerly.

    On a sample of a few hundred images, tracing a graph and optimising it on its
    first call cost two to three times the forward pass itself (bench/advisor.py's
    tasks: 0.38 s traced against 0.13 s eager in batches of 256, 340 digits at 32 px).
    """
    chunks = [[np.asarray(o) for o in probe(images, training=False)] for images, _ in ds]
    return [np.concatenate(parts) for parts in zip(*chunks)]


def bn_kl_shift(
    bns: list[keras.layers.BatchNormalization], means: list[np.ndarray],
    squares: list[np.ndarray],
) -> float:
    """Mean over BN layers of the median per-channel KL(target || stored statistics)."""
    shifts = []
    for bn, mean, square in zip(bns, means, squares):
        mu_t = mean.mean(0)
        var_t = np.maximum(square.mean(0) - mu_t ** 2, 0.0) + 1e-3
        mu_s = np.asarray(bn.moving_mean)
        var_s = np.asarray(bn.moving_variance) + 1e-3
        kl = 0.5 * (var_t / var_s + (mu_t - mu_s) ** 2 / var_s - 1 - np.log(var_t / var_s))
        shifts.append(float(np.median(kl)))
    return float(np.mean(shifts))


def _probes(
    features: list[np.ndarray], positions: list[tuple[str, float]], labels: np.ndarray
) -> list[LayerProbe]:
    result = []
    for (name, depth), x in zip(positions, features):
        accuracy = ridge_loo_accuracy(x, labels)
        result.append(LayerProbe(name, round(depth, 3), accuracy, normalised(accuracy, labels)))
    return result


def measure(
    config: RunConfig, splits: Splits, per_class: int = 40, max_examples: int = 800,
    random: bool = True, bn_shift: bool = True,
) -> Measurement:
    """Probes the backbone of `config` on a sample of `splits`.

    Args:
        config: a resolved run config (image size set).
        splits: image data; the training split is sampled.
        per_class: sample at most this many examples per class...
        max_examples: ...and at most this many in all.
        random: also probe the architecture with random weights (a second
            backbone and forward pass; `Measurement.random` is empty otherwise).
        bn_shift: also measure the BatchNorm shift (`Measurement.bn_similarity` is
            None otherwise).

    Returns:
        The Measurement, with its wall time.
    """
    import time

    start = time.perf_counter()
    image = config.model.section(IMAGE)
    batch = probe_batch_size(image.image_size, config.data.batch_size)
    ds, labels = sample_batches(config, splits, per_class, max_examples, batch)
    probe, positions, k, bns, layers = _probe_model(config, image.weights, with_bn=bn_shift)
    outs = _forward(probe, ds)
    pretrained = _probes(outs[:k], positions, labels)
    bn = None
    if bns:
        means, squares = outs[k:k + len(bns)], outs[k + len(bns):]
        bn = float(np.exp(-bn_kl_shift(bns, means, squares)))
    random_probes = []
    if random:
        random_model, positions, k, _, _ = _probe_model(config, None, with_bn=False)
        random_probes = _probes(_forward(random_model, ds)[:k], positions, labels)
    seconds = time.perf_counter() - start
    logger.info("Measured %d examples in %.1f s: probes %s, random %s, BN similarity %s",
                len(labels), seconds, [round(p.score, 3) for p in pretrained],
                [round(p.score, 3) for p in random_probes], bn)
    return Measurement(len(labels), pretrained, random_probes, bn, layers, seconds)
