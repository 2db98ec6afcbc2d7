"""`tfxfer train --repeats N`: the same command over N seeds, mean ± sd of test metrics."""

import json
import statistics

import pytest
from test_cli import TINY_FLAGS

from tfxfer import cli, rundir
from tfxfer.config import load_config
from tfxfer.repeats import REPEATS, check_repeatable, scalar_metrics


def test_repeats_train_each_seed_and_summarise_their_test_metrics(image_folder, tmp_path,
                                                                   capsys):
    out = tmp_path / "runs"
    flags = list(TINY_FLAGS)
    flags[flags.index("--seed") + 1] = "7"
    assert cli.main(["train", "--data", str(image_folder), "--out", str(out), "--strategy",
                     "feature_extraction", "--epochs", "1", "--val-fraction", "0.2",
                     "--test-fraction", "0.2", "--repeats", "2", *flags]) == 0
    printed = capsys.readouterr().out
    assert "2 runs, seeds 7, 8: mean ± sd" in printed and "accuracy" in printed
    report = json.loads((out / REPEATS).read_text())
    assert report["seeds"] == [7, 8]
    accuracies = []
    for seed in (7, 8):
        run = out / f"seed-{seed}"
        assert json.loads((run / rundir.CONFIG).read_text())["data"]["seed"] == seed
        accuracies.append(json.loads((run / rundir.METRICS).read_text())["accuracy"])
    summary = report["summary"]["accuracy"]
    assert summary["mean"] == pytest.approx(statistics.fmean(accuracies))
    assert summary["sd"] == pytest.approx(statistics.stdev(accuracies))
    assert (summary["min"], summary["max"]) == (min(accuracies), max(accuracies))
    assert "examples" not in report["summary"]  # counts are not averaged

    # Never written over: the same --out again is refused before training.
    assert cli.main(["train", "--data", str(image_folder), "--out", str(out),
                     "--repeats", "2", *flags]) == 2


def test_repeats_refuse_resume_and_nonsense_counts(image_folder, tmp_path, caplog):
    base = ["train", "--data", str(image_folder), "--out", str(tmp_path / "r"), *TINY_FLAGS]
    assert cli.main([*base, "--repeats", "0"]) == 2
    assert "--repeats must be at least 1. Received: 0" in caplog.text
    assert not (tmp_path / "r").exists()
    config = load_config(None, {"data": {"source": str(image_folder)}})
    with pytest.raises(ValueError, match="cannot be combined with --resume"):
        check_repeatable(config, 2, str(tmp_path / "old"))


def test_task_metrics_are_flattened_per_output():
    metrics = {"outputs": {"label": {"task": "classification", "accuracy": 0.9, "examples": 5,
                                     "accuracy_interval": [0.8, 0.95]},
                           "rating": {"mae": 1.3, "spearman": 0.78, "mae_of_train_mean": 3.2}}}
    assert scalar_metrics(metrics) == {"label.accuracy": 0.9, "rating.mae": 1.3,
                                       "rating.spearman": 0.78}
