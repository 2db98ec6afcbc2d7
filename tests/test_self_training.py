"""Self-training: the threshold chosen on validation, pseudo-labelled splits, the rounds."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import CLASS_COLOURS, make_image_folder, tiny_config, write_image

from tfxfer.data.sources import load_splits
from tfxfer.unsupervised.self_training import choose_threshold, self_train, with_pseudo_labels


def test_threshold_is_the_smallest_precise_enough_on_validation():
    labels = np.array([0, 0, 1, 1])
    # Confident predictions are right, the unsure one (0.55) is wrong.
    probs = np.array([[0.95, 0.05], [0.45, 0.55], [0.1, 0.9], [0.2, 0.8]])
    threshold, rows = choose_threshold(probs, labels, 1.0, (0.5, 0.7, 0.9))
    assert threshold == 0.7
    assert rows[0] == {"threshold": 0.5, "coverage": 1.0, "precision": 0.75}
    assert rows[1]["coverage"] == 0.75 and rows[1]["precision"] == 1.0
    # Nothing is precise enough: the largest candidate.
    assert choose_threshold(probs[[1]], labels[[1]], 0.9, (0.5, 0.7))[0] == 0.7


def test_pseudo_labels_join_the_train_split_only(image_folder, tmp_path):
    config = tiny_config(image_folder, tmp_path / "run")
    splits = load_splits(config.data, 32)
    extra = [str(write_image(tmp_path / "u" / "a.png", CLASS_COLOURS[0]))]
    joined = with_pseudo_labels(splits, extra, np.array([2]))
    assert joined.size("train") == splits.size("train") + 1
    assert joined.labels["train"][-1] == 2 and joined.files["train"][-1] == extra[0]
    assert joined.size("val") == splits.size("val")
    last = list(joined.raw["train"].as_numpy_iterator())[-1]
    assert last[0].decode() == extra[0] and last[1] == 2


def test_self_training_writes_a_run_per_round_and_the_summary(tmp_path):
    labelled = make_image_folder(tmp_path / "labelled", per_class=5)
    unlabelled = make_image_folder(tmp_path / "unlabelled", per_class=3)
    config = tiny_config(labelled, tmp_path / "out", epochs=1, fine_tune_epochs=0,
                         strategy="feature_extraction", self_training_rounds=1, tensorboard=False,
                         self_training_precision=0.0)
    config.data.unlabelled_source = str(unlabelled)
    result = self_train(config)
    assert [r.round for r in result.rounds] == [0, 1] and result.unlabelled == 9
    # Precision 0 accepts the lowest threshold, which every softmax top probability of
    # three classes reaches: all nine are pseudo-labelled, and their accuracy is measured
    # against the unlabelled folder's own class names.
    assert result.rounds[1].threshold == 0.3 and result.rounds[1].pseudo_labelled == 9
    assert 0.0 <= result.rounds[1].pseudo_label_accuracy <= 1.0
    summary = json.loads((tmp_path / "out" / "self_training.json").read_text())
    assert summary["best_round"] in (0, 1)
    for r in (0, 1):
        assert (tmp_path / "out" / f"round_{r}" / "model.keras").is_file()
    counts = json.loads((tmp_path / "out" / "round_1" / "data_summary.json").read_text())
    assert sum(counts["counts"]["train"].values()) == 9 + sum(
        json.loads((tmp_path / "out" / "round_0" / "data_summary.json").read_text())
        ["counts"]["train"].values())
    with pytest.raises(FileExistsError, match="already holds"):
        self_train(config)
