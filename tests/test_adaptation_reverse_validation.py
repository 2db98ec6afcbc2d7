"""Reverse validation of DANN's λ ceiling (`adaptation.lambda_max: auto`): no target label used."""

from __future__ import annotations

import csv
import json

import pytest
from adaptation_helpers import dann_config, write_domain

from tfxfer import rundir
from tfxfer.adaptation.reverse_validation import (
    REVERSE_VALIDATION,
    CandidateScore,
    candidates,
    choose,
    choose_lambda,
)
from tfxfer.cli import parse_train_config
from tfxfer.config import load_config
from tfxfer.experiment import Experiment, train

GRID = [0.0, 1.0]


def _score(lambda_max: float, accuracy: float, features: str = "pooling") -> CandidateScore:
    return CandidateScore(lambda_max, accuracy, 0.9, 0.6, 0.6, [1, 1, 1], features)


@pytest.mark.parametrize("scores, choice", [
    ([(0.0, 0.70), (0.1, 0.82), (0.3, 0.80), (1.0, 0.75)], 0.1),
    ([(1.0, 0.90), (0.3, 0.90), (0.1, 0.60)], 0.3),  # a tie goes to the smaller λ
    ([(0.5, 0.40)], 0.5),
])
def test_choice_is_the_candidate_whose_reverse_classifier_scores_best(scores, choice):
    assert choose_lambda([_score(*s) for s in scores]) == choice


def test_features_are_chosen_with_lambda_and_ties_go_to_the_earlier_choice():
    best = choose([_score(0.3, 0.78), _score(0.1, 0.79, "hidden"), _score(1.0, 0.66, "hidden")])
    assert (best.features, best.lambda_max) == ("hidden", 0.1)
    tie = choose([_score(0.1, 0.8, "hidden"), _score(0.1, 0.8, "pooling")])
    assert tie.features == "pooling"


@pytest.mark.parametrize("adaptation, hidden_units, pairs", [
    ({"lambda_max": "auto", "lambda_grid": [0.0, 1.0]}, 16,
     [("pooling", 0.0), ("pooling", 1.0)]),
    ({"features": "auto", "lambda_max": 0.3}, 16,
     [("pooling", 0.3), ("hidden", 0.3)]),
    ({"features": "auto", "lambda_max": "auto", "lambda_grid": [0.1, 1.0]},
     16, [("pooling", 0.1), ("pooling", 1.0), ("hidden", 0.1), ("hidden", 1.0)]),
    ({"features": "auto", "lambda_max": 1.0}, 0, [("pooling", 1.0)]),
])
def test_candidates_cover_what_is_auto(adaptation, hidden_units, pairs):
    config = load_config(overrides={
        "model": {"hidden_units": hidden_units},
        "train": {"strategy": "domain_adaptation"},
        "adaptation": {"target_source": "target", **adaptation}})
    assert candidates(config) == pairs


@pytest.mark.parametrize("adaptation, other, message", [
    ({"features": "middle"}, {}, "['pooling', 'hidden', 'auto']. Received: 'middle'"),
    ({"features": "auto"}, {"data": {"val_fraction": 0.0}}, "val_fraction=0.0"),
    ({"features": "auto", "target_source": None}, {"train": {"strategy": "from_scratch"}},
     "adaptation.features 'auto' (reverse validation) needs strategy 'domain_adaptation'"),
    ({"lambda_max": "best"}, {}, "must be a number >= 0 or 'auto'. Received: 'best'"),
    ({"lambda_max": -0.5}, {}, "must be a number >= 0 or 'auto'. Received: -0.5"),
    ({"lambda_grid": []}, {}, "adaptation.lambda_grid must be a non-empty list of numbers >= 0"),
    ({"lambda_grid": [0.1, -1.0]}, {}, "Received: [0.1, -1.0]"),
    ({"lambda_grid": [0.1, "x"]}, {}, "Received: [0.1, 'x']"),
    ({"lambda_grid": [0.1, float("nan")]}, {}, "non-empty list of numbers >= 0"),
    ({"lambda_grid": [0.3, 0.3]}, {}, "lists a value twice"),
    ({"reverse_validation_fraction": 0.0}, {}, "reverse_validation_fraction must be in (0, 1]"),
    ({"reverse_validation_fraction": 1.5}, {}, "reverse_validation_fraction must be in (0, 1]"),
    ({"lambda_max": "auto", "target_source": None}, {"train": {"strategy": "from_scratch"}},
     "adaptation.lambda_max 'auto' (reverse validation) needs strategy 'domain_adaptation'"),
    ({"lambda_max": "auto"}, {"data": {"val_fraction": 0.0}}, "set data.val_fraction > 0"),
])
def test_bad_lambda_settings_are_clear_errors(adaptation, other, message):
    sections = {"train": {"strategy": "domain_adaptation", **other.get("train", {})},
                "data": other.get("data", {}),
                "adaptation": {"target_source": "target", **adaptation}}
    with pytest.raises(ValueError) as error:
        load_config(overrides=sections)
    assert message in str(error.value)


def test_cli_takes_auto_and_a_candidate_grid():
    config = parse_train_config([
        "--data", "source", "--target-data", "target", "--strategy", "domain_adaptation",
        "--adaptation-lambda", "auto", "--adaptation-lambdas", "0,0.05,0.5",
        "--reverse-validation-fraction", "0.2"])
    assert config.adaptation.lambda_max == "auto"
    assert config.adaptation.lambda_grid == [0.0, 0.05, 0.5]
    assert config.adaptation.reverse_validation_fraction == 0.2
    assert config.adaptation.target_source == "target"
    with pytest.raises(SystemExit):
        parse_train_config(["--data", "source", "--adaptation-lambdas", "0,low"])


def test_auto_lambda_trains_with_the_reverse_validation_choice(domains, tmp_path):
    result = train(dann_config(domains, tmp_path / "run", {
        "lambda_max": "auto", "lambda_grid": GRID, "reverse_validation_fraction": 0.5}))
    scores = json.loads((result.run_dir / REVERSE_VALIDATION).read_text())
    assert [c["lambda_max"] for c in scores["candidates"]] == GRID
    best = max(c["reverse_accuracy"] for c in scores["candidates"])
    assert scores["choice"] == min(c["lambda_max"] for c in scores["candidates"]
                                   if c["reverse_accuracy"] == best)
    # 27 source train images, batch 8, 2 epochs: 8 steps; half of them per run.
    assert (scores["run_steps"], scores["steps"], scores["target_examples"]) == (8, 4, 24)
    assert all(sum(c["pseudo_label_counts"]) == 24 for c in scores["candidates"])
    saved = json.loads((result.run_dir / rundir.CONFIG).read_text())
    assert saved["adaptation"]["lambda_max"] == scores["choice"]
    lambdas = [float(row["lambda"])
               for row in csv.DictReader((result.run_dir / rundir.HISTORY).open())]
    assert 0.0 <= max(lambdas) <= scores["choice"] + 1e-6
    assert "Reverse validation of λ" in (result.run_dir / "report.html").read_text()


def test_auto_features_train_with_the_reverse_validation_choice(domains, tmp_path):
    result = train(dann_config(domains, tmp_path / "run", {
        "features": "auto", "lambda_max": 1.0, "reverse_validation_fraction": 0.5}))
    scores = json.loads((result.run_dir / REVERSE_VALIDATION).read_text())
    assert [(c["features"], c["lambda_max"]) for c in scores["candidates"]] == [
        ("pooling", 1.0), ("hidden", 1.0)]
    best = max(scores["candidates"], key=lambda c: c["reverse_accuracy"])
    assert scores["features"] == best["features"]
    saved = json.loads((result.run_dir / rundir.CONFIG).read_text())
    assert saved["adaptation"]["features"] == scores["features"]
    assert "domain head reads" in (result.run_dir / "report.html").read_text()


def test_target_labels_are_never_read(tmp_path):
    """Right and wrong class subfolders (same images, same file order) give the same scores.

    In the wrong folder class 0 sits under "1" and classes 1 and 2 under "2", so
    sorted paths list the images in the same order as in the right folder. Every
    run restarts from the seed, so equal inputs give equal scores (on CPU, without
    op determinism: checked repeatedly).
    """
    source = write_domain(tmp_path / "source", 12, False, 0)
    target_test = write_domain(tmp_path / "target_test", 4, True, 2)
    scores = {}
    for name, folders in (("right", None), ("wrong", {0: "1", 1: "2", 2: "2"})):
        target = write_domain(tmp_path / name, 8, True, 1, folder_names=folders)
        domains = {"source": source, "target": target, "target_test": target_test}
        config = dann_config(domains, tmp_path / f"run_{name}", {
            "lambda_max": "auto", "lambda_grid": GRID, "reverse_validation_fraction": 0.5})
        Experiment(config).load_data()
        scores[name] = json.loads((tmp_path / f"run_{name}" / REVERSE_VALIDATION).read_text())
    for key in ("choice", "candidates"):
        assert scores["right"][key] == scores["wrong"][key], key
