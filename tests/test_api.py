"""The notebook API (`tfxfer.fit`, `tfxfer.load`, `Classifier`) on tiny synthetic data.

One image run is trained per module (three solid-colour classes of JPEGs, the DANN
paper's small CNN from scratch at 28 px, random weights, one epoch) and every
method is checked on it; a text run uses the tiny offline word-vector encoder.
"""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest
from conftest import colour_images, make_image_folder
from text_helpers import build_tiny_encoder, review_rows, write_csv

import tfxfer
from tfxfer import rundir
from tfxfer.notebook.keys import config_overrides, valid_keywords

TINY = {"backbone": "dann_mnist_cnn", "weights": None, "image_size": 28, "augment": False,
        "strategy": "from_scratch", "epochs": 1, "fine_tune_epochs": 0, "batch_size": 4,
        "val_fraction": 0.2, "test_fraction": 0.2, "seed": 1, "verbose": 0,
        "tensorboard": False}


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    folder = make_image_folder(root / "photos")
    clf = tfxfer.fit(folder, out=str(root / "run"), **TINY)
    return clf, folder, root


def _predictions_csv(run_dir):
    with (run_dir / rundir.PREDICTIONS).open() as f:
        return list(csv.DictReader(f))


def test_fit_writes_a_run_and_evaluate_gives_its_test_metrics(fitted):
    clf, _, root = fitted
    assert clf.run_dir == root / "run" and (clf.run_dir / rundir.MODEL).is_file()
    assert clf.class_names == ["blue", "green", "red"] and clf.modality == "image"
    assert clf.config.train.epochs == 1 and clf.config.model.image.backbone == "dann_mnist_cnn"
    metrics = clf.evaluate()
    assert metrics["examples"] == 3 and 0.0 <= metrics["accuracy"] <= 1.0
    assert [r["class"] for r in metrics["per_class"]] == clf.class_names
    assert metrics == rundir.read_json(clf.run_dir, rundir.METRICS)


def test_predict_files_matches_the_runs_own_test_predictions(fitted):
    clf, _, _ = fitted
    rows = _predictions_csv(clf.run_dir)
    predicted = clf.predict([r["input"] for r in rows], top_k=2)
    assert len({round(r["probability"], 4) for r in predicted}) > 1  # outputs follow inputs
    for row, got in zip(rows, predicted, strict=True):
        assert got["input"] == row["input"] and got["label"] == row["predicted"]
        assert got["probability"] == pytest.approx(float(row[f"p_{got['label']}"]), abs=1e-5)
        assert len(got["top_k"]) == 2 and got["top_k"][0] == (got["label"], got["probability"])
        assert got["top_k"][0][1] >= got["top_k"][1][1]


def test_predict_takes_a_folder_arrays_and_gives_a_frame(fitted):
    clf, folder, _ = fitted
    files = clf.predict(folder / "red")
    assert [r["input"] for r in files] == sorted(str(p) for p in (folder / "red").iterdir())
    images = colour_images(4, 28, seed=3)
    rows = clf.predict(images)  # N x H x W x 3 uint8
    assert [r["input"] for r in rows] == [f"array[{i}]" for i in range(4)]
    expected = np.asarray(clf.model(images, training=False))
    np.testing.assert_allclose([r["probability"] for r in rows], expected.max(axis=1),
                               atol=1e-5)
    frame = clf.predict(list(images) + [str(folder / "red" / "red_0.jpg")], as_frame=True)
    assert list(frame.columns) == ["input", "label", "probability", "top_k"] and len(frame) == 5
    assert set(frame["label"]) <= set(clf.class_names)
    with pytest.raises(FileNotFoundError, match="Image file not found"):
        clf.predict("nowhere.jpg")
    with pytest.raises(ValueError, match="H x W x 3"):
        clf.predict([np.zeros((28, 28, 5), np.uint8)])


def test_export_and_load_give_the_same_predictions(fitted):
    clf, folder, root = fitted
    result = clf.export(root / "saved_models", warmup=False)
    assert result.path == root / "saved_models" / "run" / "1"
    assert (result.path / "saved_model.pb").is_file()

    loaded = tfxfer.load(clf.run_dir)
    assert isinstance(loaded, tfxfer.Classifier) and loaded.class_names == clf.class_names
    paths = sorted(str(p) for p in folder.rglob("*.jpg"))[:5]
    for a, b in zip(clf.predict(paths), loaded.predict(paths), strict=True):
        assert a["label"] == b["label"]
        assert a["probability"] == pytest.approx(b["probability"], abs=1e-6)
    assert loaded.evaluate() == clf.evaluate()  # metrics.json of the run
    with pytest.raises(FileNotFoundError, match="missing: config.json"):
        tfxfer.load(root / "photos")


def test_report_is_written_and_renders_inline(fitted):
    clf, _, _ = fitted
    report = clf.report()
    assert report.path == clf.run_dir / "report.html" and report.path.is_file()
    inline = report._repr_html_()
    assert inline.startswith("<iframe srcdoc=") and "data:image/png;base64" in inline
    assert "&lt;html" in inline.lower()  # the page is escaped into the attribute


def test_an_unknown_key_is_named_with_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match=r"Unknown config key 'epoch'\. Did you mean 'epochs'"
                                         r"\? Valid keys: .*backbone.*epochs"):
        tfxfer.fit(tmp_path, epoch=3)
    with pytest.raises(ValueError, match="Config key 'train.epochs' must be an integer"):
        tfxfer.fit(tmp_path, epochs="three")
    assert not any(tmp_path.iterdir())


def test_a_missing_folder_fails_before_anything_is_written(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"--data \(data.source\) not found: .*nowhere"):
        tfxfer.fit(tmp_path / "nowhere", out=str(tmp_path / "run"), **TINY)
    with pytest.raises(ValueError, match="Unknown backbone"):
        tfxfer.fit(make_image_folder(tmp_path / "photos", per_class=1),
                   out=str(tmp_path / "run"), **{**TINY, "backbone": "no_such_net"})
    assert not (tmp_path / "run").exists()


def test_every_config_field_is_a_keyword_by_name():
    assert {"backbone", "encoder", "epochs", "seed", "out", "image_size"} <= set(valid_keywords())
    assert config_overrides({"epochs": 2, "backbone": "resnet50", "data.seed": 3,
                             "train": {"verbose": 0}, "out": "r"}) == {
        "train": {"epochs": 2, "verbose": 0}, "model": {"image": {"backbone": "resnet50"}},
        "data": {"seed": 3}, "out": "r"}


def test_fit_on_text_predicts_strings(tmp_path):
    encoder = build_tiny_encoder(tmp_path / "encoder")
    reviews = write_csv(tmp_path / "reviews.csv", review_rows(24))
    clf = tfxfer.fit(reviews, encoder=str(encoder), epochs=1, fine_tune_epochs=0,
                     strategy="feature_extraction", batch_size=4, verbose=0,
                     tensorboard=False, out=str(tmp_path / "run"))
    assert clf.modality == "text" and clf.class_names == ["neg", "pos"]
    rows = clf.predict(["a wonderful film", "dull and boring"])
    assert [r["input"] for r in rows] == ["a wonderful film", "dull and boring"]
    assert all(r["label"] in ("neg", "pos") and 0.5 <= r["probability"] <= 1.0 for r in rows)
    assert clf.predict("one text")[0]["input"] == "one text"


def test_importing_tfxfer_and_the_api_loads_no_tensorflow():
    code = ("import sys, tfxfer, tfxfer.notebook; tfxfer.fit; tfxfer.load; "
            "from tfxfer.notebook.keys import config_overrides; "
            "print('tensorflow' in sys.modules or 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


def test_parse_train_config_ignores_a_jupyter_kernels_argv(monkeypatch, tmp_path):
    config_file = tmp_path / "c.yaml"
    config_file.write_text("train: {epochs: 7}\n")
    monkeypatch.setattr(sys, "argv", ["/x/ipykernel_launcher.py", "-f", "/x/kernel-1.json"])
    assert tfxfer.parse_train_config(config_file=config_file).train.epochs == 7
    assert tfxfer.parse_train_config(["--epochs", "2"], config_file=config_file).train.epochs == 2


def test_experiment_creates_its_run_directory_only_when_the_data_are_read(tmp_path,
                                                                           monkeypatch):
    from tfxfer.config import load_config
    from tfxfer.experiment import Experiment

    folder = make_image_folder(tmp_path / "photos", per_class=3)
    config = load_config(None, config_overrides({**TINY, "source": str(folder),
                                                 "out": str(tmp_path / "run")}))
    run = Experiment(config)
    assert not (tmp_path / "run").exists()

    def broken(*args):
        raise OSError("disk full")

    monkeypatch.setattr(rundir, "write_setup", broken)  # fails after the directory is made
    with pytest.raises(OSError, match="disk full"):
        run.load_data()
    assert not (tmp_path / "run").exists()
    monkeypatch.undo()
    Experiment(config).load_data()
    assert (tmp_path / "run" / rundir.CONFIG).is_file()


def test_a_key_of_several_modality_sections_sets_each_and_others_must_be_dotted(monkeypatch):
    from tfxfer.notebook import keys

    assert keys.config_overrides({"augment": False, "epochs": 2}) == {
        "model": {"image": {"augment": False}, "audio": {"augment": False}},
        "train": {"epochs": 2}}
    assert "augment" in keys.valid_keywords()
    keys.keyword_paths.cache_clear()
    shared = {"seed": ("data.seed", "train.seed")}  # a name two non-modality sections share
    monkeypatch.setattr(keys, "keyword_paths", lambda: shared)
    with pytest.raises(ValueError, match=r"'seed' is in several sections; give its dotted path"):
        keys.config_overrides({"seed": 1})
