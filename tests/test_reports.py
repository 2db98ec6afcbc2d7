"""Run reports: plots, report.html, `tfxfer report`, TensorBoard logs."""

import base64
import csv
import html
import json
import re

import numpy as np
import pytest
import tensorflow as tf
from conftest import make_image_folder, tiny_config, write_image
from matplotlib.image import imread

from tfxfer import cli, rundir
from tfxfer.config import RunConfig
from tfxfer.data.images import SkippedFile
from tfxfer.data.splits import Splits
from tfxfer.evaluation import Evaluation
from tfxfer.experiment import train
from tfxfer.reports import report, tensorboard_callbacks, write_report
from tfxfer.reports.confusion import confused_pairs, row_normalise
from tfxfer.reports.curves import learning_curves_figure, phase_boundaries
from tfxfer.reports.grid import GridCell, plot_prediction_grid, select_examples
from tfxfer.reports.inputs import InputsUnavailable, load_test_images
from tfxfer.reports.plotting import GREEN, RED
from tfxfer.reports.rundata import load_run_data
from tfxfer.training.trainer import PhaseRecord, TrainingHistory

CLASSES = ["cat", "dog", "fox"]
PLOTS = (report.LEARNING_CURVES, report.CONFUSION_PLOT, report.PREDICTION_GRID)


def _history() -> TrainingHistory:
    rows = [{"epoch": e, "phase": "head" if e <= 3 else "fine_tune",
             "learning_rate": 1e-3 if e <= 3 else 1e-4, "loss": 1.0 / e, "accuracy": 0.5 + e / 20,
             "val_loss": 1.2 / e, "val_accuracy": 0.4 + e / 20} for e in range(1, 6)]
    phases = [PhaseRecord("head", 1, 3, 1e-3, 2, 771, 12.5),
              PhaseRecord("fine_tune", 4, 2, 1e-4, 10, 137603, 33.25)]
    return TrainingHistory(rows, phases)


# Test rows: (true, predicted, confidence); rows 1 and 4 are wrong, row 4 the most confident.
ROWS = [(0, 0, 0.9), (0, 1, 0.6), (1, 1, 0.8), (2, 2, 0.7), (2, 0, 0.95), (1, 1, 0.55)]


def _evaluation() -> Evaluation:
    y_true = np.array([t for t, _, _ in ROWS])
    probs = np.zeros((len(ROWS), len(CLASSES)))
    for i, (_, p, c) in enumerate(ROWS):
        probs[i] = (1 - c) / 2
        probs[i, p] = c
    return Evaluation(CLASSES, y_true, probs)


def _write_run(run_dir, modality: str, inputs) -> None:
    """A run directory written with rundir's own writers, from results we control."""
    run_dir.mkdir(parents=True)
    config = RunConfig()
    config.out = str(run_dir)
    labels = {s: np.array([t for t, _, _ in ROWS]) for s in ("train", "test")}
    splits = Splits(CLASSES, modality, raw={}, labels=labels, source="synthetic",
                    skipped=[SkippedFile("/data/dog/broken.jpg", "empty file (0 bytes)")])
    rundir.write_setup(run_dir, config, splits)
    rundir.write_history(run_dir, _history())
    rundir.write_evaluation(run_dir, _evaluation(), inputs)


@pytest.fixture
def image_run(tmp_path):
    colours = [(220, 40, 40), (40, 200, 60), (50, 70, 230)]
    paths = [str(write_image(tmp_path / "img" / f"{i}.png", colours[t], seed=i))
             for i, (t, _, _) in enumerate(ROWS)]
    _write_run(tmp_path / "run", "image", paths)
    return tmp_path / "run"


def _embedded_pngs(page: str) -> dict[str, bytes]:
    found = re.findall(r'src="data:image/png;base64,([^"]+)" alt="[^"]*" data-file="([^"]+)"',
                       page)
    return {name: base64.b64decode(data) for data, name in found}


def test_report_of_an_image_run(image_run):
    path = write_report(image_run)
    assert path == image_run / report.REPORT
    for name in PLOTS:
        image = imread(image_run / name)
        assert image.ndim == 3 and image.shape[0] >= 250 and image.shape[1] >= 300, name
    page = path.read_text()
    embedded = _embedded_pngs(page)
    assert set(embedded) == set(PLOTS)
    assert all(embedded[n] == (image_run / n).read_bytes() for n in PLOTS)
    assert "Test accuracy <b>0.6667</b> (95% interval 0.3000-0.9032) on 6 examples" in page
    for name in CLASSES:
        assert f"<tr><td>{name}</td>" in page  # per-class and data rows
    assert "/data/dog/broken.jpg</td><td>empty file (0 bytes)" in page
    assert "<td>head</td><td>1–3</td>" in page and "12.5" in page and "33.25" in page
    assert "<td>fine_tune</td><td>4–5</td>" in page
    assert "train.learning_rate" in page and "Skipped files (1)" in page
    pairs = list(csv.DictReader((image_run / report.CONFUSED_PAIRS).open()))
    assert [(p["true"], p["predicted"], p["count"]) for p in pairs] == [
        ("cat", "dog", "1"), ("fox", "cat", "1")]


def test_grid_colours_follow_correctness(tmp_path):
    grey = np.full((40, 40, 3), 128, np.uint8)
    cells = [GridCell(grey, "cat", "cat", 0.9), GridCell(grey, "cat", "dog", 0.8)]
    image = imread(plot_prediction_grid(cells, tmp_path / "grid.png"))[..., :3]
    pixels = (image * 255).astype(int)
    half = pixels.shape[1] // 2

    def share(region, colour):
        target = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
        return np.mean(np.abs(region - target).sum(axis=-1) < 40)

    left, right = pixels[:, :half], pixels[:, half:]
    assert share(left, GREEN) > 0.02 and share(left, RED) == 0
    assert share(right, RED) > 0.02 and share(right, GREEN) == 0


def test_select_examples_mixes_confident_mistakes_and_every_class():
    y_true = np.array([0, 0, 1, 1, 2, 2, 0, 1])
    y_pred = np.array([0, 1, 1, 0, 2, 2, 0, 1])
    confidence = np.array([.9, .6, .8, .99, .7, .5, .9, .6])
    assert select_examples(y_true, y_pred, confidence, count=4) == [0, 1, 2, 3]
    assert select_examples(y_true, y_pred, confidence, count=2) == [0, 3]
    assert select_examples(y_true, y_pred, confidence, count=20) == list(range(8))


def test_confusion_shares_and_pairs():
    matrix = np.array([[8, 2, 0], [0, 0, 0], [3, 0, 1]])
    np.testing.assert_allclose(row_normalise(matrix)[0], [0.8, 0.2, 0.0])
    assert row_normalise(matrix)[1].tolist() == [0, 0, 0]
    pairs = confused_pairs(matrix, CLASSES)
    assert [(p["true"], p["predicted"], p["count"]) for p in pairs] == [
        ("fox", "cat", 3), ("cat", "dog", 2)]
    assert pairs[0]["share"] == pytest.approx(0.75)


def test_learning_curves_mark_the_phase_boundary():
    history = _history()
    phases = [dict(p.__dict__) for p in history.phases]
    assert phase_boundaries(phases) == [3.5]
    figure = learning_curves_figure(history.rows, phases)
    for ax in figure.axes:
        vertical = [line.get_xdata() for line in ax.lines
                    if len(line.get_xdata()) == 2 and line.get_xdata()[0] == line.get_xdata()[1]]
        assert vertical == [[3.5, 3.5]]
        assert {line.get_label() for line in ax.lines} >= {"train", "validation"}
        assert [t.get_text() for t in ax.texts] == ["phase 1: head", "phase 2: fine_tune"]


def test_text_run_reports_the_most_confident_mistakes(tmp_path):
    long = "fox & hound " + "and so on " * 200
    texts = ["a fine cat", "<b>barks</b> & purrs", "a dog", "a red fox", long, "dog"]
    _write_run(tmp_path / "run", "text", texts)
    page = write_report(tmp_path / "run").read_text()
    assert not (tmp_path / "run" / report.PREDICTION_GRID).exists()
    assert "Most confident mistakes" in page
    first, second = page.index("fox &amp; hound"), page.index("&lt;b&gt;barks&lt;/b&gt;")
    assert first < second  # 0.95 before 0.6
    assert "<b>barks</b>" not in page and "a fine cat" not in page  # escaped; correct rows out
    rows = list(csv.DictReader((tmp_path / "run" / report.CONFIDENT_MISTAKES).open()))
    assert [(r["input"], r["true"], r["predicted"]) for r in rows] == [
        (long, "fox", "cat"), ("<b>barks</b> & purrs", "cat", "dog")]
    assert html.escape(long[:600]) + " […]</td>" in page  # cut in the page, whole in the CSV


def test_split_inputs_name_every_example(tmp_path, monkeypatch):
    labels = {"test": np.array([0, 1])}
    folder = Splits(CLASSES, "image", {}, labels, "f", files={"test": ["a/x.jpg", "b/y.jpg"]})
    monkeypatch.chdir(tmp_path)
    assert rundir.split_inputs(folder, "test") == [str(tmp_path / "a/x.jpg"),
                                                     str(tmp_path / "b/y.jpg")]
    raw = {"test": tf.data.Dataset.from_tensor_slices((["großartig", "bad"], [0, 1]))}
    assert rundir.split_inputs(Splits(CLASSES, "text", raw, labels, "t"), "test") == [
        "großartig", "bad"]
    images = {"test": tf.data.Dataset.from_tensor_slices(([b"\xff\xd8", b"\xff\xd8"], [0, 1]))}
    assert rundir.split_inputs(Splits(CLASSES, "image", images, labels, "tfds:x"), "test") is None


def test_missing_images_leave_a_note_instead_of_a_grid(image_run, tmp_path):
    for path in (tmp_path / "img").iterdir():
        path.unlink()
    page = write_report(image_run).read_text()
    assert "No prediction grid: cannot read test image" in page
    assert report.PREDICTION_GRID not in _embedded_pngs(page)


def test_inputs_are_left_out_when_they_do_not_match_the_predictions(tmp_path):
    _write_run(tmp_path / "run", "image", ["only-one.jpg"])
    assert load_run_data(tmp_path / "run").predictions.inputs is None


def test_tfds_images_come_from_the_test_split(tmp_path):
    import tensorflow_datasets as tfds

    from tfxfer.config import DataConfig
    from tfxfer.data.sources import load_splits

    data = DataConfig(source="tfds:tf_flowers", val_fraction=0.2, test_fraction=0.25)
    with tfds.testing.mock_data(num_examples=24):
        splits = load_splits(data, image_size=24)
        run = load_run_data(_tfds_run(tmp_path, splits, data))
        assert run.predictions.inputs is None
        reloaded = load_test_images(run, [0, 2], size=20)  # rebuilt from config.json
        given = load_test_images(run, [0, 2], splits, size=20)
        run.predictions.y_true[2] = (run.predictions.y_true[2] + 1) % 5
        with pytest.raises(InputsUnavailable, match="does not match"):
            load_test_images(run, [2], splits)
    assert [i.shape for i in given] == [(20, 20, 3)] * 2
    np.testing.assert_array_equal(np.stack(given), np.stack(reloaded))


def _tfds_run(tmp_path, splits, data):
    config = RunConfig(data=data)
    config.model.image.image_size = 24
    run_dir = tmp_path / "tfds_run"
    run_dir.mkdir()
    rundir.write_setup(run_dir, config, splits)
    y_true = splits.labels["test"]
    probs = np.eye(5)[y_true]
    rundir.write_evaluation(run_dir, Evaluation(splits.class_names, y_true, probs),
                            rundir.split_inputs(splits, "test"))
    return run_dir


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("reports")
    return train(tiny_config(make_image_folder(root / "images"), root / "run")).run_dir


def test_training_writes_the_report_and_tensorboard_logs(trained_run):
    for name in (report.REPORT, *PLOTS):
        assert (trained_run / name).is_file(), name
    predictions = list(csv.DictReader((trained_run / rundir.PREDICTIONS).open()))
    tests = [r for r in csv.DictReader((trained_run / rundir.SPLITS).open())
             if r["split"] == "test"]
    assert [p["input"] for p in predictions] == [r["path"] for r in tests]
    assert [p["true"] for p in predictions] == [r["label"] for r in tests]
    steps = {}
    for event_file in (trained_run / "tensorboard" / "train").iterdir():
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            for value in event.summary.value:
                steps.setdefault(value.tag, []).append(event.step)
    assert sorted(steps["epoch_loss"]) == [0, 1]  # phase 2 continues the epochs of phase 1
    assert sorted(steps["epoch_learning_rate"]) == [0, 1]
    assert any((trained_run / "tensorboard" / "validation").iterdir())


def test_cli_report_regenerates_a_saved_run(trained_run, capsys):
    for name in (report.REPORT, *PLOTS):
        (trained_run / name).unlink()
    assert cli.main(["report", str(trained_run)]) == 0
    assert str(trained_run / report.REPORT) in capsys.readouterr().out
    page = (trained_run / report.REPORT).read_text()
    assert set(_embedded_pngs(page)) == set(PLOTS)
    metrics = json.loads((trained_run / rundir.METRICS).read_text())
    assert f"Test accuracy <b>{metrics['accuracy']:.4f}</b>" in page


def test_cli_report_names_what_is_missing(tmp_path, caplog):
    assert cli.main(["report", str(tmp_path)]) == 2
    assert "missing: config.json, labels.txt" in caplog.text


def test_tensorboard_switch(tmp_path):
    args = cli.build_parser().parse_args(["train", "--no-tensorboard"])
    assert cli.train_overrides(args)["train"] == {"tensorboard": False}
    assert tensorboard_callbacks(tmp_path, enabled=False) == []
    (callback,) = tensorboard_callbacks(tmp_path)
    assert callback.log_dir == str(tmp_path / "tensorboard")
