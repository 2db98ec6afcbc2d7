"""tfxfer exports served by `tfxfer serve`, queried with the `tfxfer predict` clients.

A tiny image classifier (MobileNet alpha 0.25, 32 px, random weights) and a tiny
text classifier (tfxfer's, on an encoder built from dim-4 word vectors) are exported
with the tfxfer exporter; the REST and gRPC clients must get exactly what the
SavedModel returns in this process.
"""

import keras
import numpy as np
import pytest
from conftest import spread_backbone_weights
from text_helpers import build_tiny_encoder

from tfxfer.config import ImageConfig, ModelConfig, TextConfig
from tfxfer.image.model import build_image_classifier
from tfxfer.serving.client import PredictError, predict_grpc, predict_local, predict_rest
from tfxfer.serving.contract import (
    CLASS_ID,
    CLASS_NAME,
    PROBABILITIES,
    TOP_K_CLASS_NAMES,
    read_warmup,
)
from tfxfer.serving.export import export_model
from tfxfer.serving.export.samples import TEXT_SAMPLES, synthetic_images
from tfxfer.serving.server import ModelServer, ServerConfig
from tfxfer.text.model import build_text_classifier

IMAGE_LABELS = ["daisy", "roses", "tulips"]
TEXT_LABELS = ["negative", "neutral", "positive"]


def _text_model(encoder_dir):
    """A tfxfer text classifier on a tiny encoder built from dim-4 word vectors."""
    text = TextConfig(encoder=str(build_tiny_encoder(encoder_dir)))
    return build_text_classifier(ModelConfig(text=text), num_classes=len(TEXT_LABELS), seed=0)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    base = tmp_path_factory.mktemp("saved_models")
    keras.utils.set_random_seed(0)
    image_model = build_image_classifier(
        ModelConfig(image=ImageConfig(backbone="mobilenet", weights="none", image_size=32,
                                      augment=False, backbone_kwargs={"alpha": 0.25})),
        num_classes=len(IMAGE_LABELS))
    images = synthetic_images(count=3)
    spread_backbone_weights(image_model)
    image = export_model(image_model, IMAGE_LABELS, base, "flowers", samples=images)
    text_model = _text_model(tmp_path_factory.mktemp("encoder") / "tiny")
    text = export_model(text_model, TEXT_LABELS, base, "reviews", samples=TEXT_SAMPLES)
    config = ServerConfig(base, rest_port=0, grpc_port=0, poll_seconds=0.5)
    with ModelServer(config) as server:
        yield {"server": server, "flowers": (image.path, images),
               "reviews": (text.path, list(TEXT_SAMPLES))}


def _assert_same_rows(rows, expected):
    assert len(rows) == len(expected)
    for row, reference in zip(rows, expected):
        assert set(row) == set(reference)
        for key, value in reference.items():
            if isinstance(value, list) and value and isinstance(value[0], float):
                assert np.array_equal(np.float32(row[key]), np.float32(value)), key
            else:
                assert row[key] == value, key


@pytest.mark.parametrize("name", ["flowers", "reviews"])
def test_rest_and_grpc_clients_equal_the_saved_model(served, name):
    server = served["server"]
    path, inputs = served[name]
    expected = predict_local(path, inputs)
    assert expected[0][CLASS_NAME] in (IMAGE_LABELS + TEXT_LABELS)
    assert len({tuple(r[PROBABILITIES]) for r in expected}) > 1  # inputs are told apart
    rest = predict_rest(f"http://127.0.0.1:{server.rest_port}", name, inputs)
    grpc_rows = predict_grpc(f"127.0.0.1:{server.grpc_port}", name, inputs)
    _assert_same_rows(rest, expected)
    _assert_same_rows(grpc_rows, expected)
    assert [r[CLASS_ID] for r in rest] == [int(np.argmax(r[PROBABILITIES])) for r in expected]
    assert all(isinstance(r[TOP_K_CLASS_NAMES][0], str) for r in rest)


def test_bytes_that_are_not_an_image_get_400_and_serving_goes_on(served):
    server = served["server"]
    url = f"http://127.0.0.1:{server.rest_port}"
    with pytest.raises(PredictError, match="HTTP 400: .*(image|Image)"):
        predict_rest(url, "flowers", [b"this is not an image"])
    with pytest.raises(PredictError, match="INVALID_ARGUMENT"):
        predict_grpc(f"127.0.0.1:{server.grpc_port}", "flowers", [b"\x89PNG broken"])
    path, inputs = served["flowers"]
    _assert_same_rows(predict_rest(url, "flowers", inputs[:1]), predict_local(path, inputs[:1]))


def test_exports_were_warmed_up_before_serving(served):
    server = served["server"]
    for name in ("flowers", "reviews"):
        [status] = server.manager.status(name)
        assert (status.version, status.state.value, status.error_message) == \
            (1, "AVAILABLE", "")
        with server.manager.handle(name) as servable:
            assert servable.warmup_records == len(read_warmup(served[name][0])) > 0
