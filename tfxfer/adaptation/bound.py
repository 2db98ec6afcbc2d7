"""Comparing adapted classifiers without target labels, by the terms of DANN's bound.

Ben-David et al. (2010), the theory DANN rests on (Ganin et al., JMLR 2016, section
3): a classifier's target error is at most its source error plus half the
divergence between the source and target distributions of the representation it
classifies, plus a term that no adaptation controls. Both measurable terms need no
target label:

    source error        on the labelled source validation split
    proxy A-distance    PAD = 2 (1 - 2 ε), ε the held-out error of a fresh linear
                        domain classifier on the representations of source and target
                        samples (Ben-David et al. 2007; Ganin et al. 2016 report it too)

    score = source error + PAD / 2           (lower is better)

The representation is the input of the classifier's last layer (the head's hidden
layer, or the pooled features without one), whatever layer the domain head read
during training, so that runs adapted on different layers are compared on the
same footing. The score ranks candidate adaptations of one pair, e.g. which layer
the domain classifier reads (`apps/digits/run.py --adaptation-features bound`);
as a bound it is loose, and it is not used to decide whether to adapt at all.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from tfxfer.image.model import PREDICTIONS

# A linear domain classifier: full-batch gradient descent on the logistic loss.
_STEPS, _STEP_SIZE, _L2 = 500, 0.5, 1e-3


@dataclass(frozen=True)
class BoundScore:
    """The label-free terms of the bound for one classifier (lower `score` is better).

    Attributes:
        source_error: error on the source validation examples.
        pad: proxy A-distance between source and target representations, in [0, 2]
            (clipped at 0 when the domain classifier is worse than chance).
        domain_error: held-out error of the linear domain classifier behind `pad`.
        score: source_error + pad / 2.
        source_examples: source validation examples used.
        target_examples: unlabelled target examples used.
    """

    source_error: float
    pad: float
    domain_error: float
    score: float
    source_examples: int
    target_examples: int

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _standardised(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-6)


def _logistic_fit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    w, b = np.zeros(x.shape[1]), 0.0
    for _ in range(_STEPS):
        p = 1.0 / (1.0 + np.exp(-(x @ w + b)))
        g = p - y
        w -= _STEP_SIZE * (x.T @ g / len(y) + _L2 * w)
        b -= _STEP_SIZE * float(g.mean())
    return w, b


def proxy_a_distance(source: np.ndarray, target: np.ndarray, seed: int = 0,
                     ) -> tuple[float, float]:
    """PAD between two samples of representations, and the domain classifier's error.

    Half of each sample trains a linear (logistic) domain classifier, the other half
    measures its error ε; PAD = 2 (1 - 2 ε), clipped to [0, 2].

    Raises:
        ValueError: a sample has fewer than 2 rows, or the widths differ.
    """
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    source, target = source.reshape(len(source), -1), target.reshape(len(target), -1)
    if len(source) < 2 or len(target) < 2:
        raise ValueError(f"proxy_a_distance needs >= 2 rows per domain; received "
                         f"{len(source)} source and {len(target)} target rows.")
    if source.shape[1] != target.shape[1]:
        raise ValueError(f"Source and target representations differ in width: "
                         f"{source.shape[1]} vs {target.shape[1]}.")
    x = _standardised(np.concatenate([source, target]))
    y = np.r_[np.zeros(len(source)), np.ones(len(target))]
    rng = np.random.default_rng(seed)
    train = np.zeros(len(y), bool)
    for domain in (0, 1):  # half of each domain trains, the other half tests
        rows = rng.permutation(np.flatnonzero(y == domain))
        train[rows[: len(rows) // 2]] = True
    w, b = _logistic_fit(x[train], y[train])
    error = float(np.mean(((x[~train] @ w + b) > 0) != y[~train]))
    return float(np.clip(2.0 * (1.0 - 2.0 * error), 0.0, 2.0)), error


def representation_model(classifier: keras.Model) -> keras.Model:
    """The classifier up to its last layer's input: the representation it classifies."""
    return keras.Model(classifier.inputs, classifier.get_layer(PREDICTIONS).input)


def _take(ds: tf.data.Dataset, limit: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Up to `limit` examples of batched images or (images, labels)."""
    images, labels, seen = [], [], 0
    for batch in ds:
        x, y = batch if isinstance(batch, tuple) else (batch, None)
        images.append(x.numpy())
        if y is not None:
            labels.append(y.numpy())
        seen += len(images[-1])
        if seen >= limit:
            break
    if not images:
        raise ValueError("bound_score received an empty dataset.")
    return (np.concatenate(images)[:limit],
            np.concatenate(labels)[:limit] if labels else None)


def bound_score(classifier: keras.Model, source_val: tf.data.Dataset,
                target: tf.data.Dataset, limit: int = 1000, seed: int = 0) -> BoundScore:
    """The bound's label-free terms for `classifier`.

    Args:
        classifier: a trained tfxfer classifier (raw images in, class probabilities out).
        source_val: batched (images, labels) of the labelled source validation split.
        target: batched unlabelled target images (labels, if present, are ignored).
        limit: examples taken from each domain.
        seed: the split of the domain classifier's samples.
    """
    source_images, source_labels = _take(source_val, limit)
    if source_labels is None:
        raise ValueError("bound_score needs labelled source validation batches (images, labels).")
    target_images, _ = _take(target, limit)
    represent = representation_model(classifier)
    probabilities = classifier.predict(source_images, verbose=0)
    source_error = float(np.mean(np.argmax(probabilities, axis=-1) != source_labels))
    pad, domain_error = proxy_a_distance(represent.predict(source_images, verbose=0),
                                         represent.predict(target_images, verbose=0), seed)
    return BoundScore(source_error, pad, domain_error, source_error + pad / 2,
                      len(source_images), len(target_images))
