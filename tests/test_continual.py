"""Continual learning (tfxfer.continual): head growth, class union, refusals, LwF, exemplars.

One tiny parent run (three solid-colour classes, MobileNet alpha 0.25 with random weights
at 32 px, phase 1 on cached features) is trained per module and continued with new
classes; the rest are unit tests.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import write_image

from tfxfer.cli import build_parser, train_overrides
from tfxfer.config import RunConfig, load_config
from tfxfer.continual.distillation import DistillationLoss, distillation_term, packed_labels
from tfxfer.continual.exemplars import herding, read_exemplars, select_exemplars
from tfxfer.continual.growth import grow_head
from tfxfer.continual.lineage import _validate_task, class_union, validate_modality
from tfxfer.experiment import build_classifier, evaluate_run, train

COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (50, 70, 230),
           "yellow": (230, 230, 30), "black": (15, 15, 15)}


def _folder(root: Path, names, per_class: int = 6) -> Path:
    for c, name in enumerate(names):
        for i in range(per_class):
            write_image(root / name / f"{name}_{i}.jpg", COLOURS[name], size=(24, 24),
                        seed=10 * c + i)
    return root


def _overrides(source, out, **continual) -> dict:
    return {
        "data": {"source": str(source), "batch_size": 4, "val_fraction": 0.2,
                 "test_fraction": 0.2, "seed": 1},
        "model": {"image": {"backbone": "mobilenet", "weights": "none", "image_size": 32,
                            "backbone_kwargs": {"alpha": 0.25}, "augment": False}},
        "train": {"strategy": "feature_extraction", "epochs": 2, "verbose": 0,
                  "tensorboard": False},
        "continual": continual,
        "out": str(out),
    }


@pytest.fixture(scope="module")
def parent(tmp_path_factory) -> Path:
    """A finished three-class run that kept 2 exemplars per class."""
    root = tmp_path_factory.mktemp("continual")
    source = _folder(root / "old", ["red", "green", "blue"])
    train(load_config(overrides=_overrides(source, root / "parent", exemplars=2)))
    return root / "parent"


def _child_config(parent: Path, tmp_path: Path, **continual) -> RunConfig:
    source = _folder(tmp_path / "new", ["yellow", "black", "blue"])
    overrides = _overrides(source, tmp_path / "child", parent=str(parent), **continual)
    overrides["model"] = {}  # the parent's model settings are inherited
    return load_config(overrides=overrides)


def _tiny_model(classes: int, seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    config = load_config(overrides=_overrides("x", "y"))
    return build_classifier(config, "image", classes)


def test_grow_head_copies_old_weights_exactly():
    old, new = _tiny_model(3, 0), _tiny_model(5, 1)
    fresh = new.get_layer("predictions").get_weights()
    old.get_layer("predictions").set_weights(
        [np.random.default_rng(0).normal(size=w.shape) for w in
         old.get_layer("predictions").get_weights()])
    grow_head(new, old, [0, 1, 2])
    kernel, bias = new.get_layer("predictions").get_weights()
    old_kernel, old_bias = old.get_layer("predictions").get_weights()
    np.testing.assert_array_equal(kernel[:, :3], old_kernel)
    np.testing.assert_array_equal(bias[:3], old_bias)
    np.testing.assert_array_equal(kernel[:, 3:], fresh[0][:, 3:])  # new rows: fresh init
    for a, b in zip(new.get_layer("backbone").get_weights(),
                    old.get_layer("backbone").get_weights()):
        np.testing.assert_array_equal(a, b)


def test_grow_head_refuses_another_architecture():
    old = _tiny_model(3, 0)
    config = load_config(overrides=_overrides("x", "y"))
    config.model.hidden_units = 8
    with pytest.raises(ValueError, match="parent model has no layer 'hidden'"):
        grow_head(build_classifier(config, "image", 5), old, [0, 1, 2])


def test_class_union_merges_same_names(caplog):
    with caplog.at_level(logging.WARNING):
        union = class_union(["blue", "green", "red"], ["black", "blue", "yellow"])
    assert union.classes == ("blue", "green", "red", "black", "yellow")
    assert union.new == ("black", "yellow") and union.merged == ("blue",)
    assert union.ids(["black", "blue", "yellow"]) == [3, 0, 4]
    assert "merged" in caplog.text and "blue" in caplog.text
    only_new = class_union(["blue", "green"], ["black", "blue"], keep="none")
    assert only_new.classes == ("black", "blue") and only_new.old == ()


def test_distillation_is_zero_when_child_equals_parent_on_old_logits():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 3)).astype("float32")
    parent = keras.ops.convert_to_numpy(keras.ops.softmax(logits))
    # The child has the parent's old logits and two new classes taking probability mass.
    child = keras.ops.convert_to_numpy(keras.ops.softmax(
        np.concatenate([logits, rng.normal(size=(4, 2)).astype("float32")], axis=1)))
    term = keras.ops.convert_to_numpy(distillation_term(parent, child[:, :3], 2.0))
    np.testing.assert_allclose(term, 0.0, atol=1e-5)
    other = keras.ops.convert_to_numpy(distillation_term(parent, child[:, [1, 2, 0]], 2.0))
    assert (other > 1e-3).all()
    labels = np.array([3, 4, 0, 1])
    loss = DistillationLoss([0, 1, 2], temperature=2.0, weight=1.0)
    ce = keras.losses.sparse_categorical_crossentropy(labels, child)
    np.testing.assert_allclose(loss.call(packed_labels(labels, parent), child), ce, atol=1e-5)
    assert float(keras.ops.mean(
        loss.call(packed_labels(labels, parent[:, [1, 2, 0]]), child))) > float(
        keras.ops.mean(ce)) + 1e-3


def test_herding_picks_the_example_nearest_the_mean_first():
    features = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.9]])
    order = herding(features, 3)
    assert order[0] == 2 and len(set(order)) == 3
    chosen = select_exemplars(np.array([0, 0, 1, 1, 1]), 2, "random", seed=0)
    assert sorted(map(len, chosen.values())) == [2, 2] and set(chosen[1]) <= {2, 3, 4}


def test_refuses_another_modality_and_task(parent):
    from tfxfer.continual.lineage import load_parent

    loaded = load_parent(parent)
    with pytest.raises(ValueError, match="different modality"):
        validate_modality(loaded, "text", "reviews.csv")
    inputs = keras.Input((4,))
    two = keras.Model(inputs, [keras.layers.Dense(3, name="predictions")(inputs),
                               keras.layers.Dense(1)(inputs)])
    with pytest.raises(ValueError, match="different task"):
        _validate_task(parent, two, ["a", "b", "c"])


def test_refuses_a_parent_with_another_backbone(parent, tmp_path):
    config = _child_config(parent, tmp_path)
    config.model.image.backbone = "resnet50"
    with pytest.raises(ValueError, match="backbone: the parent has 'mobilenet'"):
        train(config)
    assert not (tmp_path / "child").exists()


def test_exemplars_stored_and_reloaded(parent):
    rows = list(csv.DictReader((parent / "exemplars.csv").open()))
    assert sorted(r["class"] for r in rows) == ["blue", "blue", "green", "green", "red", "red"]
    train_files = {r["path"] for r in csv.DictReader((parent / "splits.csv").open())
                   if r["split"] == "train"}
    assert {r["input"] for r in rows} <= {str(Path(p).resolve()) for p in train_files} | train_files
    first = read_exemplars(parent, per_class=1)
    assert sorted(name for _, name in first) == ["blue", "green", "red"]
    assert all(Path(x).is_file() for x, _ in first)


def test_child_grows_rehearses_and_reports_old_and_new(parent, tmp_path):
    result = train(_child_config(parent, tmp_path, rehearsal=2))
    run = tmp_path / "child"
    assert (run / "labels.txt").read_text().split() == ["blue", "green", "red", "black",
                                                        "yellow"]
    lineage = json.loads((run / "lineage.json").read_text())
    assert lineage["parent"] == str(parent.resolve()) and lineage["merged"] == ["blue"]
    assert [h["classes_added"] for h in lineage["history"]] == [
        ["blue", "green", "red"], ["black", "yellow"]]
    splits = list(csv.DictReader((run / "splits.csv").open()))
    exemplars = {x for x, _ in read_exemplars(parent, 2)}
    assert exemplars <= {r["path"] for r in splits if r["split"] == "train"}
    parent_test = {r["input"] for r in csv.DictReader((parent / "predictions.csv").open())}
    assert parent_test <= {r["path"] for r in splits if r["split"] == "test"}
    groups = json.loads((run / "metrics.json").read_text())["continual"]
    assert groups["old_classes"] == ["blue", "green", "red"]
    assert groups["new_classes"] == ["black", "yellow"]
    assert groups["old_examples"] >= len(parent_test) and groups["new_examples"] > 0
    assert 0 <= groups["old_accuracy"] <= 1 and "old classes accuracy" in (
        result.evaluation.table())
    phases = json.loads((run / "phases.json").read_text())
    assert phases[0]["mode"] == "cached features (LwF)"
    assert "Continual learning" in (run / "report.html").read_text()
    model = keras.models.load_model(run / "model.keras")  # no tfxfer.continual objects
    assert model.output.shape[-1] == 5
    again = evaluate_run(run)  # `tfxfer evaluate`: the same test split, old and new apart
    assert again.groups() == result.evaluation.groups()


def test_continual_flags_map_to_the_config():
    args = build_parser().parse_args([
        "train", "--from", "runs/a", "--data", "new", "--keep", "old", "--rehearsal", "20",
        "--lwf-weight", "0.5", "--temperature", "3", "--exemplars", "20",
        "--exemplar-selection", "random"])
    continual = load_config(overrides=train_overrides(args)).continual
    assert (continual.parent, continual.rehearsal, continual.lwf_weight,
            continual.temperature, continual.exemplars, continual.exemplar_selection) == (
        "runs/a", 20, 0.5, 3.0, 20, "random")
    with pytest.raises(ValueError, match="rehearsal needs a parent"):
        load_config(overrides={"continual": {"rehearsal": 3}})


def test_child_resumes_from_its_checkpoint(parent, tmp_path):
    from tfxfer.experiment import ContinualExperiment

    run = ContinualExperiment(_child_config(parent, tmp_path, lwf_weight=0.5))
    run.load_data()
    run.build_model()
    run.fit(run.phases[0])  # killed here: checkpoints written, no model.keras
    child = tmp_path / "child"
    assert (child / "checkpoints").is_dir() and not (child / "model.keras").exists()
    result = train(RunConfig(), resume=child)
    assert result.config.continual.parent == str(parent.resolve())
    assert (child / "model.keras").is_file()
    assert json.loads((child / "metrics.json").read_text())["continual"]["new_classes"] == [
        "black", "yellow"]
    history = list(csv.DictReader((child / "history.csv").open()))
    assert len(history) == 2  # the two epochs of phase 1, none repeated


def test_text_child_rehearses_csv_rows(tmp_path):
    from text_helpers import build_tiny_encoder, review_rows, write_csv

    encoder = build_tiny_encoder(tmp_path / "encoder")
    overrides = {
        "data": {"batch_size": 4, "seed": 1, "val_fraction": 0.2, "test_fraction": 0.2},
        "model": {"text": {"encoder": str(encoder)}},
        "train": {"strategy": "feature_extraction", "epochs": 1, "verbose": 0,
                  "tensorboard": False, "learning_rate": 0.05},
    }
    old = write_csv(tmp_path / "old.csv", review_rows(20))
    train(load_config(overrides={**overrides, "data": {**overrides["data"], "source": str(old)},
                                 "continual": {"exemplars": 2}, "out": str(tmp_path / "p")}))
    texts = {text for text, _ in review_rows(20)}
    stored = read_exemplars(tmp_path / "p")
    assert len(stored) == 4 and {x for x, _ in stored} <= texts  # the CSV rows' texts
    new = write_csv(tmp_path / "new.csv", review_rows(20, seed=2, labels=("meh", "pos")))
    child = {**overrides, "model": {}, "data": {**overrides["data"], "source": str(new)},
             "continual": {"parent": str(tmp_path / "p"), "rehearsal": 2},
             "out": str(tmp_path / "c")}
    result = train(load_config(overrides=child))
    assert result.splits.class_names == ["neg", "pos", "meh"]
    assert {x.decode() for x, _ in result.splits.raw["train"].as_numpy_iterator()} >= {
        x for x, _ in stored}
    groups = json.loads((tmp_path / "c" / "metrics.json").read_text())["continual"]
    assert groups["merged"] == ["pos"] and groups["new_classes"] == ["meh"]
