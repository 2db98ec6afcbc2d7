"""Export verification with real weights and real photos (offline assets).

MobileNet alpha 0.25 with its ImageNet weights at 224 px under a new 5-class
head, exported and run in a TensorFlow-only process on one real JPEG per
tf_flowers class: the served probabilities must match Keras within 1e-5.
"""

import numpy as np
import pytest

from tfxfer.config import ImageConfig, ModelConfig
from tfxfer.image.model import build_image_classifier
from tfxfer.serving import client
from tfxfer.serving.export import export_model
from tfxfer.serving.export.verify import reference_probabilities

pytestmark = pytest.mark.assets


def test_real_weights_and_photos_round_trip(assets, tmp_path):
    photos = assets / "flower_photos"
    classes = sorted(p.name for p in photos.iterdir() if p.is_dir())
    files = [sorted((photos / c).glob("*.jpg"))[0] for c in classes]
    samples = [f.read_bytes() for f in files]
    config = ModelConfig(image=ImageConfig(backbone="mobilenet", backbone_kwargs={"alpha": 0.25},
                                           weights="imagenet", image_size=224))
    model = build_image_classifier(config, len(classes))

    result = export_model(model, classes, tmp_path, "flowers", samples=samples, verify=True)

    assert result.verification.examples == len(classes)
    assert result.verification.max_abs_diff <= 1e-5
    expected = reference_probabilities(model, samples, 224)
    assert np.abs(expected - expected.mean(axis=0)).max() > 1e-3  # outputs depend on the photo
    rows = client.predict_local(result.path, samples)
    assert [r["class_name"] for r in rows] == [classes[i] for i in expected.argmax(axis=1)]
    assert result.variables_bytes <= 1.1 * result.weights_bytes + 64 * 1024
