import keras
import numpy as np
import pytest
from conftest import random_images

from tfxfer.config import ImageConfig, ModelConfig, TrainConfig
from tfxfer.image.model import build_image_classifier
from tfxfer.training.strategies import Phase, backbone_of, plan_phases, set_phase_trainable

CONFIG = ModelConfig(image=ImageConfig(backbone="mobilenet", weights=None, image_size=32,
                                 backbone_kwargs={"alpha": 0.25}, augment=False))


@pytest.fixture(scope="module")
def model():
    return build_image_classifier(CONFIG, num_classes=3)


def _bn_layers(model):
    return [x for x in backbone_of(model).layers if isinstance(x, keras.layers.BatchNormalization)]


def test_plan_phases_per_strategy():
    train = TrainConfig(epochs=3, fine_tune_epochs=2, learning_rate=1e-3)
    plans = {s: plan_phases(TrainConfig(**{**train.__dict__, "strategy": s}))
             for s in ("feature_extraction", "fine_tune", "fine_tune_all", "from_scratch")}
    assert plans["feature_extraction"] == [Phase("head", 3, 1e-3, "none")]
    assert plans["fine_tune"] == [Phase("head", 3, 1e-3, "none"),
                                  Phase("fine_tune", 2, pytest.approx(1e-4), "top")]
    assert [p.unfreeze for p in plans["fine_tune_all"]] == ["none", "all"]
    assert plans["from_scratch"] == [Phase("scratch", 5, 1e-3, "everything")]


def test_head_phase_trains_only_the_head(model):
    set_phase_trainable(model, Phase("head", 1, 1e-3, "none"), TrainConfig())
    assert [w.path for w in model.trainable_weights] == ["predictions/kernel", "predictions/bias"]


def test_fine_tune_top_layers_by_count_keeps_bn_frozen(model):
    train = TrainConfig(unfreeze_layers=6)
    set_phase_trainable(model, Phase("fine_tune", 1, 1e-4, "top"), train)
    layers = [x for x in backbone_of(model).layers if not isinstance(x, keras.layers.InputLayer)]
    top = layers[-6:]
    bn = keras.layers.BatchNormalization
    assert all(layer.trainable for layer in top if not isinstance(layer, bn))
    assert not any(layer.trainable for layer in layers[:-6])
    assert not any(layer.trainable for layer in _bn_layers(model))
    # conv_dw_13, conv_pw_13 kernels (their BN stays frozen) + the head's kernel and bias
    assert len(model.trainable_weights) == 4


def test_fine_tune_from_named_layer(model):
    set_phase_trainable(model, Phase("fine_tune", 1, 1e-4, "top"),
                        TrainConfig(unfreeze_from="conv_dw_13"))
    names = {w.path.split("/")[0] for w in model.trainable_weights}
    assert names == {"conv_dw_13", "conv_pw_13", "predictions"}


def test_fine_tune_fraction_unfreezes_more_than_count(model):
    set_phase_trainable(model, Phase("fine_tune", 1, 1e-4, "top"),
                        TrainConfig(unfreeze_fraction=0.5))
    half = len(model.trainable_weights)
    set_phase_trainable(model, Phase("fine_tune", 1, 1e-4, "all"), TrainConfig())
    everything_but_bn = len(model.trainable_weights)
    assert 4 < half < everything_but_bn
    assert not any(layer.trainable for layer in _bn_layers(model))


def test_unknown_unfreeze_layer_is_named(model):
    with pytest.raises(ValueError, match="unfreeze_from='conv_99' is not a layer"):
        set_phase_trainable(model, Phase("fine_tune", 1, 1e-4, "top"),
                            TrainConfig(unfreeze_from="conv_99"))


def test_from_scratch_trains_everything_including_bn(model):
    set_phase_trainable(model, Phase("scratch", 1, 1e-3, "everything"), TrainConfig())
    assert all(layer.trainable for layer in _bn_layers(model))
    assert len(model.trainable_weights) == len(model.weights) - 2 * len(_bn_layers(model))


def _bn_stats(model):
    return [np.array(v) for b in _bn_layers(model) for v in (b.moving_mean, b.moving_variance)]


def _fit_one_epoch(model, phase, train):
    set_phase_trainable(model, phase, train)
    model.compile(keras.optimizers.Adam(phase.learning_rate), "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    images = random_images(8)
    model.fit(images, rng.integers(0, 3, 8), batch_size=4, epochs=1, verbose=0)


@pytest.mark.parametrize("unfreeze", ["top", "all"])
def test_bn_moving_statistics_do_not_change_in_phase_2(unfreeze):
    model = build_image_classifier(CONFIG, num_classes=3)
    before = _bn_stats(model)
    weights_before = [np.array(w) for w in backbone_of(model).trainable_weights]
    _fit_one_epoch(model, Phase("fine_tune", 1, 1e-2, unfreeze), TrainConfig())
    for a, b in zip(before, _bn_stats(model)):
        np.testing.assert_array_equal(a, b)
    # ...while the unfrozen convolutions did move.
    assert any(not np.array_equal(a, np.array(b))
               for a, b in zip(weights_before, backbone_of(model).trainable_weights))


def test_bn_moving_statistics_change_when_training_from_scratch():
    model = build_image_classifier(CONFIG, num_classes=3, from_scratch=True)
    before = _bn_stats(model)
    _fit_one_epoch(model, Phase("scratch", 1, 1e-3, "everything"), TrainConfig())
    assert any(not np.array_equal(a, b) for a, b in zip(before, _bn_stats(model)))
