import dataclasses
import json
import logging

import keras
import numpy as np
import pytest
from conftest import spread_backbone_weights, tiny_config

from tfxfer import rundir
from tfxfer.data import load_splits
from tfxfer.experiment import resolve_config, train
from tfxfer.image.model import build_image_classifier
from tfxfer.training import bottleneck, boundary
from tfxfer.training.strategies import plan_phases, set_phase_trainable
from tfxfer.training.trainer import fit_phases


def _setup(image_folder, tmp_path, backbone="mobilenet", alpha=0.25, augment=False, **train_kw):
    train_kw = {"strategy": "fine_tune", **train_kw}
    config = tiny_config(image_folder, tmp_path / "run", **train_kw)
    image = dataclasses.replace(config.model.image, backbone=backbone, augment=augment,
                                backbone_kwargs={"alpha": alpha})
    model_cfg = dataclasses.replace(config.model, image=image)
    data = dataclasses.replace(config.data, cache_dir=str(tmp_path / "cache"))
    config = resolve_config(dataclasses.replace(config, model=model_cfg, data=data))
    splits = load_splits(config.data, 32)
    # Seeded so that the head's initial weights (and so the checks below) do not depend on
    # the random state earlier tests left behind.
    keras.utils.set_random_seed(7)
    model = spread_backbone_weights(build_image_classifier(config.model, 3))
    return config, splits, model


def _split_images(splits, config, split="train"):
    return np.concatenate([b.numpy() for b, _ in splits.batches(split, config.data)])


def _trainable_indices(backbone):
    layers = boundary._sublayers(backbone)
    return [i for i, layer in enumerate(layers) if layer.trainable_weights]


@pytest.mark.parametrize("backbone,alpha,sequential", [
    ("mobilenet", 0.25, True),       # no skip connections: the first unfrozen layer
    ("mobilenet_v2", 0.35, False),   # residual adds: the boundary moves down
])
def test_split_model_predicts_like_the_classifier(image_folder, tmp_path, backbone, alpha,
                                                  sequential):
    config, splits, model = _setup(image_folder, tmp_path, backbone, alpha)
    set_phase_trainable(model, plan_phases(config.train)[1], config.train)
    split = boundary.split_model(model)
    backbone_layer = model.get_layer("backbone")
    names = [layer.name for layer in boundary._sublayers(backbone_layer)]
    first = _trainable_indices(backbone_layer)[0]
    index = names.index(split.layer)
    assert index == first if sequential else 0 < index < first
    assert len(boundary._crossing(boundary._sublayers(backbone_layer)[index:])) == 1
    images = _split_images(splits, config)
    full = model.predict(images, verbose=0)
    assert np.ptp(full[:, 0]) > 1e-3  # outputs depend on the image
    np.testing.assert_allclose(split.top.predict(split.bottom.predict(images, verbose=0),
                                                 verbose=0), full, atol=1e-5)


def test_phase2_on_cached_activations_trains_the_classifiers_own_layers(image_folder,
                                                                        tmp_path):
    config, splits, model = _setup(image_folder, tmp_path, epochs=0, fine_tune_epochs=2,
                                   fine_tune_learning_rate=1e-2, learning_rate=0.1)
    before = {w.path: np.array(w) for w in model.weights}
    runner = boundary.boundary_phase_runner(model, config, splits, None, None)
    history = fit_phases(model, splits.batches("train", config.data, training=True),
                         splits.batches("val", config.data), config.train,
                         runners={"fine_tune": runner})
    assert history.phases[0].mode == "cached activations at 'conv_dw_10'"
    assert len(history.rows) == 2 and all(np.isfinite(r["val_loss"]) for r in history.rows)
    backbone_layer = model.get_layer("backbone")
    first = _trainable_indices(backbone_layer)[0]
    layers = boundary._sublayers(backbone_layer)
    for layer in layers[:first]:  # frozen bottom untouched
        for w in layer.weights:
            np.testing.assert_array_equal(np.array(w), before[w.path])
    moved = [w.path for layer in layers[first:] for w in layer.trainable_weights
             if not np.array_equal(np.array(w), before[w.path])]
    assert moved, "phase 2 did not change the unfrozen backbone layers of the classifier"
    # The trained top is grafted: the full classifier computes what the split model does.
    split = boundary.split_model(model)
    images = _split_images(splits, config, "test")
    assert boundary.max_difference(model, split, images) <= 1e-5


def _crossing_backbone() -> keras.Model:
    """A backbone whose input skips over every layer to the top (no single-tensor cut)."""
    inputs = keras.Input((8, 8, 3))
    a = keras.layers.Conv2D(3, 3, padding="same", name="a")(inputs)
    b = keras.layers.Conv2D(3, 3, padding="same", name="b")(a)
    outputs = keras.layers.Add(name="add")([b, inputs])
    backbone = keras.Model(inputs, outputs, name="backbone")
    backbone.get_layer("a").trainable = False
    return backbone


def test_no_single_tensor_boundary_is_reported():
    with pytest.raises(boundary.NoBoundary, match="no single tensor below 'b'"):
        boundary.find_boundary(_crossing_backbone())


@pytest.mark.parametrize("change,reason", [
    ({"phase2_cache": "off"}, "train.phase2_cache='off'"),
    ({"strategy": "fine_tune_all"}, "unfreezes 'all', not the top"),
    ({"augment": True}, "augmentation is on and train.augmented_copies=0"),
    ({"tolerance": -1.0}, "predictions differ from the classifier's"),
])
def test_phase2_falls_back_to_the_full_model_and_says_why(image_folder, tmp_path, caplog,
                                                          monkeypatch, change, reason):
    train_kw = {k: v for k, v in change.items() if k in ("phase2_cache", "strategy")}
    config, splits, model = _setup(image_folder, tmp_path, augment=change.get("augment", False),
                                   epochs=0, fine_tune_epochs=1, **train_kw)
    if "tolerance" in change:
        monkeypatch.setattr(boundary, "TOLERANCE", change["tolerance"])
    train_ds = splits.batches("train", config.data, training=True)
    val_ds = splits.batches("val", config.data)
    runner = boundary.boundary_phase_runner(model, config, splits, train_ds, val_ds)
    with caplog.at_level(logging.INFO, logger="tfxfer.training.boundary"):
        history = fit_phases(model, train_ds, val_ds, config.train,
                             runners={"fine_tune": runner})
    assert "Phase 2 cache off: " in caplog.text and reason in caplog.text
    assert history.phases[0].mode == "full model"


def test_run_records_how_each_phase_ran(image_folder, tmp_path):
    config = tiny_config(image_folder, tmp_path / "run", strategy="fine_tune",
                         augmented_copies=2)
    config.data.cache_dir = str(tmp_path / "cache")
    train(config)
    phases = json.loads((tmp_path / "run" / rundir.PHASES).read_text())
    assert [p["mode"] for p in phases] == [
        "cached features (2 augmented copies)",
        "cached activations at 'conv_dw_10' (2 augmented copies)",
    ]
    assert set(phases[1]["onednn"]) == {"TF_ENABLE_ONEDNN_OPTS", "decided_by"}
    # Only the train and val activations were cached: phase 1 pooled its features from them.
    assert len(list((tmp_path / "cache" / "features").iterdir())) == 2


def test_phase1_features_pooled_from_the_boundary_equal_the_direct_ones(image_folder,
                                                                        tmp_path):
    config, splits, model = _setup(image_folder, tmp_path)
    phases = plan_phases(config.train)
    set_phase_trainable(model, phases[0], config.train)
    pooled, y = boundary.features_via_boundary(model, config, splits)("train", 0)
    assert not model.get_layer("backbone").trainable  # phase 1's flags are back
    direct, y_direct = bottleneck.cached_split(model, config, splits, "train")
    np.testing.assert_array_equal(y, y_direct)
    assert pooled.shape == direct.shape and np.ptp(direct) > 1e-3
    np.testing.assert_allclose(pooled, direct, atol=1e-5)
