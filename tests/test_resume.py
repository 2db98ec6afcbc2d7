"""Resume after SIGKILL, per-epoch checkpoints, and --deterministic runs.

A killed run is a real `tfxfer train` process that SIGKILLs itself at a chosen
training step (a callback added by a small driver script); it is resumed in this
process and compared with an uninterrupted run of the same config. The backbone
gets spread weights from a file, so the model learns and the comparisons are
not between near-constant outputs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import make_image_folder, spread_backbone_weights, tiny_config

from tfxfer import rundir
from tfxfer.cli import main
from tfxfer.experiment import train
from tfxfer.training.resume import CHECKPOINTS, EpochBackup, RunFinishedError, latest_checkpoint
from tfxfer.training.strategies import Phase
from tfxfer.training.trainer import BestWeights, TrainingHistory

ROOT = Path(__file__).resolve().parents[1]
EPOCHS, FINE_TUNE_EPOCHS = 2, 2
STEPS_PER_EPOCH = 3  # 10 training images, batch 4, last partial batch kept

KILLER = textwrap.dedent("""
    import json, os, signal, sys
    import keras
    from tfxfer import experiment
    from tfxfer.training import trainer as training
    from tfxfer.config import config_from_dict

    class Kill(keras.callbacks.Callback):
        steps = 0
        def on_train_batch_end(self, batch, logs=None):
            Kill.steps += 1
            if Kill.steps == int(sys.argv[2]):
                os.kill(os.getpid(), signal.SIGKILL)

    class KillingTrainer(training.PhaseTrainer):
        def __init__(self, model, train_ds, val_ds, train, callbacks=(), *args, **kwargs):
            super().__init__(model, train_ds, val_ds, train, [*callbacks, Kill()], *args,
                             **kwargs)
    experiment.PhaseTrainer = KillingTrainer
    experiment.train(config_from_dict(json.load(open(sys.argv[1]))))
""")


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Image folder, a spread-weights backbone file and an uninterrupted run."""
    import keras

    from tfxfer.image.model import build_image_classifier

    root = tmp_path_factory.mktemp("resume")
    images = make_image_folder(root / "images")
    config = tiny_config(images, root / "unused")
    model = spread_backbone_weights(build_image_classifier(config.model, 3))
    weights = root / "backbone.weights.h5"
    model.get_layer("backbone").save_weights(weights)
    keras.backend.clear_session()

    def config_for(out, **train):
        train = {"epochs": EPOCHS, "fine_tune_epochs": FINE_TUNE_EPOCHS,
                 "learning_rate": 0.01, "tensorboard": False, **train}
        config = tiny_config(images, out, **train)
        config.model.image.weights = str(weights)
        config.model.image.augment = False
        config.train.bottleneck_cache = "off"
        return config

    reference = train(config_for(root / "reference"))
    return root, config_for, reference


def _killed_run(config, step: int, tmp_path: Path) -> Path:
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config.to_dict()))
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, str(config_file), str(step)],
        env=_env(), capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == -9, proc.stderr[-3000:]
    return Path(config.out)


@pytest.mark.parametrize("step", [
    STEPS_PER_EPOCH + 2,  # phase 1, second epoch, second step
    STEPS_PER_EPOCH * (EPOCHS + 1) + 1,  # phase 2, its second epoch, first step
])
def test_resume_after_sigkill_continues_in_the_right_phase_and_epoch(setup, tmp_path, step):
    root, config_for, reference = setup
    run_dir = _killed_run(config_for(tmp_path / "run"), step, tmp_path)
    assert not (run_dir / rundir.MODEL).exists()
    completed = (step - 1) // STEPS_PER_EPOCH
    checkpoints = run_dir / CHECKPOINTS
    partial = checkpoints / f".epoch-{completed + 1:04d}.tmp-12345"  # killed while writing
    partial.mkdir()
    (partial / "weights.npz").write_bytes(b"half")
    (checkpoints / f"epoch-{completed + 2:04d}").mkdir()  # renamed without its state
    assert latest_checkpoint(checkpoints).epoch == completed
    assert not partial.exists()
    config_before = (run_dir / rundir.CONFIG).read_text()

    result = train(config_for(None), resume=run_dir)

    assert (run_dir / rundir.CONFIG).read_text() == config_before
    rows, expected = result.history.rows, reference.history.rows
    assert [(r["epoch"], r["phase"], r["learning_rate"]) for r in rows] == [
        (r["epoch"], r["phase"], r["learning_rate"]) for r in expected]
    for mine, theirs in zip(rows[:completed], expected[:completed]):
        assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-4)
    phases = rundir.read_json(run_dir, rundir.PHASES)
    assert [(p["name"], p["first_epoch"], p["epochs_run"], p["trainable_weights"])
            for p in phases] == [
        (p.name, p.first_epoch, p.epochs_run, p.trainable_weights)
        for p in reference.history.phases]
    assert (run_dir / rundir.MODEL).exists() and not (run_dir / CHECKPOINTS).exists()
    # The shuffle order of the resumed epochs differs, so the weights agree only roughly.
    final, ref = result.history.rows[-1], reference.history.rows[-1]
    assert final["val_accuracy"] == pytest.approx(ref["val_accuracy"], abs=0.34)
    assert final["loss"] < rows[0]["loss"]


def test_resume_of_a_finished_run_says_so(setup, capsys):
    _, _, reference = setup
    with pytest.raises(RunFinishedError, match="is finished"):
        train(tiny_config("x", None), resume=reference.run_dir)
    assert main(["train", "--resume", str(reference.run_dir)]) == 0
    assert "is finished" in capsys.readouterr().out


def test_resume_of_a_directory_that_is_not_a_run_is_an_error(tmp_path, caplog):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(FileNotFoundError, match="not a tfxfer run directory.*config.json"):
        train(tiny_config("x", None), resume=tmp_path)
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "not a tfxfer run directory" in caplog.text


def test_resume_with_different_flags_is_an_error(setup, tmp_path):
    _, config_for, _ = setup
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / rundir.CONFIG).write_text(json.dumps(config_for(run_dir).to_dict()))
    other = config_for(run_dir, epochs=7)
    with pytest.raises(ValueError, match="train.epochs: run has 2, command gives 7"):
        train(other, resume=run_dir)


def test_deterministic_runs_give_identical_metrics(setup, tmp_path):
    root, config_for, _ = setup
    config = config_for(None)
    args = [
        "train", "--data", config.data.source, "--batch-size", "4", "--seed", "1",
        "--val-fraction", "0.2", "--test-fraction", "0.2", "--backbone", "mobilenet",
        "--backbone-arg", "alpha=0.25", "--image-size", "32",
        "--weights", config.model.image.weights,
        "--epochs", "2", "--fine-tune-epochs", "1", "--learning-rate", "0.01",
        "--no-augment", "--no-tensorboard", "--verbose", "0", "--deterministic",
    ]
    procs = [
        subprocess.Popen([sys.executable, "-m", "tfxfer.cli", "--log-level", "WARNING", *args,
                          "--out", str(tmp_path / name)], env=_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name in ("a", "b")
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
    a, b = (tmp_path / "a", tmp_path / "b")
    assert (a / rundir.METRICS).read_text() == (b / rundir.METRICS).read_text()
    assert (a / rundir.HISTORY).read_text() == (b / rundir.HISTORY).read_text()
    losses = [float(line.split(",")[4]) for line in
              (a / rundir.HISTORY).read_text().splitlines()[1:]]
    assert losses[-1] < losses[0] and np.isfinite(losses).all()
    assert json.loads((a / rundir.CONFIG).read_text())["train"]["deterministic"] is True


def test_checkpoints_write_each_weight_once_per_phase_and_load_exactly(tmp_path):
    inputs = keras.Input((6,))
    frozen = keras.layers.Dense(5, name="frozen")
    model = keras.Model(inputs, keras.layers.Dense(2, name="top")(frozen(inputs)))
    x, y = np.random.default_rng(0).normal(size=(32, 6)), np.zeros((32, 2))
    root, best = tmp_path / CHECKPOINTS, BestWeights(model, monitor="loss")
    backup = EpochBackup(model, root)
    for name, first, last, frozen.trainable in (("head", 0, 3, False),
                                                 ("fine_tune", 3, 5, True)):
        model.compile(keras.optimizers.Adam(0.01), "mse")
        backup.on_phase_begin(Phase(name, last - first, 0.01, "none"), TrainingHistory(), best)
        model.fit(x, y, initial_epoch=first, epochs=last, verbose=0, callbacks=[best, backup])
        point = latest_checkpoint(root)
        with np.load(point.path / "weights.npz") as stored:
            changed = sorted(stored.files)
        # the frozen layer is in the base only; the epoch holds what trained since
        assert changed == (["w2", "w3"] if name == "head" else ["w0", "w1", "w2", "w3"])
        clone = keras.models.clone_model(model)
        point.load_weights(clone)
        for mine, theirs in zip(clone.get_weights(), model.get_weights()):
            np.testing.assert_array_equal(mine, theirs)
        restored = BestWeights(clone, monitor="loss")
        point.load_best(restored)
        for mine, theirs in zip(restored.best_weights, best.best_weights):
            np.testing.assert_array_equal(mine, theirs)
    # the head phase's base is gone with its last checkpoint; the fine_tune base stays
    assert sorted(p.name for p in root.glob("base-*.npz")) == ["base-0004.npz"]
    assert [p.name for p in sorted(root.glob("epoch-*"))] == ["epoch-0004", "epoch-0005"]
