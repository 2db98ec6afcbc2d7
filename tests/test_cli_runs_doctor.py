"""`tfxfer runs` (the table of run directories) and `tfxfer doctor` (the installation)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tfxfer import cli
from tfxfer.config import load_config
from tfxfer.reports.runs import format_runs, list_runs
from tfxfer.runtime import doctor

ROOT = Path(__file__).resolve().parents[1]


def _run_dir(root: Path, name: str, *, source: str, strategy: str, accuracy=None,
             model=True, when: float, text=False) -> Path:
    config = load_config(overrides={"data": {"source": source},
                                    "train": {"strategy": strategy}}).to_dict()
    if text:
        config["model"]["image"] = None
    else:
        config["model"]["text"] = None
        config["model"]["image"]["backbone_kwargs"] = {"alpha": 0.25}
    path = root / name
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(config))
    (path / "labels.txt").write_text("neg\npos\n" if text else "a\nb\nc\n")
    if accuracy is not None:
        (path / "metrics.json").write_text(json.dumps({"accuracy": accuracy, "macro_f1": 0.5}))
    if model:
        (path / "model.keras").write_bytes(b"zip")
    else:
        (path / "checkpoints").mkdir()
    os.utime(path / "config.json", (when, when))
    return path


def test_runs_lists_each_run_oldest_first(tmp_path, capsys):
    _run_dir(tmp_path, "20261207-0100", source="/data/photos", strategy="fine_tune",
             accuracy=0.8125, when=1_800_000_100)
    _run_dir(tmp_path, "imdb", source="/data/train.csv", strategy="feature_extraction",
             accuracy=0.75, when=1_800_000_000, text=True)
    _run_dir(tmp_path, "killed", source="tfds:tf_flowers", strategy="fine_tune_all",
             model=False, when=1_800_000_200)
    (tmp_path / "lr-find-x").mkdir()  # not a run: no config.json
    runs = list_runs(tmp_path)
    assert [r.path.name for r in runs] == ["imdb", "20261207-0100", "killed"]
    assert cli.main(["runs", "--dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["date", "run", "data", "model", "strategy", "classes", "test",
                                "acc", "F1", "status"]
    imdb, photos, killed = (line.split() for line in lines[1:])
    assert imdb[2:] == ["imdb", "train.csv", "glove_6b_50d", "feature_extraction", "2",
                        "0.7500", "0.5000", "done"]
    assert photos[4:] == ["mobilenet_v2", "a=0.25", "fine_tune", "3", "0.8125", "0.5000",
                          "done"]
    assert killed[-4:] == ["3", "-", "-", "resumable"] and "tfds:tf_flowers" in killed


def test_runs_of_a_missing_or_empty_folder(tmp_path, capsys, caplog):
    assert cli.main(["runs", "--dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == f"no runs in {tmp_path}"
    assert cli.main(["runs", "--dir", str(tmp_path / "nope")]) == 2
    assert "--dir: no such directory" in caplog.text
    assert format_runs([]).split() == ["date", "run", "data", "model", "strategy", "classes",
                                       "test", "acc", "F1", "status"]


def test_runs_needs_no_tensorflow(tmp_path):
    _run_dir(tmp_path, "r", source="/p", strategy="fine_tune", accuracy=0.5, when=1e9)
    code = ("import sys\nfrom tfxfer import cli\n"
            f"code = cli.main(['runs', '--dir', {str(tmp_path)!r}])\n"
            "print(code, 'tensorflow' in sys.modules, 'keras' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert done.stdout.splitlines()[-1] == "0 False False", done.stderr


def test_doctor_reports_versions_weights_packages_and_assets(tmp_path, monkeypatch):
    home = tmp_path / "keras"
    (home / "models").mkdir(parents=True)
    (home / "models" / "mobilenet_1_0_224_tf_no_top.h5").write_bytes(b"x" * 2_000_000)
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.setenv("TFXFER_ASSETS", str(tmp_path / "nowhere"))
    monkeypatch.setattr(doctor, "OPTIONAL", (("json", "always there"),
                                             ("no_such_module_xyz", "nothing")))
    report = doctor.format_report(doctor.collect(with_devices=False))
    sections = [line for line in report.splitlines() if not line.startswith(" ")]
    assert sections == ["versions:", "oneDNN:", "weights:", "optional:", "paths:"]
    assert re.search(rf"python +{re.escape(sys.version.split()[0])} ", report)
    assert "keras-hub" in report and "tensorflow-datasets" in report and "numpy" in report
    assert re.search(r"mobilenet_1_0_224_tf_no_top.h5 +2.0 MB", report)
    assert re.search(r"json +present  \(always there\)", report)
    assert re.search(r"no_such_module_xyz +MISSING  \(nothing\)", report)
    assert f"{tmp_path / 'nowhere'} (NOT a folder)" in report
    assert "TF_ENABLE_ONEDNN_OPTS" in report


def test_doctor_lists_the_devices(capsys):
    assert cli.main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "devices:" in out and "/physical_device:CPU:0" in out
    import tensorflow as tf

    assert tf.__version__ in out


@pytest.mark.parametrize("name", ["runs", "doctor"])
def test_the_new_commands_have_help(name, capsys):
    with pytest.raises(SystemExit):
        cli.main([name, "--help"])
    assert capsys.readouterr().out.startswith(f"usage: tfxfer {name}")
