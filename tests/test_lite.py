"""On-device (LiteRT) export: each quantization mode against Keras, int8 I/O types,
text models, calibration data, verification bounds, atomic publishing, CLI.

The per-mode tests convert a tiny tfxfer image model (MobileNet alpha 0.25 at
32 px with spread random weights, so outputs depend on the image); the export
tests use a smaller CNN with the same layer names, which converts in about a
second.
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import (
    CLASS_COLOURS,
    colour_images,
    make_image_folder,
    spread_backbone_weights,
    tiny_config,
    write_image,
)
from text_helpers import build_tiny_encoder

from tfxfer import cli, rundir
from tfxfer.config import ImageConfig, ModelConfig, TextConfig
from tfxfer.data.pipeline import decode_image
from tfxfer.image.model import build_image_classifier
from tfxfer.lite.convert import LiteConversionError, convert_image_model
from tfxfer.lite.export import MODEL_FILE, REPORT_FILE, export_tflite
from tfxfer.lite.quantization import get_quantization
from tfxfer.lite.representative import RepresentativeSet, collect_images
from tfxfer.lite.runtime import LiteClassifier
from tfxfer.lite.verify import LiteVerificationError, compare
from tfxfer.serving.export.layout import TEMP_PREFIX
from tfxfer.text.model import CLEANUP, build_text_classifier

SIZE = 32
# (max, mean) |probability difference| allowed against Keras, per mode. Measured on this
# tiny model with seeds 0-2 (max / mean): none 1.2e-5 / 2.2e-6, float16 0.028 / 0.0031,
# dynamic 0.14 / 0.033, int8 0.39 / 0.079 (uint8 and int8 I/O identical); about 2.5x that.
TOLERANCES = {"none": (1e-4, 1e-5), "float16": (0.07, 0.008), "dynamic": (0.35, 0.08),
              "int8": (0.9, 0.2)}


@pytest.fixture(scope="module")
def tiny():
    keras.utils.set_random_seed(0)
    config = ModelConfig(image=ImageConfig(backbone="mobilenet", weights=None, image_size=SIZE,
                                           backbone_kwargs={"alpha": 0.25}))
    model = spread_backbone_weights(build_image_classifier(config, 3))
    images = colour_images(48, SIZE, seed=0)
    calibration, test = images[:24], images[24:]
    expected = model.predict(test, verbose=0)
    assert np.ptp(expected, axis=0).max() > 0.1  # outputs depend on the image
    return model, calibration, test, expected


@pytest.mark.parametrize("mode,io_type", [("none", "uint8"), ("float16", "uint8"),
                                          ("dynamic", "uint8"), ("int8", "uint8"),
                                          ("int8", "int8")])
def test_each_mode_matches_the_keras_model(tiny, mode, io_type):
    model, calibration, test, expected = tiny
    content = convert_image_model(model, mode, SIZE, representative_images=calibration,
                                  io_type=io_type)
    classifier = LiteClassifier(content)
    assert classifier.input.shape == (1, SIZE, SIZE, 3)
    if mode == "int8":
        # Pixels go in unscaled: uint8 p, or int8 p - 128; probabilities come out in 1/256.
        assert (classifier.input.dtype, classifier.output.dtype) == (io_type, io_type)
        zero = 0 if io_type == "uint8" else -128
        assert (classifier.input.scale, classifier.input.zero_point) == (1.0, zero)
        assert (classifier.output.scale, classifier.output.zero_point) == (1 / 256, zero)
    else:
        assert (classifier.input.dtype, classifier.output.dtype) == ("uint8", "float32")
        assert not classifier.input.quantized and not classifier.output.quantized
    difference = np.abs(classifier.predict(test) - expected)
    max_tolerance, mean_tolerance = TOLERANCES[mode]
    assert difference.max() <= max_tolerance, difference.max()
    assert difference.mean() <= mean_tolerance, difference.mean()


def test_text_model_fails_naming_the_ops_and_layers(tmp_path):
    encoder = build_tiny_encoder(tmp_path / "encoder")
    model = build_text_classifier(ModelConfig(text=TextConfig(encoder=str(encoder))), 2)
    with pytest.raises(LiteConversionError) as caught:
        convert_image_model(model, "dynamic", SIZE)
    message = str(caught.value)
    for op in ("tf.StringLower", "tf.StringSplitV2", "tf.StringToHashBucketFast"):
        assert op in message
    assert f"'{CLEANUP}', 'backbone'" in message and "cannot go on-device" in message
    assert "from layer 'dropout' on" in message  # the head converts


def test_unknown_mode_and_io_type_are_named():
    with pytest.raises(ValueError, match="'int4'.*none, float16, dynamic, int8"):
        get_quantization("int4")
    with pytest.raises(ValueError, match="'float32'"):
        convert_image_model(keras.Sequential(), "int8", SIZE, io_type="float32")


def test_corrupt_representative_examples_are_skipped_and_counted(tmp_path):
    good = write_image(tmp_path / "good.jpg", CLASS_COLOURS[0])
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff not really a JPEG")
    items = [good, corrupt, tmp_path / "missing.png", b"garbage bytes", good.read_bytes()]
    result = collect_images(items, SIZE, limit=10, source="test")
    assert result.images.shape == (2, SIZE, SIZE, 3) and result.images.dtype == np.uint8
    summary = result.summary()
    assert (summary["examples"], summary["skipped"]) == (2, 3)
    assert [s["example"] for s in summary["skipped_examples"]] == [
        str(corrupt), str(tmp_path / "missing.png"), "example 3"]
    assert collect_images(items, SIZE, limit=1).images.shape[0] == 1


# ---------------------------------------------------------------- export


def _small_classifier(size: int = 16) -> keras.Model:
    """uint8 images -> resize -> preprocess -> two convs -> pooling -> softmax (fast to convert)."""
    keras.utils.set_random_seed(1)
    spread = keras.initializers.RandomNormal(stddev=0.5, seed=0)
    inputs = keras.Input((None, None, 3), dtype="uint8", name="image")
    x = keras.layers.Resizing(size, size, name="resize")(inputs)
    x = keras.layers.Rescaling(1 / 127.5, -1, name="preprocess")(x)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu", kernel_initializer=spread)(x)
    x = keras.layers.Conv2D(8, 3, activation="relu", kernel_initializer=spread)(x)
    x = keras.layers.GlobalAveragePooling2D(name="pooling")(x)
    outputs = keras.layers.Dense(3, activation="softmax", kernel_initializer=spread,
                                 name="predictions")(x)
    return keras.Model(inputs, outputs)


@pytest.fixture
def small():
    model = _small_classifier()
    images = colour_images(12, 16, seed=3)
    labels = model.predict(images, verbose=0).argmax(1)  # Keras accuracy 1.0
    return model, images, labels


def test_export_writes_model_labels_and_report(small, tmp_path):
    model, images, labels = small
    encoded = [tf.io.encode_jpeg(image).numpy() for image in images]
    calibration = collect_images([b"not an image", *encoded], 16, limit=8)
    out = tmp_path / "exports" / "small-int8"
    result = export_tflite(model, ["red", "green", "blue"], out, quantization="int8",
                           image_size=16, test_images=images, test_labels=labels,
                           representative=calibration, force=True)
    assert sorted(p.name for p in out.iterdir()) == sorted([REPORT_FILE, "labels.txt", MODEL_FILE])
    assert (out / "labels.txt").read_text() == "red\ngreen\nblue\n"
    report = json.loads((out / REPORT_FILE).read_text())
    assert report == result.report
    assert report["size_bytes"] == (out / MODEL_FILE).stat().st_size == result.size_bytes
    assert (report["representative"]["examples"], report["representative"]["skipped"]) == (8, 1)
    assert report["input"]["dtype"] == "uint8" and report["input"]["shape"] == [1, 16, 16, 3]
    assert report["output"]["scale"] == 1 / 256
    verification = report["verification"]
    assert verification["examples"] == 12 and verification["keras_accuracy"] == 1.0
    assert verification["tflite_accuracy"] == verification["top1_agreement"]
    assert not list(out.parent.glob(f"{TEMP_PREFIX}*"))


def test_export_refused_beyond_the_bound_publishes_nothing(small, tmp_path):
    model, images, labels = small
    # Calibrated on black images, the int8 model saturates: it loses 4 of 12 test images.
    black = RepresentativeSet(np.zeros((4, 16, 16, 3), np.uint8), "black images")
    out = tmp_path / "small-int8"
    kwargs = dict(quantization="int8", image_size=16, test_images=images, test_labels=labels,
                  representative=black)
    with pytest.raises(LiteVerificationError, match="Nothing was published"):
        export_tflite(model, ["a", "b", "c"], out, **kwargs)
    assert list(tmp_path.iterdir()) == []  # neither the export nor its temporary directory

    result = export_tflite(model, ["a", "b", "c"], out, force=True, **kwargs)
    assert not result.verification.passed
    assert result.verification.accuracy_drop_points > result.verification.max_accuracy_drop
    assert json.loads((out / REPORT_FILE).read_text())["verification"]["passed"] is False
    with pytest.raises(FileExistsError, match="nothing was overwritten"):
        export_tflite(model, ["a", "b", "c"], out, force=True, **kwargs)
    with pytest.raises(ValueError, match="No test images"):
        export_tflite(model, ["a", "b", "c"], tmp_path / "unverified", quantization="none",
                      image_size=16)


def test_compare_counts_accuracy_points_and_agreement():
    keras_probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    lite_probs = np.array([[0.8, 0.2], [0.3, 0.7], [0.4, 0.6], [0.3, 0.7]])
    report = compare(keras_probs, lite_probs, np.array([0, 1, 0, 0]), "int8")
    assert (report.keras_accuracy, report.tflite_accuracy) == (0.75, 0.5)
    # One example of four: 25 points, allowed (see below).
    assert report.accuracy_drop_points == pytest.approx(25.0) and report.passed
    assert report.top1_agreement == 0.75
    assert report.max_abs_diff == pytest.approx(0.2)
    better = compare(lite_probs, keras_probs, np.array([0, 1, 0, 0]), "int8")
    assert better.accuracy_drop_points == pytest.approx(-25.0) and better.passed
    # One flipped example is allowed even where it exceeds the mode's bound (0.5 points).
    labels = np.zeros(150, int)
    keras_probs, lite_probs = np.tile([0.9, 0.1], (150, 1)), np.tile([0.9, 0.1], (150, 1))
    lite_probs[0] = [0.4, 0.6]
    one = compare(keras_probs, lite_probs, labels, "float16")
    assert one.accuracy_drop_points == pytest.approx(100 / 150) and one.passed
    assert one.max_accuracy_drop == pytest.approx(100 / 150)
    lite_probs[1] = [0.4, 0.6]
    assert not compare(keras_probs, lite_probs, labels, "float16").passed


def test_resize_in_model_takes_any_image_size(small):
    model, images, _ = small
    classifier = LiteClassifier(convert_image_model(model, "none", 16, resize_in_model=True))
    assert classifier.image_size is None
    photo = colour_images(1, 40, seed=5)[0][:, :30]  # 40 x 30, resized inside the model
    expected = model.predict(photo[None], verbose=0)[0]
    np.testing.assert_allclose(classifier.predict_one(photo), expected, atol=1e-5)
    np.testing.assert_allclose(classifier.predict_one(images[0]),
                               model.predict(images[:1], verbose=0)[0], atol=1e-5)
    with pytest.raises(LiteConversionError, match="fixed input size"):
        convert_image_model(model, "int8", 16, resize_in_model=True,
                            representative_images=images)


def test_cli_export_and_predict_tflite(tmp_path, capsys):
    images = make_image_folder(tmp_path / "images")
    run_dir = tmp_path / "run"
    config = tiny_config(images, run_dir)
    keras.utils.set_random_seed(0)
    model = spread_backbone_weights(build_image_classifier(config.model, 3))
    run_dir.mkdir()
    (run_dir / rundir.CONFIG).write_text(json.dumps(config.to_dict()))
    (run_dir / rundir.LABELS).write_text("blue\ngreen\nred\n")
    rundir.save_model(run_dir, model)

    assert cli.main(["export", str(run_dir)]) == 2  # a SavedModel needs --name
    assert cli.main(["export", str(run_dir), "--format", "tflite", "--quantize", "none"]) == 0
    out = capsys.readouterr().out
    model_path = run_dir / "tflite-none" / MODEL_FILE
    assert f"exported none LiteRT model (3 classes) to {model_path}" in out
    assert "verified with LiteRT, passed: test split" in out
    assert "input uint8 [1, 32, 32, 3]" in out

    files = sorted(str(p) for p in images.rglob("*_0.jpg"))
    assert cli.main(["predict", "--tflite", str(model_path), "--json", *files]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["input"] for r in records] == files
    for record, path in zip(records, files):
        image = decode_image(open(path, "rb").read(), SIZE).numpy()
        expected = model.predict(image[None], verbose=0)[0]
        assert record["class_id"] == int(expected.argmax())
        assert record["class_name"] == ["blue", "green", "red"][record["class_id"]]
        assert record["probability"] == pytest.approx(float(expected.max()), abs=1e-5)
        assert [t["class_name"] for t in record["top_k"]][0] == record["class_name"]
        np.testing.assert_allclose(record["outputs"]["probabilities"], expected, atol=1e-5)
    assert cli.main(["predict", "--tflite", str(model_path), *files[:1]]) == 0
    assert capsys.readouterr().out.splitlines()[0].split()[:2] == ["input", "class"]
