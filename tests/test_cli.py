import csv
import json

import pytest
from conftest import tiny_config

from tfxfer import cli, rundir
from tfxfer.experiment import evaluate_run, train

TINY_FLAGS = ["--backbone", "mobilenet", "--backbone-arg", "alpha=0.25", "--weights", "none",
              "--image-size", "32", "--batch-size", "4", "--verbose", "0", "--seed", "1"]


def test_train_end_to_end_writes_the_run_directory(image_folder, tmp_path, capsys):
    out = tmp_path / "run"
    code = cli.main(["train", "--data", str(image_folder), "--out", str(out),
                     "--strategy", "fine_tune", "--epochs", "1", "--fine-tune-epochs", "1",
                     "--val-fraction", "0.2", "--test-fraction", "0.2", *TINY_FLAGS])
    assert code == 0
    for name in (rundir.CONFIG, rundir.LABELS, rundir.DATA_SUMMARY, rundir.SPLITS,
                 rundir.HISTORY, rundir.PHASES, rundir.METRICS, rundir.PER_CLASS,
                 rundir.CONFUSION, rundir.PREDICTIONS, rundir.VAL_PREDICTIONS, rundir.MODEL):
        assert (out / name).is_file(), name
    config = json.loads((out / rundir.CONFIG).read_text())
    assert config["model"]["image"]["backbone_kwargs"] == {"alpha": 0.25}
    assert config["model"]["image"]["image_size"] == 32
    assert config["model"]["text"] is None  # an image run keeps only its own section
    assert config["train"]["strategy"] == "fine_tune"
    history = list(csv.DictReader((out / rundir.HISTORY).open()))
    assert [(r["epoch"], r["phase"]) for r in history] == [("1", "head"), ("2", "fine_tune")]
    metrics = json.loads((out / rundir.METRICS).read_text())
    assert metrics["examples"] == 3 and len(metrics["per_class"]) == 3
    assert (out / rundir.LABELS).read_text().split() == ["blue", "green", "red"]
    assert "test accuracy:" in capsys.readouterr().out

    # A reloaded run evaluates to the same numbers on the same test split.
    again = evaluate_run(out)
    assert again.accuracy == metrics["accuracy"]
    assert again.confusion.tolist() == metrics["confusion_matrix"]


def test_config_file_then_flags(image_folder, tmp_path):
    config_file = tmp_path / "c.yaml"
    config_file.write_text("train:\n  epochs: 2\n  strategy: feature_extraction\n"
                           "model:\n  dropout: 0.4\n")
    args = cli.build_parser().parse_args(
        ["train", "--config", str(config_file), "--epochs", "1", "--data", str(image_folder)])
    from tfxfer.config import load_config

    config = load_config(args.config, cli.train_overrides(args))
    assert config.train.epochs == 1  # the flag wins over the file
    assert config.train.strategy == "feature_extraction" and config.model.dropout == 0.4


def test_unknown_config_key_is_named(tmp_path):
    from tfxfer.config import load_config

    path = tmp_path / "c.json"
    path.write_text(json.dumps({"train": {"epocs": 3}}))
    with pytest.raises(ValueError, match="Unknown config key 'train.epocs'"):
        load_config(path)


def test_existing_run_directory_is_never_overwritten(image_folder, tmp_path):
    out = tmp_path / "run"
    train(tiny_config(image_folder, out, strategy="feature_extraction"))
    before = (out / rundir.MODEL).stat().st_mtime_ns
    with pytest.raises(FileExistsError, match="already holds a run"):
        train(tiny_config(image_folder, out, strategy="feature_extraction"))
    assert (out / rundir.MODEL).stat().st_mtime_ns == before


def test_cli_reports_bad_input_without_traceback(tmp_path, caplog):
    code = cli.main(["train", "--data", str(tmp_path / "missing"), "--out",
                     str(tmp_path / "r"), *TINY_FLAGS])
    assert code == 2
    assert "--data (data.source) not found" in caplog.text


def test_list_backbones(capsys):
    assert cli.main(["list-backbones"]) == 0
    out = capsys.readouterr().out
    assert "mobilenet_v2" in out and "resnet50" in out and "vgg16" in out


@pytest.mark.parametrize("strategy", ["feature_extraction", "fine_tune_all", "from_scratch"])
def test_each_strategy_runs(image_folder, tmp_path, strategy):
    result = train(tiny_config(image_folder, tmp_path / strategy, strategy=strategy))
    phases = [p.name for p in result.history.phases]
    expected = {"feature_extraction": ["head"], "fine_tune_all": ["head", "fine_tune"],
                "from_scratch": ["scratch"]}[strategy]
    assert phases == expected
    if strategy == "from_scratch":
        assert result.config.model.image.weights is None
