"""Multi-worker training on 127.0.0.1: the launcher, TF_CONFIG, chief-only outputs, restarts.

The launcher tests run `tfxfer --help`-sized commands and take seconds. The
training tests start two TensorFlow worker processes each and are marked
`large` (about 2 minutes each on a loaded 2-core machine).
"""

from __future__ import annotations

import io
import json
import os
import signal
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import make_image_folder, spread_backbone_weights, tiny_config

from tfxfer import rundir
from tfxfer.runtime.distribute import cluster_size, is_chief, read_tf_config, wants_multi_worker
from tfxfer.runtime.launch import free_ports, launch, tf_config

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 600


@pytest.fixture
def worker_env(monkeypatch, tmp_path):
    """Workers import this checkout and make their temporary dirs under tmp_path/tmp."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))  # this process caches TMPDIR
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    return tmp


def test_tf_config_names_every_worker_and_its_own_index():
    ports = free_ports(3)
    assert len(set(ports)) == 3
    config = tf_config(ports, 2)
    assert config["cluster"]["worker"] == [f"127.0.0.1:{p}" for p in ports]
    assert config["task"] == {"type": "worker", "index": 2}
    assert cluster_size(config) == 3


def test_auto_chooses_multi_worker_only_for_several_tasks(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert not wants_multi_worker("auto") and wants_multi_worker("multi_worker")
    monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config([1], 0)))
    assert not wants_multi_worker("auto")
    monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config([1, 2], 1)))
    assert wants_multi_worker("auto") and not wants_multi_worker("none")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        read_tf_config()


def test_single_process_strategies_are_chief():
    import tensorflow as tf

    assert is_chief(tf.distribute.get_strategy())


def test_launch_streams_prefixed_output_and_succeeds(worker_env):
    sink = io.StringIO()
    assert launch(["--help"], workers=2, timeout=120, sink=sink) == 0
    lines = sink.getvalue().splitlines()
    for index in (0, 1):
        assert any(line.startswith(f"[worker {index}] usage: tfxfer") for line in lines)


def test_launch_fails_as_a_whole_when_a_worker_fails(worker_env):
    sink = io.StringIO()
    assert launch(["no-such-command"], workers=2, timeout=120, sink=sink) == 2
    assert "invalid choice: 'no-such-command'" in sink.getvalue()


def test_restarts_need_a_train_command_with_an_out_dir():
    with pytest.raises(ValueError, match="--restarts needs a `train` command with --out"):
        launch(["train", "--data", "d"], workers=2, restarts=1)


def test_restarted_jobs_resume_the_run_once_it_exists(tmp_path):
    from tfxfer.runtime.launch import _resume_command

    command = ["train", "--data", "d", "--out", str(tmp_path)]
    assert _resume_command(command) == command  # killed before the run was set up
    (tmp_path / "config.json").write_text("{}")
    assert _resume_command(command) == [*command, "--resume", str(tmp_path)]
    assert _resume_command(_resume_command(command)).count("--resume") == 1


class _Resolver:
    def __init__(self, task_type, task_id):
        self.task_type, self.task_id = task_type, task_id

    def cluster_spec(self):
        import tensorflow as tf

        return tf.train.ClusterSpec({"worker": ["a:1", "b:2"]})


class _Strategy:
    def __init__(self, task_id):
        self.cluster_resolver = _Resolver("worker", task_id)


def test_only_worker_0_writes_the_run_dir_others_a_temp_dir_cleaned_up(tmp_path, worker_env):
    from tfxfer.runtime.distribute import output_dir, remove_output_dir

    run_dir = tmp_path / "run"
    assert output_dir(run_dir, _Strategy(0)) == run_dir
    out = output_dir(run_dir, _Strategy(1))
    assert out.parent == worker_env and out.name.endswith("-worker1")
    (out / "stale").write_text("x")  # as left by a SIGKILLed worker 1
    again = output_dir(run_dir, _Strategy(1))
    assert again == out and not (out / "stale").exists()
    remove_output_dir(run_dir, run_dir)
    remove_output_dir(again, run_dir)
    assert not list(worker_env.iterdir())


# --- two TensorFlow workers -------------------------------------------------------------

def _weights_file(root: Path, config) -> Path:
    import keras

    from tfxfer.image.model import build_image_classifier

    model = spread_backbone_weights(build_image_classifier(config.model, 3))
    path = root / "backbone.weights.h5"
    model.get_layer("backbone").save_weights(path)
    keras.backend.clear_session()
    return path


def _image_job(tmp_path: Path, fine_tune_epochs: int):
    """A config with a global batch of 6: 18 train, 6 val, 6 test images."""
    images = make_image_folder(tmp_path / "images", per_class=10)
    config = tiny_config(images, None, epochs=2, fine_tune_epochs=fine_tune_epochs,
                         learning_rate=0.01, tensorboard=False)
    config.data.batch_size = 6
    config.model.image.augment = False
    config.model.dropout = 0.0  # dropout masks are drawn per replica: no randomness to compare
    config.model.image.weights = str(_weights_file(tmp_path, config))
    args = [
        "train", "--data", str(images), "--batch-size", "6", "--seed", "1",
        "--val-fraction", "0.2", "--test-fraction", "0.2", "--backbone", "mobilenet",
        "--backbone-arg", "alpha=0.25", "--image-size", "32",
        "--weights", config.model.image.weights,
        "--epochs", "2", "--fine-tune-epochs", str(fine_tune_epochs), "--learning-rate", "0.01",
        "--dropout", "0", "--no-augment", "--no-tensorboard", "--verbose", "2",
        "--distribute", "multi_worker",
    ]
    return config, args


def _history(run_dir: Path) -> list[dict]:
    import csv

    with (run_dir / rundir.HISTORY).open() as f:
        return list(csv.DictReader(f))


def _assert_matches(run_dir: Path, reference, loss_tol: float) -> None:
    rows = _history(run_dir)
    assert [(int(r["epoch"]), r["phase"]) for r in rows] == [
        (r["epoch"], r["phase"]) for r in reference.history.rows]
    for mine, theirs in zip(rows, reference.history.rows):
        assert float(mine["loss"]) == pytest.approx(theirs["loss"], abs=loss_tol)
        assert float(mine["val_loss"]) == pytest.approx(theirs["val_loss"], abs=loss_tol)
    metrics = rundir.read_json(run_dir, rundir.METRICS)
    assert metrics["accuracy"] == pytest.approx(reference.evaluation.accuracy, abs=0.2)


@pytest.mark.large
def test_two_workers_match_one_process_with_the_same_global_batch(tmp_path, worker_env):
    from tfxfer.experiment import train

    config, args = _image_job(tmp_path, fine_tune_epochs=1)
    reference = train(_with_out(config, tmp_path / "single"))
    run_dir = tmp_path / "multi"
    sink = io.StringIO()
    code = launch([*args, "--out", str(run_dir)], workers=2, timeout=TIMEOUT, sink=sink)
    assert code == 0, sink.getvalue()[-5000:]
    (tmp_path / "multi.log").write_text(sink.getvalue())
    _, model, labels = rundir.load_run(run_dir)
    assert labels == ["blue", "green", "red"] and model.count_params() > 0
    assert "Bottleneck cache on" in sink.getvalue()  # phase 1 on cached features, 2 workers
    _assert_matches(run_dir, reference, loss_tol=1e-4)  # measured: <= 5e-7
    assert not list(worker_env.glob("tfxfer-worker-*"))  # the non-chief temp dir is gone
    assert "[worker 1] " in sink.getvalue()


def _with_out(config, out: Path):
    import dataclasses

    return dataclasses.replace(config, out=str(out))


def _worker_pid(run_dir: Path, index: int) -> int | None:
    """The pid of worker `index` of the job writing `run_dir` (found through /proc)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(run_dir).encode() not in cmdline:
            continue
        tf_config_value = [e for e in environ if e.startswith(b"TF_CONFIG=")]
        if tf_config_value and json.loads(tf_config_value[0][10:])["task"]["index"] == index:
            return int(entry.name)
    return None


@pytest.mark.large
def test_sigkilled_worker_is_restarted_and_the_job_resumes(tmp_path, worker_env):
    from tfxfer.experiment import train

    config, args = _image_job(tmp_path, fine_tune_epochs=3)
    reference = train(_with_out(config, tmp_path / "single"))
    run_dir = tmp_path / "multi"
    sink, result = io.StringIO(), {}
    job = threading.Thread(target=lambda: result.update(code=launch(
        [*args, "--out", str(run_dir)], workers=2, restarts=1, timeout=TIMEOUT, sink=sink)))
    job.start()
    deadline = time.monotonic() + TIMEOUT
    while not (run_dir / "checkpoints" / "epoch-0003").is_dir():  # first phase-2 epoch done
        assert time.monotonic() < deadline and job.is_alive(), sink.getvalue()[-5000:]
        time.sleep(0.2)
    pid = _worker_pid(run_dir, 1)
    os.kill(pid, signal.SIGKILL)
    job.join(TIMEOUT)
    assert result.get("code") == 0, sink.getvalue()[-5000:]
    output = sink.getvalue()
    assert "--resume" in output or "Resuming after epoch" in output
    assert "Resuming after epoch 3" in output or "Resuming after epoch 4" in output
    assert len(_history(run_dir)) == len(reference.history.rows) == 5
    _assert_matches(run_dir, reference, loss_tol=0.15)
    assert not list(worker_env.glob("tfxfer-worker-*"))
    probe = np.zeros((1, 32, 32, 3), np.uint8)
    assert np.isfinite(rundir.load_run(run_dir)[1].predict(probe, verbose=0)).all()


@pytest.mark.large
def test_two_workers_train_a_text_model_like_one_process(tmp_path, worker_env):
    from text_helpers import build_tiny_encoder, review_rows, write_csv

    from tfxfer.config import load_config
    from tfxfer.experiment import train

    encoder = build_tiny_encoder(tmp_path / "encoder")
    data = write_csv(tmp_path / "reviews.csv", review_rows(30))
    args = ["train", "--data", str(data), "--encoder", str(encoder), "--batch-size", "6",
            "--seed", "1", "--val-fraction", "0.2", "--test-fraction", "0.2",
            "--hidden-units", "4", "--dropout", "0", "--epochs", "2", "--fine-tune-epochs", "1",
            "--learning-rate", "0.05", "--no-tensorboard", "--verbose", "2"]
    reference = train(load_config(overrides={
        "data": {"source": str(data), "batch_size": 6, "seed": 1, "val_fraction": 0.2,
                 "test_fraction": 0.2},
        "model": {"text": {"encoder": str(encoder)}, "hidden_units": 4, "dropout": 0.0},
        "train": {"epochs": 2, "fine_tune_epochs": 1, "learning_rate": 0.05, "verbose": 0,
                  "tensorboard": False},
        "out": str(tmp_path / "single"),
    }))
    run_dir = tmp_path / "multi"
    sink = io.StringIO()
    code = launch([*args, "--distribute", "multi_worker", "--out", str(run_dir)], workers=2,
                  timeout=TIMEOUT, sink=sink)
    assert code == 0, sink.getvalue()[-5000:]
    (tmp_path / "multi.log").write_text(sink.getvalue())
    assert rundir.load_run(run_dir)[2] == ["neg", "pos"]
    _assert_matches(run_dir, reference, loss_tol=1e-3)
    assert not list(worker_env.glob("tfxfer-worker-*"))
