"""The bound's label-free terms: proxy A-distance and the score of a classifier."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfxfer.adaptation.bound import bound_score, proxy_a_distance


def test_proxy_a_distance_is_near_zero_for_one_distribution_and_near_two_for_two():
    rng = np.random.default_rng(0)
    same, _ = proxy_a_distance(rng.normal(size=(400, 8)), rng.normal(size=(400, 8)))
    apart, error = proxy_a_distance(rng.normal(size=(400, 8)),
                                    rng.normal(size=(400, 8)) + 3.0)
    assert same < 0.3 and apart > 1.9 and error < 0.02


@pytest.mark.parametrize("source, target, match", [
    (np.zeros((1, 3)), np.zeros((5, 3)), ">= 2 rows per domain"),
    (np.zeros((5, 3)), np.zeros((5, 4)), "differ in width: 3 vs 4"),
])
def test_proxy_a_distance_names_bad_samples(source, target, match):
    with pytest.raises(ValueError, match=match):
        proxy_a_distance(source, target)


def _classifier() -> keras.Model:
    inputs = keras.Input((4, 4, 1))
    hidden = keras.layers.Dense(3, name="hidden")(keras.layers.Flatten()(inputs))
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax",
                                                  name="predictions")(hidden))


def test_bound_score_adds_source_error_and_half_the_distance_and_ignores_target_labels():
    keras.utils.set_random_seed(0)
    model = _classifier()
    rng = np.random.default_rng(1)
    images = rng.normal(size=(300, 4, 4, 1)).astype("float32")
    labels = rng.integers(0, 2, 300)
    source = tf.data.Dataset.from_tensor_slices((images, labels)).batch(64)
    shifted = images + 4.0
    score = bound_score(model, source, tf.data.Dataset.from_tensor_slices(shifted).batch(64),
                        limit=250)
    wrong = np.mean(np.argmax(model.predict(images[:250], verbose=0), -1) != labels[:250])
    assert score.source_error == pytest.approx(wrong)
    assert score.score == pytest.approx(score.source_error + score.pad / 2)
    assert score.pad > 1.5 and (score.source_examples, score.target_examples) == (250, 250)
    labelled = tf.data.Dataset.from_tensor_slices((shifted, 1 - labels)).batch(64)
    assert bound_score(model, source, labelled, limit=250) == score
    near = bound_score(model, source, tf.data.Dataset.from_tensor_slices(
        rng.normal(size=(300, 4, 4, 1)).astype("float32")).batch(64), limit=250)
    assert near.pad < 0.5 < score.pad
