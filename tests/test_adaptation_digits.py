"""DANN on real digits (a small subsample of MNIST -> MNIST-M): it must beat source only.

The source-only arm is the same domain-adversarial run with λ = 0: the domain head
still trains (so its accuracy shows how separable the domains are without
adaptation), but no gradient reaches the features, so the classifier learns from
source labels alone, with the same batches and learning-rate schedule as DANN.
Gated on the offline assets (MNIST and the flower photos MNIST-M is blended with).
The margins were measured over seeds 0-4 with these settings (see bench/README.md).
"""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest

from tfxfer import rundir
from tfxfer.adaptation.digits import build_mnist_m
from tfxfer.config import load_config
from tfxfer.experiment import train

SOURCE, TARGET, TEST = 2000, 2000, 1000
EPOCHS = 10
# Measured over seeds 0-4: DANN - source only = +0.195, +0.127, +0.196, +0.187, +0.212.
MARGIN = 0.08
# DANN's domain classifier must end this much closer to chance than the λ = 0 one's
# (measured over seeds 0-4: 0.97-0.98 with λ = 0, 0.79-0.83 with DANN; gaps 0.15-0.18).
DOMAIN_MARGIN = 0.08


def digit_arms(root, assets, seed: int, epochs: int = EPOCHS) -> dict:
    """Trains source-only and DANN on a fresh MNIST/MNIST-M subsample; returns both runs."""
    folders = build_mnist_m(assets / "digits" / "mnist.npz", assets / "flower_photos",
                            root / "data", source=SOURCE, target_train=TARGET,
                            target_test=TEST, seed=seed)
    runs = {}
    for arm, lambda_max in (("source_only", 0.0), ("dann", 1.0)):
        data = {"source": str(folders["source"]), "test_source": str(folders["target_test"]),
                "val_fraction": 0.1, "batch_size": 32, "seed": seed}
        runs[arm] = train(load_config(overrides={
            "data": data,
            "model": {"hidden_units": 100, "dropout": 0.0,
                      "image": {"backbone": "dann_mnist_cnn", "weights": "none",
                                "image_size": 28, "augment": False}},
            "adaptation": {"target_source": str(folders["target_train"]),
                           "target_test_source": str(folders["target_test"]),
                           "lambda_max": lambda_max},
            "train": {"strategy": "domain_adaptation",
                      "epochs": epochs, "fine_tune_epochs": 0,
                      "optimizer": "sgd", "learning_rate": 0.01, "verbose": 0,
                      "tensorboard": False},
            "out": str(root / arm),
        }))
    return runs


@pytest.mark.assets
def test_dann_beats_source_only_on_mnist_m_and_domain_accuracy_falls(assets, tmp_path):
    runs = digit_arms(tmp_path, assets, seed=0)
    source_only = runs["source_only"].evaluation.accuracy
    dann = runs["dann"].evaluation.accuracy
    assert dann > source_only + MARGIN, (dann, source_only)
    domain = {arm: _last(run, "domain_accuracy") for arm, run in runs.items()}
    assert domain["dann"] < domain["source_only"] - DOMAIN_MARGIN, domain


def _last(run, column: str) -> float:
    rows = list(csv.DictReader((run.run_dir / rundir.HISTORY).open()))
    return float(rows[-1][column])


def _digits_app():
    spec = importlib.util.spec_from_file_location(
        "digits_app", Path(__file__).resolve().parents[1] / "apps" / "digits" / "run.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    return app


@pytest.mark.assets
def test_digits_app_chooses_usps_settings_by_reverse_validation(assets, tmp_path):
    """By default the USPS pair's DANN features and λ come from reverse validation."""
    out = tmp_path / "digits"
    assert _digits_app().main([
        "--assets", str(assets), "--out", str(out), "--pairs", "usps", "--source-digits",
        "400", "--target-digits", "200", "--test-digits", "100", "--epochs", "1",
        "--adaptation-lambdas", "0,1"]) == 0
    row = json.loads((out / "table.json").read_text())["rows"][0]
    scores = row["dann_lambda"]["reverse_validation"]["scores"]
    assert set(scores) == {"pooling λ 0", "pooling λ 1", "hidden λ 0", "hidden λ 1"}
    best = max(scores.values())
    winners = {tuple(k.split(" λ ")) for k, v in scores.items() if v == best}
    assert (row["dann_features"], f"{row['dann_lambda']['lambda']:g}") in winners
    saved = json.loads((out / "usps" / "dann" / "config.json").read_text())["adaptation"]
    assert (saved["features"], saved["lambda_max"]) == (
        row["dann_features"], row["dann_lambda"]["lambda"])
    assert f"| {row['dann_features']} (reverse validation) |" in (out / "table.md").read_text()


def test_digits_app_settings_per_pair_unless_given():
    app = _digits_app()
    args = app.parse([])
    assert app.dann_setting("mnist_m", "adaptation_lambda", args) == 1.0
    assert app.dann_setting("usps", "adaptation_features", args) == "auto"
    args = app.parse(["--adaptation-lambda", "0.3", "--adaptation-features", "hidden"])
    assert app.dann_setting("usps", "adaptation_lambda", args) == 0.3
    assert app.dann_setting("mnist_m", "adaptation_features", args) == "hidden"


@pytest.mark.assets
def test_digits_app_table_with_features_chosen_by_the_bound(assets, tmp_path):
    """apps/digits/run.py end to end on a few digits: every arm, the bound's choice, the table."""
    app = _digits_app()
    out = tmp_path / "digits"
    assert app.main(["--assets", str(assets), "--out", str(out), "--pairs", "usps",
                     "--source-digits", "400", "--target-digits", "200", "--test-digits",
                     "100", "--epochs", "1", "--adaptation-features", "bound",
                     "--adaptation-lambda", "1"]) == 0
    row = json.loads((out / "table.json").read_text())["rows"][0]
    scores = row["bound_scores"]
    assert set(scores) == {"pooling", "hidden"}
    for score in scores.values():
        assert score["score"] == pytest.approx(score["source_error"] + score["pad"] / 2)
    chosen = min(scores, key=lambda c: scores[c]["score"])
    assert row["dann_features"] == chosen
    assert (out / "usps" / f"dann_{chosen}" / "model.keras").is_file()
    table = (out / "table.md").read_text()
    assert f"| {chosen} (bound score) |" in table and "bound scores of the DANN runs" in table


def _bar_pair(root):
    from adaptation_helpers import write_domain

    from tfxfer.adaptation.arms import DomainPair

    return DomainPair(write_domain(root / "source", 8, False, 0),
                      write_domain(root / "target_train", 4, True, 1),
                      write_domain(root / "target_test", 4, True, 2))


def test_arm_configs_follow_the_app_settings(tmp_path):
    from tfxfer.adaptation.arms import ArmSettings, arm_overrides

    pair = _bar_pair(tmp_path)
    app = _digits_app()
    settings = app.settings("usps", app.parse(["--epochs", "3", "--adaptation-lambdas", "0,1"]))
    dann = arm_overrides("dann", pair, settings)
    assert dann["train"] == {"strategy": "domain_adaptation", "epochs": 3}
    assert dann["adaptation"] == {"target_source": str(pair.target_train),
                                  "target_test_source": str(pair.target_test),
                                  "lambda_max": "auto", "lambda_grid": [0.0, 1.0],
                                  "features": "auto"}
    target = arm_overrides("train_on_target", pair, settings)
    # The same number of steps on half as many examples: twice the epochs.
    assert target["data"]["source"] == str(pair.target_train)
    assert target["train"] == {"strategy": "from_scratch", "epochs": 6}
    pretrained = arm_overrides("source_only", pair, ArmSettings(backbone="mobilenet"))
    assert pretrained["train"]["strategy"] == "fine_tune"
    assert pretrained["model"]["image"]["weights"] == "imagenet"
    with pytest.raises(ValueError, match="Unknown arm 'dan'"):
        arm_overrides("dan", pair, settings)


@pytest.mark.large
def test_compare_arms_on_tiny_domains_gives_the_apps_row_and_table(tmp_path):
    """The three arms of `tfxfer.adaptation.arms` (what the app runs) on tiny bar domains.

    Three runs, one of them DANN: 20 s at load average 7 on 2 cores, 55 s at 16.
    """
    from tfxfer.adaptation.arms import ArmSettings, arms_table, compare_arms

    pair = _bar_pair(tmp_path)
    config = tmp_path / "arms.yaml"
    config.write_text(json.dumps({
        "data": {"batch_size": 8, "val_fraction": 0.25},
        "model": {"hidden_units": 8, "image": {"backbone": "dann_mnist_cnn", "weights": "none",
                                               "image_size": 28, "augment": False}},
        "train": {"fine_tune_epochs": 0, "verbose": 0, "tensorboard": False}}))
    row = compare_arms("bars", pair, ArmSettings(epochs=1, seed=1), config, tmp_path / "out")
    assert set(row["accuracy"]) == {"source_only", "dann", "train_on_target"}
    saved = {arm: json.loads((tmp_path / "out" / "bars" / arm / "config.json").read_text())
             for arm in row["accuracy"]}
    assert saved["dann"]["train"]["strategy"] == "domain_adaptation"
    assert saved["source_only"]["train"]["strategy"] == "from_scratch"
    assert saved["source_only"]["data"]["source"] == str(pair.source)
    # The same steps on half as many examples: twice the epochs.
    assert saved["train_on_target"]["train"]["epochs"] == 2
    assert saved["train_on_target"]["data"]["source"] == str(pair.target_train)
    assert (row["dann_features"], row["dann_lambda"], row["bound_scores"]) == (
        "pooling", {"lambda": 1.0}, {})
    assert (tmp_path / "out" / "bars_features.png").is_file()
    table = arms_table([row], {"bars": "Bars"})
    assert f"| Bars | {row['accuracy']['source_only']:.4f} |" in table
