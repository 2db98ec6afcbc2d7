"""`tfxfer predict MODEL INPUT...`: folders, batches, corrupt files, CSV and top-k."""

import csv
import json

import keras
import numpy as np
import pytest
from conftest import make_image_folder, spread_backbone_weights, tiny_config

from tfxfer import cli, rundir
from tfxfer.data.pipeline import decode_image
from tfxfer.image.model import build_image_classifier
from tfxfer.serving import predict_files
from tfxfer.serving.predict_files import Input, InputError, collect_inputs, predict_inputs

CLASSES = ["blue", "green", "red"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """An untrained tiny image run directory (config, labels, model) and its images."""
    root = tmp_path_factory.mktemp("predict")
    images = make_image_folder(root / "images", per_class=2)
    out = root / "run"
    config = tiny_config(images, out)
    keras.utils.set_random_seed(0)
    model = spread_backbone_weights(build_image_classifier(config.model, 3))
    out.mkdir()
    (out / rundir.CONFIG).write_text(json.dumps(config.to_dict()))
    (out / rundir.LABELS).write_text("".join(f"{name}\n" for name in CLASSES))
    rundir.save_model(out, model)
    return out, images, model


def test_collect_inputs_walks_folders_and_reads_text_lines(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "x.png").write_bytes(b"png")
    (tmp_path / "a" / "y.JPG").write_bytes(b"jpg")
    (tmp_path / "a" / "notes.md").write_text("ignored")
    (tmp_path / "a" / "reviews.txt").write_text("a good film\n\n  dull  \n")
    inputs = collect_inputs([tmp_path / "a"], texts=["typed"])
    assert [i.name for i in inputs] == [
        str(tmp_path / "a" / "b" / "x.png"), str(tmp_path / "a" / "reviews.txt") + ":1",
        str(tmp_path / "a" / "reviews.txt") + ":3", str(tmp_path / "a" / "y.JPG"), "typed"]
    assert [i.value for i in inputs] == [b"png", "a good film", "dull", b"jpg", "typed"]
    with pytest.raises(FileNotFoundError, match="Input not found: .*missing"):
        collect_inputs([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="No images .* in the folder"):
        collect_inputs([tmp_path / "empty"])


def test_a_failing_batch_is_retried_one_by_one_and_bad_inputs_skipped():
    calls = []

    def predict(values):
        calls.append(len(values))
        if b"bad" in values:
            raise InputError("not a decodable image")
        return [{"class_name": v.decode(), "class_id": 0, "probabilities": [0.75]}
                for v in values]

    inputs = [Input(f"f{i}", b"bad" if i == 2 else f"c{i}".encode()) for i in range(5)]
    result = predict_inputs(predict, inputs, batch_size=4)
    assert [r["input"] for r in result.records] == ["f0", "f1", "f3", "f4"]
    assert result.skipped == [("f2", "not a decodable image")]
    assert calls == [4, 1, 1, 1, 1, 1]  # the failing batch input by input, then the last
    assert result.records[0]["probability"] == 0.75


def test_texts_are_batched_by_length_and_answered_in_order():
    sent = []

    def predict(values):
        sent.append(list(values))
        return [{"class_name": str(len(v)), "class_id": 0, "probabilities": [1.0]} for v in values]

    texts = ["a much longer review", "ok", "a mid one", "no", "the longest review of all"]
    inputs = [Input(f"t{i}", t) for i, t in enumerate(texts)]
    result = predict_inputs(predict, inputs, batch_size=2)
    assert sent == [["ok", "no"], ["a mid one", "a much longer review"],
                    ["the longest review of all"]]
    assert [(r["input"], r["class_name"]) for r in result.records] == [
        (f"t{i}", str(len(t))) for i, t in enumerate(texts)]


def test_predict_a_folder_with_a_run_directory_writes_the_csv(run_dir, tmp_path, capsys):
    out, images, model = run_dir
    bad = images / "red" / "broken.jpg"
    bad.write_bytes(b"not an image")
    try:
        code = cli.main(["predict", str(out), str(images), "--csv", str(tmp_path / "p.csv"),
                         "--top-k", "2", "--batch-size", "4"])
    finally:
        bad.unlink()
    assert code == 0
    assert "wrote 6 predictions" in capsys.readouterr().out
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert list(rows[0]) == ["path", "label", "probability", "label_2", "probability_2"]
    files = sorted(str(p) for p in images.rglob("*.jpg") if p.name != "broken.jpg")
    assert sorted(r["path"] for r in rows) == files
    for r in rows:
        image = decode_image(open(r["path"], "rb").read(), 32).numpy()
        expected = model.predict(image[None], verbose=0)[0]
        assert r["label"] == CLASSES[int(expected.argmax())]
        assert float(r["probability"]) == pytest.approx(float(expected.max()), abs=1e-5)
        assert float(r["probability_2"]) <= float(r["probability"])


def test_predict_prints_a_table_or_csv_to_stdout(run_dir, capsys):
    out, images, _ = run_dir
    files = sorted(str(p) for p in images.rglob("*.jpg"))[:2]
    assert cli.main(["predict", str(out), *files, "--csv", "-"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "path,label,probability" and len(lines) == 3
    assert cli.main(["predict", str(out), *files]) == 0
    assert capsys.readouterr().out.splitlines()[0].split()[:2] == ["input", "class"]


def test_predict_names_a_missing_model_or_input(run_dir, tmp_path, caplog):
    out, images, _ = run_dir
    assert cli.main(["predict", str(tmp_path / "nomodel"), str(images)]) == 2
    assert "is not a model: expected a run directory" in caplog.text
    assert cli.main(["predict", str(out), str(tmp_path / "gone")]) == 2
    assert "Input not found" in caplog.text
    assert cli.main(["predict", "--tflite", str(tmp_path / "m.tflite"), str(images)]) == 2
    assert "--tflite: model file not found" in caplog.text and "labels" not in caplog.text


def test_predict_tflite_names_the_missing_model_not_its_labels(tmp_path):
    from tfxfer.lite.predict import predict_tflite

    with pytest.raises(FileNotFoundError, match="LiteRT model file not found: .*m.tflite"):
        predict_tflite(tmp_path / "m.tflite", [b""])


def test_csv_columns_follow_top_k():
    records = [{"input": "a.jpg", "class_name": "red", "probability": 0.6,
                "top_k": [{"class_name": "red", "probability": 0.6},
                          {"class_name": "blue", "probability": 0.3}]}]
    assert predict_files.to_csv(records, 1) == "path,label,probability\na.jpg,red,0.6\n"
    assert predict_files.to_csv(records, 3).splitlines() == [
        "path,label,probability,label_2,probability_2,label_3,probability_3",
        "a.jpg,red,0.6,blue,0.3,,"]
    assert np.isclose(predict_files.csv_rows(records, 2)[0]["probability_2"], 0.3)
