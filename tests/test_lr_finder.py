"""The LR finder: a suggestion near a known good rate, and weights left as they were."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfxfer.auto.lr_finder import lr_sweep, plot_lr_find, steepest_descent, suggest_learning_rate

_STEPS = 60


def _problem(seed=0):
    """Four Gaussian blobs in 16 dimensions, and a softmax classifier with one hidden layer."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, 1024)
    centres = rng.normal(0, 1, (4, 16))
    x = (centres[labels] + rng.normal(0, 1.0, (1024, 16))).astype("float32")
    return tf.data.Dataset.from_tensor_slices((x, labels)).shuffle(1024, seed=seed).batch(32)


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((16,)), keras.layers.Dense(16, activation="relu"),
                             keras.layers.Dense(4, activation="softmax")])


def _loss_after_training(rate: float) -> float:
    model = _model()
    model.compile(optimizer=keras.optimizers.Adam(rate), loss="sparse_categorical_crossentropy")
    ds = _problem()
    model.fit(ds.repeat().take(_STEPS), verbose=0)
    return float(model.evaluate(ds, verbose=0))


@pytest.fixture(scope="module")
def known_good_rate() -> float:
    """The rate of a grid (factor ~3 apart) with the lowest loss after _STEPS steps of Adam."""
    grid = [1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0]
    losses = [_loss_after_training(rate) for rate in grid]
    return grid[int(np.nanargmin(losses))]


def test_suggestion_is_within_10x_of_a_known_good_rate(known_good_rate, tmp_path):
    model = _model(seed=1)
    result = lr_sweep(model, _problem(seed=1), steps=100)
    assert known_good_rate / 10 <= result.suggestion <= known_good_rate * 10, (
        result.suggestion, known_good_rate)
    assert result.stopped_early  # the sweep ran into divergence and stopped there
    assert plot_lr_find(result, tmp_path / "lr.png").stat().st_size > 0


def test_sweep_leaves_the_weights_as_they_were():
    model = _model(seed=2)
    before = [np.array(w) for w in model.get_weights()]
    lr_sweep(model, _problem(seed=2), steps=30)
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_suggestion_is_a_tenth_of_the_minimum_and_steepest_is_before_it():
    rates = np.logspace(-6, 0, 61)
    losses = 2.0 - np.tanh(3 * (np.log10(rates) + 3))  # steepest at 1e-3, then flat
    losses[50:] += np.linspace(0, 5, 11)  # minimum at 1e-1, then diverges
    assert steepest_descent(rates, losses) == pytest.approx(1e-3, rel=0.3)
    assert suggest_learning_rate(rates, losses) == pytest.approx(rates[np.argmin(losses)] / 10)


def test_bad_sweep_arguments_are_refused():
    with pytest.raises(ValueError, match="min_lr"):
        lr_sweep(_model(), _problem(), min_lr=1.0, max_lr=0.1)
