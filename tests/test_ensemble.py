"""tfxfer ensemble: temperatures and weights chosen on validation, applied to test."""

import json
import shutil

import keras
import numpy as np
import pytest
from conftest import tiny_config

import tfxfer
from tfxfer import cli, rundir
from tfxfer.ensemble import (
    ENSEMBLE,
    choose_weights,
    ensemble_runs,
    fit_temperature,
    parse_weights,
    simplex_grid,
    with_temperature,
)
from tfxfer.evaluation import Evaluation
from tfxfer.experiment import evaluate_run, train
from tfxfer.reports.rundata import read_predictions
from tfxfer.serving.export import export_run

NAMES = ["negative", "positive"]


def _softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _labels(n, seed):
    return np.random.default_rng(seed).integers(0, 2, n)


def _member_probs(y, noise, seed, signal=1.0):
    """Calibrated-ish probabilities: a shared signal plus this member's own noise."""
    rng = np.random.default_rng(seed)
    margin = signal * (2 * y - 1) + noise * rng.normal(size=len(y))
    return _softmax(np.stack([-margin, margin], axis=1))


def _write_run(path, val_prob, test_prob, y_val, y_test, inputs=True):
    path.mkdir(parents=True)
    (path / rundir.LABELS).write_text("\n".join(NAMES) + "\n")
    for name, prob, y in ((rundir.VAL_PREDICTIONS, val_prob, y_val),
                          (rundir.PREDICTIONS, test_prob, y_test)):
        texts = [f"text {i}" for i in range(len(y))] if inputs else None
        rundir.write_predictions(path / name, Evaluation(NAMES, y, prob), texts)
    return path


@pytest.fixture
def two_runs(tmp_path):
    y_val, y_test = _labels(1500, 0), _labels(1500, 1)
    runs = [_write_run(tmp_path / f"run{k}", _member_probs(y_val, 1.5, 10 + k),
                       _member_probs(y_test, 1.5, 20 + k), y_val, y_test) for k in (0, 1)]
    return runs, y_val, y_test


def test_temperature_undoes_a_sharpened_member():
    y = _labels(4000, 3)
    calibrated = _member_probs(y, 1.0, 4)
    assert fit_temperature(y, with_temperature(calibrated, 0.5)) == pytest.approx(2.0, rel=0.1)
    assert fit_temperature(y, calibrated) == pytest.approx(1.0, rel=0.1)


def test_weights_go_to_the_informative_member():
    y = _labels(2000, 5)
    useful = _member_probs(y, 1.0, 6)
    noise = _softmax(np.random.default_rng(7).normal(size=(2000, 2)))
    assert choose_weights(y, [useful, noise])[0] >= 0.9
    assert choose_weights(y, [noise, useful])[1] >= 0.9


def test_simplex_grid_sums_to_one():
    for members in (2, 3, 4):
        grid = simplex_grid(members)
        assert np.allclose(grid.sum(axis=1), 1.0) and (grid >= 0).all()
    assert len(simplex_grid(2)) == 21


def test_independent_errors_average_above_both_members(two_runs, tmp_path):
    runs, _, y_test = two_runs
    result = ensemble_runs(runs, tmp_path / "ens", save_model=False)
    assert result.evaluation.accuracy > max(result.member_test) + 0.01
    assert result.weights == pytest.approx([0.5, 0.5], abs=0.15)
    assert result.gain_interval[0] > 0
    metrics = json.loads((tmp_path / "ens" / rundir.METRICS).read_text())
    assert metrics["accuracy"] == pytest.approx(result.evaluation.accuracy)
    assert metrics["examples"] == len(y_test)
    saved = json.loads((tmp_path / "ens" / ENSEMBLE).read_text())
    assert saved["chosen_on"] == "validation" and saved["weights"] == result.weights
    first = (tmp_path / "ens" / rundir.PREDICTIONS).read_text().splitlines()[1]
    assert first.startswith("text 0,")


def test_choices_do_not_depend_on_the_test_split(two_runs, tmp_path):
    runs, y_val, y_test = two_runs
    before = ensemble_runs(runs)
    # Make the second member perfect on test: the weights must not move towards it.
    perfect = np.eye(2)[y_test] * 0.98 + 0.01
    rundir.write_predictions(runs[1] / rundir.PREDICTIONS, Evaluation(NAMES, y_test, perfect),
                             [f"text {i}" for i in range(len(y_test))])
    after = ensemble_runs(runs)
    assert after.weights == before.weights and after.temperatures == before.temperatures
    assert after.member_test[1] > 0.99


def test_cli_prints_the_table_and_writes_the_directory(two_runs, tmp_path, capsys):
    runs, _, _ = two_runs
    out = tmp_path / "ens"
    assert cli.main(["ensemble", *map(str, runs), "--out", str(out), "--no-model",
                     "--weights", "equal", "--no-temperature"]) == 0
    printed = capsys.readouterr().out
    assert "ensemble" in printed and "gain over the member best on validation" in printed
    saved = json.loads((out / ENSEMBLE).read_text())
    assert saved["weights"] == [0.5, 0.5] and saved["temperatures"] == [1.0, 1.0]
    # The directory is never overwritten.
    assert cli.main(["ensemble", *map(str, runs), "--out", str(out), "--no-model"]) == 2


def test_runs_without_models_are_refused_before_anything_is_written(two_runs, tmp_path):
    runs, _, _ = two_runs  # no model.keras in these runs
    with pytest.raises(FileNotFoundError, match="No model.keras in .*--no-model"):
        ensemble_runs(runs, tmp_path / "ens")
    assert not (tmp_path / "ens").exists()


def test_misaligned_runs_are_refused_with_the_row(tmp_path):
    y = _labels(50, 8)
    a = _write_run(tmp_path / "a", _member_probs(y, 1, 1), _member_probs(y, 1, 2), y, y)
    b = _write_run(tmp_path / "b", _member_probs(y, 1, 3), _member_probs(y, 1, 4), y, y)
    other = _labels(40, 9)
    c = _write_run(tmp_path / "c", _member_probs(other, 1, 3), _member_probs(y, 1, 4), other, y)
    with pytest.raises(ValueError, match="50 and 40 val examples"):
        ensemble_runs([a, c])
    texts = [f"text {i}" for i in range(50)]
    texts[7] = "another review"
    rundir.write_predictions(b / rundir.PREDICTIONS, Evaluation(NAMES, y, _member_probs(y, 1, 4)),
                             texts)
    with pytest.raises(ValueError, match="test example 7 differs"):
        ensemble_runs([a, b])
    (b / rundir.LABELS).write_text("bad\ngood\n")
    with pytest.raises(ValueError, match="same classes"):
        ensemble_runs([a, b])
    with pytest.raises(ValueError, match="at least two runs"):
        ensemble_runs([a])


@pytest.mark.parametrize("text, message", [
    ("0.5", "needs 2 non-negative numbers"), ("1,-1", "needs 2 non-negative numbers"),
    ("0,0", "not all zero"), ("half,half", "received 'half,half'"),
])
def test_bad_weights_are_named(text, message):
    with pytest.raises(ValueError, match=message):
        parse_weights(text, 2)


def test_given_weights_are_normalised():
    assert parse_weights("3,1", 2) == [0.75, 0.25]


def test_a_run_without_validation_predictions_is_predicted_again(image_folder, tmp_path):
    run = tmp_path / "run"
    train(tiny_config(image_folder, run, strategy="feature_extraction", fine_tune_epochs=0))
    names = rundir.read_labels(run)
    written = read_predictions(run / rundir.VAL_PREDICTIONS, names)
    assert len(written) > 0 and all(path.endswith(".jpg") for path in written.inputs)
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    (copy / rundir.VAL_PREDICTIONS).unlink()
    result = ensemble_runs([run, copy], weights="equal", temperature=False, save_model=False)
    again = read_predictions(copy / rundir.VAL_PREDICTIONS, names)
    assert again.inputs == written.inputs and (again.y_true == written.y_true).all()
    np.testing.assert_allclose(again.y_prob, written.y_prob, atol=1e-5)
    assert result.evaluation.accuracy == pytest.approx(result.member_test[0])


def test_the_ensemble_directory_evaluates_and_exports_as_a_run(image_folder, tmp_path):
    runs = []
    for rate in (0.001, 0.01):  # two members that differ: another learning rate
        run = tmp_path / f"run{rate}"
        # fine_tune_all: the members' optimizers hold state for every weight, which
        # the export must not carry.
        train(tiny_config(image_folder, run, strategy="fine_tune_all", learning_rate=rate))
        runs.append(run)
    out = tmp_path / "ens"
    result = ensemble_runs(runs, out, weights="0.7,0.3")
    # The saved Keras mixture gives the probabilities mixed from the runs' CSVs.
    again = evaluate_run(out)
    np.testing.assert_allclose(again.y_prob, result.evaluation.y_prob, atol=1e-5)
    model = keras.models.load_model(out / rundir.MODEL)
    assert model.get_layer("predictions").get_config()["weights"] == pytest.approx([0.7, 0.3])
    clf = tfxfer.load(out)  # the notebook API takes it as a run
    assert clf.class_names == result.evaluation.class_names
    assert len(clf.predict([str(next(image_folder.rglob("*.jpg")))])) == 1
    exported = export_run(out, tmp_path / "saved", "ens", verify=True)
    assert exported.version == 1 and exported.verification is not None
    assert exported.variables_bytes < 1.5 * exported.weights_bytes  # each weight written once
