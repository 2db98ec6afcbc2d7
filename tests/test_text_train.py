"""Text runs through the shared machinery: CLI, run directory, DataFrames, TFDS."""

import csv
import json

import pandas as pd
import pytest
from text_helpers import build_tiny_encoder, review_rows, write_csv

from tfxfer import cli, rundir
from tfxfer.config import load_config
from tfxfer.data.text import load_dataframe_splits
from tfxfer.experiment import evaluate_run, train

FAST = ["--batch-size", "4", "--verbose", "0", "--seed", "1", "--epochs", "1",
        "--fine-tune-epochs", "1", "--no-tensorboard"]


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    return build_tiny_encoder(tmp_path_factory.mktemp("encoder") / "tiny")


def _overrides(source, out, encoder, **train):
    return {
        "data": {"source": str(source), "batch_size": 4, "seed": 1,
                 "val_fraction": 0.2, "test_fraction": 0.2},
        "model": {"text": {"encoder": str(encoder)}, "hidden_units": 4},
        "train": {"epochs": 1, "fine_tune_epochs": 1, "verbose": 0, "tensorboard": False,
                  "learning_rate": 0.05, **train},
        "out": str(out),
    }


def test_train_csv_with_test_data_end_to_end(encoder_dir, tmp_path, capsys, caplog):
    train_csv = write_csv(tmp_path / "train.csv", review_rows(24))
    test_rows = review_rows(8, seed=3)
    test_csv = write_csv(tmp_path / "test.csv", test_rows)
    out = tmp_path / "run"
    code = cli.main(["train", "--data", str(train_csv), "--test-data", str(test_csv),
                     "--encoder", str(encoder_dir), "--out", str(out), "--image-size", "64",
                     "--strategy", "fine_tune", "--val-fraction", "0.25", *FAST])
    assert code == 0
    # An image setting given to a text run is named as unused, and not kept.
    assert "The data are text: these settings are not used: model.image.image_size=64" in (
        caplog.text)
    assert json.loads((out / rundir.CONFIG).read_text())["model"]["image"] is None
    for name in (rundir.CONFIG, rundir.LABELS, rundir.DATA_SUMMARY, rundir.HISTORY,
                 rundir.PHASES, rundir.METRICS, rundir.PREDICTIONS, rundir.MODEL):
        assert (out / name).is_file(), name
    config = json.loads((out / rundir.CONFIG).read_text())
    assert config["data"]["test_source"] == str(test_csv)
    summary = json.loads((out / rundir.DATA_SUMMARY).read_text())
    assert summary["modality"] == "text"
    assert summary["counts"] == {"train": {"neg": 9, "pos": 9}, "val": {"neg": 3, "pos": 3},
                                 "test": {"neg": 4, "pos": 4}}
    phases = json.loads((out / rundir.PHASES).read_text())
    assert [(p["name"], p["trainable_weights"]) for p in phases] == [
        ("head", 2), ("fine_tune", 3)]  # phase 2 adds the embedding
    with (out / rundir.PREDICTIONS).open(newline="") as f:
        predictions = list(csv.DictReader(f))
    assert [row["input"] for row in predictions] == [t for t, _ in test_rows]
    metrics = json.loads((out / rundir.METRICS).read_text())
    assert metrics["examples"] == 8 and "test accuracy:" in capsys.readouterr().out

    again = evaluate_run(out)  # reloads model.keras (hub layer and all)
    assert again.accuracy == metrics["accuracy"]
    assert again.confusion.tolist() == metrics["confusion_matrix"]


def test_train_csv_with_the_default_offline_glove_encoder(tmp_path, capsys):
    data = write_csv(tmp_path / "reviews.csv", review_rows(20))
    out = tmp_path / "run"
    assert cli.main(["train", "--data", str(data), "--out", str(out), *FAST]) == 0
    config = json.loads((out / rundir.CONFIG).read_text())
    assert config["model"]["text"]["encoder"] == "glove_6b_50d"
    phases = json.loads((out / rundir.PHASES).read_text())
    assert phases[1]["trainable_params"] - phases[0]["trainable_params"] == 101_000 * 50
    assert "test accuracy:" in capsys.readouterr().out


def test_train_from_a_dataframe(encoder_dir, tmp_path):
    frame = pd.DataFrame(review_rows(24), columns=["review", "sentiment"])
    config = load_config(overrides=_overrides("DataFrame", tmp_path / "run", encoder_dir,
                                              strategy="fine_tune_all"))
    config.data.text_column, config.data.label_column = "review", "sentiment"
    result = train(config, splits=load_dataframe_splits(frame, config.data))
    assert result.splits.source == "DataFrame" and result.evaluation is not None
    assert len(result.evaluation.y_true) == 4
    assert [p.name for p in result.history.phases] == ["head", "fine_tune"]


def test_from_scratch_text_trains_the_embedding_from_the_start(encoder_dir, tmp_path):
    source = write_csv(tmp_path / "reviews.csv", review_rows(20))
    result = train(load_config(overrides=_overrides(source, tmp_path / "run", encoder_dir,
                                                    strategy="from_scratch")))
    assert [(p.name, p.trainable_weights) for p in result.history.phases] == [("scratch", 5)]


def test_tfds_imdb_reviews_through_the_real_tfds_load(encoder_dir, tmp_path):
    import tensorflow_datasets as tfds

    config = load_config(overrides=_overrides("tfds:imdb_reviews", tmp_path / "run",
                                              encoder_dir))
    with tfds.testing.mock_data(num_examples=20):
        result = train(config)
    assert result.splits.modality == "text"
    assert result.splits.class_names == ["neg", "pos"]
    assert result.evaluation is not None and len(result.history.phases) == 2
