from dataclasses import replace

import keras
import numpy as np
from conftest import random_images, spread_backbone_weights

from tfxfer.config import ImageConfig, ModelConfig
from tfxfer.image.model import build_image_classifier

IMAGE = ImageConfig(backbone="mobilenet", weights=None, image_size=32,
                    backbone_kwargs={"alpha": 0.25})
CONFIG = ModelConfig(image=IMAGE)


def test_model_takes_raw_uint8_images_of_any_size():
    model = build_image_classifier(CONFIG, num_classes=3)
    assert model.input.dtype == "uint8"
    for size in (32, 57):
        probs = np.asarray(model.predict(random_images(2, size), verbose=0))
        assert probs.shape == (2, 3)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_stable_layer_names():
    model = build_image_classifier(ModelConfig(image=IMAGE, hidden_units=8), 3)
    # Exactly these layers, in graph order: other code looks them up by name.
    assert [layer.name for layer in model.layers] == [
        "image", "resize", "augmentation", "preprocess", "backbone", "pooling",
        "dropout", "hidden", "predictions"]
    assert model.get_layer("hidden").units == 8
    assert model.get_layer("predictions").units == 3
    plain = build_image_classifier(replace(CONFIG, image=replace(IMAGE, augment=False)), 3)
    names = [layer.name for layer in plain.layers]
    assert "hidden" not in names and "augmentation" not in names


def test_augmentation_is_active_in_training_only():
    model = build_image_classifier(CONFIG, num_classes=3)
    images = random_images(2, 32)
    inference = [np.asarray(model(images, training=False)) for _ in range(2)]
    np.testing.assert_array_equal(*inference)
    augment = model.get_layer("augmentation")
    x = keras.ops.cast(images, "float32")
    assert not np.allclose(augment(x, training=True), augment(x, training=True))


def test_no_augmentation_when_disabled():
    model = build_image_classifier(ModelConfig(image=replace(IMAGE, augment=False)), 2)
    assert "augmentation" not in [layer.name for layer in model.layers]


def test_keras_round_trip_gives_identical_predictions(tmp_path):
    model = spread_backbone_weights(build_image_classifier(CONFIG, num_classes=3))
    images = random_images(2, 40)
    before = model.predict(images, verbose=0)
    assert np.ptp(before[:, 0]) > 1e-3  # outputs depend on the image
    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(reloaded.predict(images, verbose=0), before, atol=1e-6)


def test_frozen_phases_run_the_backbone_in_inference_mode():
    # Keras 3.15 functional models pass the outer `training` flag down even to a
    # layer called with training=False, so inference mode must come from freezing.
    from tfxfer.config import TrainConfig
    from tfxfer.training.strategies import plan_phases, set_phase_trainable

    plain = ModelConfig(image=replace(IMAGE, augment=False), dropout=0.0)
    images = random_images(2, 32)
    model = build_image_classifier(plain, num_classes=3)
    train = TrainConfig(strategy="fine_tune_all")
    for phase in plan_phases(train):
        set_phase_trainable(model, phase, train)
        np.testing.assert_allclose(model(images, training=True),
                                   model(images, training=False), atol=1e-6)
    scratch = build_image_classifier(plain, num_classes=3, from_scratch=True)
    set_phase_trainable(scratch, plan_phases(TrainConfig(strategy="from_scratch"))[0], train)
    assert not np.allclose(scratch(images, training=True), scratch(images, training=False))
