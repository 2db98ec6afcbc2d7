"""Domain-adversarial training: gradient reversal, schedules, domain head, runs, export."""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
import re
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from adaptation_helpers import SIZE, dann_config, digit_like, write_domain
from PIL import Image

from tfxfer import cli, rundir
from tfxfer.adaptation import (
    AdaptationSchedule,
    DomainAdversarialModel,
    GradientReversal,
    annealed_learning_rate,
    grl_lambda,
    scan_target_images,
)
from tfxfer.adaptation.data import mixed_batches
from tfxfer.adaptation.model import domain_adversarial_model
from tfxfer.config import ImageConfig, ModelConfig, load_config
from tfxfer.experiment import train
from tfxfer.image.model import build_image_classifier
from tfxfer.reports.adaptation import FEATURES_FILE

# --- gradient reversal and schedules ---------------------------------------------------

def test_reversed_gradient_is_minus_lambda_times_the_numeric_identity_gradient():
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(3, 5)), tf.float64)
    weights = tf.constant(rng.normal(size=(3, 5)), tf.float64)
    layer = GradientReversal(0.7, dtype="float64")

    def loss(inputs):
        return tf.reduce_sum(weights * inputs ** 2)

    with tf.GradientTape() as tape:
        tape.watch(x)
        value = loss(layer(x))
    reversed_grad = tape.gradient(value, x).numpy()
    # Central differences of the same loss through the identity.
    eps = 1e-6
    numeric = np.zeros(x.shape)
    for idx in np.ndindex(*x.shape):
        step = np.zeros(x.shape)
        step[idx] = eps
        numeric[idx] = (loss(x + step) - loss(x - step)).numpy() / (2 * eps)
    np.testing.assert_allclose(reversed_grad, -0.7 * numeric, rtol=1e-6)
    np.testing.assert_array_equal(layer(x).numpy(), x.numpy())  # identity forward


def test_lambda_and_learning_rate_follow_the_papers_schedules():
    assert grl_lambda(0.0) == 0.0
    assert grl_lambda(0.5) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    assert grl_lambda(1.0) == pytest.approx(1.0, abs=1e-4)
    values = [grl_lambda(p / 10) for p in range(11)]
    assert values == sorted(values)
    assert grl_lambda(0.5, maximum=0.3) == pytest.approx(0.3 * grl_lambda(0.5))
    assert annealed_learning_rate(0.0, 0.01) == 0.01
    assert annealed_learning_rate(1.0, 0.01) == pytest.approx(0.01 / 11 ** 0.75)


def test_schedule_sets_lambda_before_every_batch():
    reversal = GradientReversal(0.0)
    seen = []

    class Probe(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(float(reversal.lambda_.numpy()))

    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(1)(reversal(inputs)))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    schedule = AdaptationSchedule(reversal, total_steps=8, eta0=0.1)
    history = model.fit(np.ones((8, 2)), np.ones((8, 1)), batch_size=2, epochs=2, verbose=0,
                        callbacks=[schedule, Probe()])
    assert seen == pytest.approx([grl_lambda(s / 8) for s in range(8)], abs=1e-6)
    assert history.history["lambda"] == pytest.approx([grl_lambda(3 / 8), grl_lambda(7 / 8)],
                                                      abs=1e-6)
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(
        annealed_learning_rate(7 / 8, 0.1))


def test_reversal_layer_saves_and_loads_in_keras_format(tmp_path):
    inputs = keras.Input((4,))
    reversal = GradientReversal(0.25, name="reverse")
    model = keras.Model(inputs, keras.layers.Dense(2)(reversal(inputs)))
    reversal.lambda_.assign(0.6)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    layer = loaded.get_layer("reverse")
    assert isinstance(layer, GradientReversal)
    assert float(layer.lambda_.numpy()) == pytest.approx(0.6)
    assert layer.get_config()["lambda_"] == 0.25
    x = np.random.default_rng(0).normal(size=(3, 4)).astype("float32")
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)


# --- the domain head --------------------------------------------------------------------

def test_domain_head_learns_the_domains_when_lambda_is_zero(domains):
    keras.utils.set_random_seed(0)
    config = ModelConfig(image=ImageConfig(backbone="dann_mnist_cnn", weights=None,
                                           augment=False, image_size=SIZE))
    model = DomainAdversarialModel(build_image_classifier(config, 3, from_scratch=True), 16)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 64)
    source = np.stack([digit_like(rng, int(y), False) for y in labels])
    target = np.stack([digit_like(rng, int(y), True) for y in labels])
    ds = mixed_batches(tf.data.Dataset.from_tensor_slices((source, labels)).batch(16),
                       tf.data.Dataset.from_tensor_slices(target).batch(16).repeat())
    assert float(model.reversal.lambda_.numpy()) == 0.0
    history = model.fit(ds, epochs=6, verbose=0).history
    assert history["domain_loss"][-1] < 0.5 * history["domain_loss"][0]
    assert history["domain_accuracy"][-1] > 0.9
    assert "val_domain_loss" not in history


@pytest.mark.parametrize("features, width", [("pooling", 768), ("hidden", 7)])
def test_domain_head_reads_the_features_the_config_names(features, width):
    config = ModelConfig(hidden_units=7, image=ImageConfig(
        backbone="dann_mnist_cnn", weights=None, augment=False, image_size=SIZE))
    classifier = build_image_classifier(config, 3, from_scratch=True)
    adaptation = dataclasses.replace(load_config().adaptation, features=features)
    model = domain_adversarial_model(classifier, adaptation)
    assert model.domain_head.layers[0].kernel.shape[0] == width
    features_out, _ = model.extractor(np.zeros((2, SIZE, SIZE, 3), np.uint8))
    assert features_out.shape == (2, width)


@pytest.mark.parametrize("overrides, message", [
    ({"adaptation": {"features": "logits"}},
     "adaptation.features must be one of ['pooling', 'hidden', 'auto']"),
    ({"adaptation": {"features": "hidden"}, "model": {"hidden_units": 0}},
     "model.hidden_units is 0"),
])
def test_bad_adaptation_features_are_named(overrides, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        load_config(overrides=overrides)


# --- runs -------------------------------------------------------------------------------

def test_dann_run_logs_the_adaptation_columns_and_saves_the_classifier(domains, tmp_path,
                                                                        caplog):
    with caplog.at_level(logging.INFO, logger="tfxfer"):
        result = train(dann_config(domains, tmp_path / "run", tensorboard=True))
    assert (result.run_dir / "tensorboard").is_dir()
    rows = list(csv.DictReader((result.run_dir / rundir.HISTORY).open()))
    assert [r["phase"] for r in rows] == ["scratch", "scratch"]
    for key in ("val_accuracy", "target_accuracy", "domain_accuracy", "domain_loss", "lambda"):
        assert all(r[key] != "" for r in rows), key
    assert 0 < float(rows[0]["lambda"]) < float(rows[1]["lambda"]) < 1
    features = np.load(result.run_dir / FEATURES_FILE)
    assert {"source_before", "target_before", "source_after", "target_after"} <= set(features)
    assert features["target_after"].shape == (12, 768)
    assert (result.run_dir / "adaptation.png").is_file()
    assert (result.run_dir / "feature_projection.png").is_file()
    assert "Domain adaptation" in (result.run_dir / "report.html").read_text()
    loaded = keras.models.load_model(result.run_dir / rundir.MODEL)
    assert not any(isinstance(layer, GradientReversal) for layer in loaded.layers)
    assert len(loaded.outputs) == 1 and loaded.output_shape == (None, 3)
    assert "labels are ignored" not in caplog.text  # the flat target folder has no labels


def test_pretrained_registry_backbone_runs_two_adversarial_phases_and_exports(domains,
                                                                               tmp_path):
    """A weights file counts as pretrained: the head phase, then fine-tuning, both DANN."""
    from tfxfer.image.backbones import build_backbone
    from tfxfer.serving import client
    from tfxfer.serving.export import export_run

    weights = tmp_path / "mobilenet.weights.h5"
    build_backbone("mobilenet", weights=None, image_size=32, alpha=0.25).save_weights(weights)
    config = dann_config(domains, tmp_path / "run", epochs=1, fine_tune_epochs=1)
    config.model.image = dataclasses.replace(
        config.model.image, backbone="mobilenet", weights=str(weights), image_size=32,
        backbone_kwargs={"alpha": 0.25})
    result = train(config)
    rows = list(csv.DictReader((result.run_dir / rundir.HISTORY).open()))
    assert [r["phase"] for r in rows] == ["head", "fine_tune"]
    assert 0 < float(rows[0]["lambda"]) < float(rows[1]["lambda"])  # one schedule over both
    assert float(rows[1]["learning_rate"]) < float(rows[0]["learning_rate"])

    exported = export_run(result.run_dir, tmp_path / "models", "digits")
    loaded = tf.saved_model.load(str(exported.path))
    for signature in loaded.signatures.values():
        assert not any("domain" in key for key in signature.structured_outputs)
    files = sorted((domains["target_test"] / "1").glob("*.png"))[:2]
    rows = client.predict_local(exported.path, [f.read_bytes() for f in files])
    assert len(rows) == 2 and all(len(r["probabilities"]) == 3 for r in rows)
    images = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
    expected = result.model(images, training=False).numpy()
    np.testing.assert_allclose([r["probabilities"] for r in rows], expected, atol=1e-5)


def test_labelled_target_folder_is_accepted_and_its_labels_ignored(domains, caplog):
    with caplog.at_level(logging.INFO, logger="tfxfer.adaptation"):
        target = scan_target_images(domains["target_test"])
    assert len(target.paths) == 12 and target.had_labels
    assert "labels) are ignored" in caplog.text


@pytest.mark.parametrize("case, error, message", [
    ("missing", FileNotFoundError, r"--target-data .*not found: .*missing"),
    ("empty", ValueError, r"--target-data .*empty holds no image files"),
    ("not_images", ValueError, r"--target-data .*none of its 2 image files decodes"),
    ("a_file", ValueError, r"--target-data .*must be a folder"),
])
def test_bad_target_data_is_a_clear_error(tmp_path, case, error, message):
    path = tmp_path / case
    if case == "empty":
        path.mkdir()
    elif case == "not_images":
        path.mkdir()
        (path / "a.png").write_bytes(b"not a png")
        (path / "b.jpg").write_bytes(b"")
    elif case == "a_file":
        path.write_text("x")
    with pytest.raises(error, match=message):
        scan_target_images(path)


def test_cli_names_bad_target_data_and_missing_target(domains, tmp_path, caplog):
    flags = ["train", "--data", str(domains["source"]), "--backbone", "dann_mnist_cnn",
             "--weights", "none", "--strategy", "domain_adaptation", "--no-augment",
             "--out", str(tmp_path / "run")]
    assert cli.main([*flags, "--target-data", str(tmp_path / "nowhere")]) == 2
    assert "--target-data (adaptation.target_source) not found" in caplog.text
    assert cli.main(flags) == 2
    assert "needs unlabelled target images: set --target-data" in caplog.text
    with pytest.raises(ValueError, match="used by --strategy domain_adaptation only"):
        load_config(overrides={"adaptation": {"target_source": str(domains["target"])}})


def test_dann_trains_under_a_mirrored_strategy(domains, tmp_path):
    script = textwrap.dedent(f"""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import sys; sys.path.insert(0, {str(__file__.rsplit('/', 1)[0])!r})
        from pathlib import Path
        from adaptation_helpers import dann_config
        domains = {{k: Path(v) for k, v in {({k: str(v) for k, v in domains.items()})!r}.items()}}
        config = dann_config(domains, {str(tmp_path / "run")!r}, distribute="mirrored",
                             epochs=1)
        from tfxfer.experiment import train
        result = train(config)
        print("replicas", result.model.distribute_strategy.num_replicas_in_sync)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "replicas 2" in done.stdout
    rows = list(csv.DictReader((tmp_path / "run" / rundir.HISTORY).open()))
    assert len(rows) == 1 and 0 <= float(rows[0]["domain_accuracy"]) <= 1


# --- MNIST-M ------------------------------------------------------------------------------

def test_blend_is_the_absolute_difference_of_crop_and_digit():
    from tfxfer.adaptation.digits import blend_with_photos

    photo = np.zeros((40, 50, 3), np.uint8) + np.array([10, 200, 30], np.uint8)
    digits = np.zeros((2, 28, 28), np.uint8)
    digits[:, 10:20, 12:16] = 255
    out = blend_with_photos(digits, [photo], seed=3)
    assert out.shape == (2, 28, 28, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:, 0, 0], [[10, 200, 30]] * 2)  # background: the crop
    np.testing.assert_array_equal(out[:, 15, 13], [[245, 55, 225]] * 2)  # ink: |crop - 255|


def test_build_mnist_m_is_deterministic_and_uses_disjoint_digits(tmp_path):
    from tfxfer.adaptation.digits import build_mnist_m, digit_partition

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (60, 28, 28), dtype=np.uint8)
    np.savez(tmp_path / "mnist.npz", x=x, y=np.arange(60) % 3)
    for i in range(2):
        write_domain(tmp_path / "photos", 1, True, i, flat=True)  # any colour images
    outs = []
    for name in ("a", "b"):
        assert cli.main(["build-mnist-m", str(tmp_path / "mnist.npz"), str(tmp_path / "photos"),
                         "--out", str(tmp_path / name), "--source", "20", "--target-train",
                         "15", "--target-test", "10", "--seed", "4"]) == 0
        outs.append(sorted((tmp_path / name).rglob("*.png")))
    assert len(outs[0]) == 45
    assert [p.relative_to(tmp_path / "a") for p in outs[0]] == [
        p.relative_to(tmp_path / "b") for p in outs[1]]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(*outs))
    part = digit_partition(60, 20, 15, 10, seed=4)
    sets = [set(part.source), set(part.target_train), set(part.target_test)]
    assert sum(map(len, sets)) == 45 and len(set().union(*sets)) == 45
    # The source folder holds exactly the partition's source digits, unchanged.
    written = {np.asarray(Image.open(p)).tobytes() for p in (tmp_path / "a" / "mnist").rglob("*")
               if p.is_file()}
    assert written == {x[i].tobytes() for i in part.source}
    with pytest.raises(FileExistsError, match="nothing written"):
        build_mnist_m(tmp_path / "mnist.npz", tmp_path / "photos", tmp_path / "a")
