"""The backbone cut (`feature_layer`), the strategy advisor and `--strategy auto`."""

from __future__ import annotations

import dataclasses
import json
import logging

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import make_image_folder, random_images, spread_backbone_weights, tiny_config

from tfxfer import cli, rundir
from tfxfer.auto.advisor import AdvisorSettings, advise, apply_advice, decide
from tfxfer.auto.probes import ridge_loo_accuracy
from tfxfer.data import load_splits
from tfxfer.experiment import resolve_config, train
from tfxfer.image.backbones import build_backbone, cut_backbone, stage_ends
from tfxfer.image.layers import BackbonePreprocess, FeatureStandardization
from tfxfer.image.model import FEATURE_NORM, build_image_classifier
from tfxfer.serving.export import export_model
from tfxfer.training import bottleneck

CUT = "conv_pw_5_relu"


def _image_settings(config, **changes):
    image = dataclasses.replace(config.model.image, **changes)
    return dataclasses.replace(config, model=dataclasses.replace(config.model, image=image))


def test_cut_model_outputs_the_pooled_intermediate_layer(tmp_path):
    config = _image_settings(tiny_config(tmp_path, tmp_path / "run"), feature_layer=CUT,
                             augment=False).model
    model = spread_backbone_weights(build_image_classifier(config, 3))
    cut = model.get_layer("backbone")
    assert cut.layers[-1].name == CUT and cut.output.shape[-1] == 64

    full = build_backbone("mobilenet", weights=None, image_size=32, alpha=0.25)
    for layer in cut.layers:  # the same weights in an independently built backbone
        if layer.weights:
            full.get_layer(layer.name).set_weights(layer.get_weights())
    intermediate = keras.Model(full.inputs, full.get_layer(CUT).output)
    x = random_images(4)
    pixels = BackbonePreprocess("mobilenet")(keras.ops.cast(x, "float32"))
    expected = np.asarray(intermediate(pixels, training=False)).mean(axis=(1, 2))
    features = np.asarray(bottleneck.feature_model(model)(x, training=False))
    assert np.ptp(expected[:, 0]) > 1e-4  # features depend on the image
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-5)


def test_feature_standardization_uses_the_training_statistics_with_a_variance_floor():
    rng = np.random.default_rng(0)
    features = np.concatenate([rng.normal(5.0, 0.01, (200, 3)), np.zeros((200, 1))], axis=1)
    layer = FeatureStandardization()
    layer.build((None, 4))
    np.testing.assert_allclose(np.asarray(layer(features[:2])), features[:2], rtol=1e-6)  # id
    layer.set_statistics(features)
    out = np.asarray(layer(features))
    np.testing.assert_allclose(out[:, :3].mean(0), 0.0, atol=1e-3)
    np.testing.assert_allclose(out[:, :3].std(0), 1.0, rtol=1e-3)
    # A feature constant on the training data is scaled by the floored variance (1% of
    # the mean variance), not by 1/sqrt(0): a test-time value stays finite and moderate.
    moved = np.asarray(layer(np.array([[5.0, 5.0, 5.0, 0.001]], "float32")))
    floor = 0.01 * features.var(0).mean()
    np.testing.assert_allclose(moved[0, 3], 0.001 / np.sqrt(floor), rtol=1e-3)
    with pytest.raises(ValueError, match="at least one feature vector"):
        layer.set_statistics(np.zeros((0, 4)))


def test_unknown_feature_layer_lists_the_valid_names(tmp_path):
    config = _image_settings(tiny_config(tmp_path, tmp_path / "run"),
                             feature_layer="conv_pw_99").model
    with pytest.raises(ValueError, match="conv_pw_99") as err:
        build_image_classifier(config, 3)
    assert "conv_pw_13_relu" in str(err.value) and "conv_dw_7" in str(err.value)


def test_stage_ends_are_the_last_layer_of_each_resolution():
    backbone = build_backbone("mobilenet", weights=None, image_size=64, alpha=0.25)
    assert stage_ends(backbone) == ["conv_pw_1_relu", "conv_pw_3_relu", "conv_pw_5_relu",
                                    "conv_pw_11_relu", "conv_pw_13_relu"]
    with pytest.raises(ValueError, match="Suggested cuts"):
        cut_backbone(backbone, "nope")


def test_ridge_probe_separates_separable_classes_only():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    separable = rng.normal(0, 1, (60, 8)) + 4 * np.eye(3, 8)[labels]
    assert ridge_loo_accuracy(separable, labels) > 0.95
    assert ridge_loo_accuracy(rng.normal(0, 1, (60, 8)), labels) < 0.6


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("advisor")
    folder = make_image_folder(root / "images", per_class=8)
    config = resolve_config(tiny_config(folder, root / "run", strategy="auto"))
    return config, load_splits(config.data, 32)


# Thresholds that force each quadrant of the matrix on any data.
_LITTLE, _LOTS = {"lots_per_class": 10_000, "few_per_class": 0}, {"lots_per_class": 1}
_CUT_LOTS = {**_LOTS, "cut_above": 0.0}  # any best probe: the cut
_SCRATCH = {**_LOTS, "cut_above": 1.01}  # no probe is good enough: from scratch
_SIMILAR, _DIFFERENT = {"similar_above": 0.0}, {"similar_above": 1.01}


@pytest.mark.parametrize("size, similarity, choice, strategy", [
    (_LITTLE, _SIMILAR, "fine_tune_top", "fine_tune"),
    (_LITTLE, _DIFFERENT, "earlier_layer_cut", "feature_extraction"),
    (_LOTS, _SIMILAR, "fine_tune_all", "fine_tune_all"),
    (_SCRATCH, _DIFFERENT, "from_scratch", "from_scratch"),
    (_CUT_LOTS, _DIFFERENT, "earlier_layer_cut", "feature_extraction"),
])
def test_advise_returns_each_quadrant_when_forced(tiny, size, similarity, choice, strategy):
    config, splits = tiny
    advice = advise(config, splits, AdvisorSettings(**size, **similarity))
    assert (advice.choice, advice.strategy) == (choice, strategy)
    assert advice.probes and advice.reason and advice.seconds > 0
    numbers = [v for v in advice.signals.values() if v is not None]
    assert numbers and all(0.0 <= v <= 1.0 for v in numbers)
    assert advice.signals["bn_similarity"] is None  # measured only when asked for
    applied = apply_advice(config, advice)
    assert applied.train.strategy == strategy
    if choice == "earlier_layer_cut":
        assert advice.feature_layer in stage_ends(
            build_backbone("mobilenet", weights=None, image_size=32, alpha=0.25))[:-1]
        assert applied.model.image.feature_layer == advice.feature_layer
        assert (applied.train.epochs, applied.train.fine_tune_epochs) == (2, 0)
    if choice == "fine_tune_top":  # the top 30% of the 85 layers (the strategy's default)
        assert applied.train.unfreeze_from == advice.unfreeze_from == "conv_pw_9_relu"


def test_lots_of_different_data_is_cut_when_the_best_depth_probes_well():
    signals = {"top_probe": 0.1, "best_probe": 0.7, "top_vs_best": 0.14, "transfer_gain": 0.6}
    layers = ("conv_pw_5_relu", "conv_pw_13_relu")
    assert decide(5000, signals, *layers, AdvisorSettings())[0] == "earlier_layer_cut"
    assert decide(5000, signals, *layers, AdvisorSettings(cut_above=0.8))[0] == "from_scratch"
    with_gain = AdvisorSettings(gain_above=0.25)
    assert decide(5000, signals, *layers, with_gain)[0] == "earlier_layer_cut"
    signals["transfer_gain"] = 0.05
    choice, _, _, reason = decide(5000, signals, *layers, with_gain)
    assert choice == "from_scratch" and "0.05 only" in reason


def test_too_small_data_falls_back_to_feature_extraction(tmp_path, caplog):
    folder = make_image_folder(tmp_path / "images", per_class=1)
    config = resolve_config(tiny_config(folder, tmp_path / "run", strategy="auto"))
    config = dataclasses.replace(
        config, data=dataclasses.replace(config.data, val_fraction=0.0, test_fraction=0.0))
    splits = load_splits(config.data, 32)
    with caplog.at_level(logging.WARNING, logger="tfxfer.auto.advisor"):
        advice = advise(config, splits)
    assert advice.strategy == "feature_extraction" and advice.size == "too_small"
    assert "too few to measure" in caplog.text and "feature extraction" in caplog.text


def test_auto_run_writes_its_advice_and_lr_sweep_into_the_report(tmp_path):
    folder = make_image_folder(tmp_path / "images", per_class=8)
    config = tiny_config(folder, tmp_path / "run", strategy="auto", learning_rate="auto",
                         bottleneck_cache="on")
    config = _image_settings(config, augment=False)
    result = train(config)
    saved = json.loads((result.run_dir / rundir.CONFIG).read_text())
    advice = json.loads((result.run_dir / "advice.json").read_text())
    assert saved["train"]["strategy"] == advice["strategy"] != "auto"
    assert isinstance(saved["train"]["learning_rate"], float)
    assert (result.run_dir / "lr_find.png").stat().st_size > 0
    page = (result.run_dir / "report.html").read_text()
    assert "Strategy advice" in page and "LR finder" in page and advice["reason"][:40] in page


def test_cut_run_caches_exports_and_reloads(tmp_path):
    folder = make_image_folder(tmp_path / "images", per_class=4)
    config = tiny_config(folder, tmp_path / "run", strategy="feature_extraction",
                         bottleneck_cache="on")
    config = _image_settings(config, augment=False, feature_layer=CUT)
    config = dataclasses.replace(
        config, data=dataclasses.replace(config.data, cache_dir=str(tmp_path / "cache")))
    result = train(config)
    assert bottleneck.feature_model(result.model).output.shape[-1] == 64
    # The cut's features are standardised with the statistics of the cached training
    # features, which phase 1 reused: one cache entry each for train and val, no more.
    assert len(list((tmp_path / "cache" / "features").iterdir())) == 2
    train_x, _ = bottleneck.cached_split(result.model, result.config, result.splits, "train")
    norm = result.model.get_layer(FEATURE_NORM)
    np.testing.assert_allclose(np.asarray(norm.mean), train_x.mean(0), rtol=1e-5, atol=1e-30)
    _, reloaded, names = rundir.load_run(result.run_dir)
    x = random_images(3, seed=1)
    expected = result.model.predict(x, verbose=0)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), expected, atol=1e-6)
    exported = export_model(reloaded, names, tmp_path / "saved", "cut", warmup=False)
    served = tf.saved_model.load(str(exported.path)).signatures["serving_pixels"]
    probs = served(images=tf.constant(x))["probabilities"].numpy()
    np.testing.assert_allclose(probs, expected, atol=1e-5)


def test_advise_command_prints_the_decision(tmp_path, capsys):
    folder = make_image_folder(tmp_path / "images", per_class=4)
    code = cli.main(["advise", "--data", str(folder), "--backbone", "mobilenet",
                     "--backbone-arg", "alpha=0.25", "--weights", "none", "--image-size", "32",
                     "--lots-per-class", "1", "--similar-above", "0", "--bn-shift",
                     "--out", str(tmp_path / "advice")])
    out = capsys.readouterr().out
    assert code == 0 and "strategy: fine_tune_all" in out and "top_vs_best" in out
    written = json.loads((tmp_path / "advice" / "advice.json").read_text())
    assert written["size"] == "lots" and 0.0 <= written["signals"]["bn_similarity"] <= 1.0


def test_learning_rate_flag_takes_auto():
    parser = cli.build_parser()
    assert parser.parse_args(["train", "--learning-rate", "auto"]).learning_rate == "auto"
    assert parser.parse_args(["train", "--learning-rate", "0.01"]).learning_rate == 0.01
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--learning-rate", "fast"])
