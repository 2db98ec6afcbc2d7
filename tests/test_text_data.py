"""Text tables (CSV/TSV files, DataFrames) -> Splits, and separate test sources."""

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from conftest import make_image_folder
from text_helpers import review_rows, write_csv

from tfxfer.config import DataConfig
from tfxfer.data.pipeline import make_batches
from tfxfer.data.sources import load_splits
from tfxfer.data.text import load_dataframe_splits


def _data(source, **kwargs):
    defaults = {"val_fraction": 0.2, "test_fraction": 0.2, "seed": 1}
    return DataConfig(source=str(source), **{**defaults, **kwargs})


def _texts(splits, split):
    return [x.decode() for x, _ in splits.raw[split].as_numpy_iterator()]


def test_csv_with_string_labels_and_three_classes(tmp_path):
    rows = review_rows(30, labels=("pos", "neg", "mixed"))
    splits = load_splits(_data(write_csv(tmp_path / "r.csv", rows)))
    assert splits.modality == "text" and splits.class_names == ["mixed", "neg", "pos"]
    assert {k: splits.size(k) for k in ("train", "val", "test")} == {
        "train": 18, "val": 6, "test": 6}
    for split in ("train", "val", "test"):
        counts = np.bincount(splits.labels[split], minlength=3)
        assert (counts == counts[0]).all()  # stratified
    texts = _texts(splits, "train")
    by_text = dict(rows)
    labels = [splits.class_names[y] for _, y in splits.raw["train"].as_numpy_iterator()]
    assert [by_text[t] for t in texts] == labels  # texts stay with their labels
    assert splits.summary()["counts"]["test"] == {"mixed": 2, "neg": 2, "pos": 2}


@pytest.mark.parametrize("labels, names", [
    (("0", "1"), ["0", "1"]),
    (("3", "10", "9"), ["3", "9", "10"]),  # integers sort as numbers
])
def test_csv_integer_labels(tmp_path, labels, names):
    splits = load_splits(_data(write_csv(tmp_path / "r.csv", review_rows(30, labels=labels))))
    assert splits.class_names == names
    first_text, first_label = next(splits.raw["train"].as_numpy_iterator())
    assert isinstance(first_text, bytes) and 0 <= first_label < len(names)


def test_tsv_and_custom_columns_and_na_text(tmp_path):
    rows = [("NA", "a"), ("null", "b")] * 5
    path = write_csv(tmp_path / "r.tsv", rows, header=("review", "y"))
    path.write_text(path.read_text().replace(",", "\t"))
    splits = load_splits(_data(path, text_column="review", label_column="y"))
    assert splits.class_names == ["a", "b"]
    assert sorted(set(_texts(splits, "train"))) == ["NA", "null"]  # kept as text


def test_empty_text_and_missing_labels_name_their_rows(tmp_path):
    rows = review_rows(10)
    rows[1] = ("", "pos")
    rows[4] = ("   ", "neg")
    path = write_csv(tmp_path / "r.csv", rows)
    with pytest.raises(ValueError, match=r"Empty or missing text .* of .*r\.csv, 2 row\(s\): "
                                         r"2, 5 \(1-based data rows"):
        load_splits(_data(path))
    rows = review_rows(10)
    rows[6] = (rows[6][0], "")
    with pytest.raises(ValueError, match=r"Missing label .* 1 row\(s\): 7 "):
        load_splits(_data(write_csv(tmp_path / "m.csv", rows)))


def test_missing_columns_are_named(tmp_path):
    path = write_csv(tmp_path / "r.csv", review_rows(10), header=("review", "label"))
    with pytest.raises(ValueError, match=r"no column\(s\) \['text'\]; its columns are "
                                         r"\['review', 'label'\]"):
        load_splits(_data(path))


def test_malformed_csv_names_the_file_and_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text('text,label\n"fine film",pos\n"dull",neg,extra\n"good",pos\n')
    with pytest.raises(ValueError, match=r"bad\.csv is not valid CSV: .*line 3"):
        load_splits(_data(path))
    path.write_text("")
    with pytest.raises(ValueError, match="is empty"):
        load_splits(_data(path))
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        load_splits(_data(tmp_path / "missing.csv"))


def test_a_single_class_is_rejected(tmp_path):
    path = write_csv(tmp_path / "one.csv", review_rows(6, labels=("pos",)))
    with pytest.raises(ValueError, match=r"one\.csv needs at least 2 classes"):
        load_splits(_data(path))


def test_separate_test_file_and_unknown_labels(tmp_path):
    train = write_csv(tmp_path / "train.csv", review_rows(20))
    test = write_csv(tmp_path / "test.csv", review_rows(8, seed=5))
    splits = load_splits(_data(train, test_source=str(test)))
    assert {k: splits.size(k) for k in ("train", "val", "test")} == {
        "train": 16, "val": 4, "test": 8}  # test_fraction is not carved from train
    assert _texts(splits, "test") == [t for t, _ in review_rows(8, seed=5)]
    rows = review_rows(8, seed=5)
    rows[2] = (rows[2][0], "meh")
    rows[6] = (rows[6][0], "meh")
    with pytest.raises(ValueError, match=r"Unknown label\(s\) \['meh'\] in .*t2\.csv, 2 row"
                                         r"\(s\): 3, 7 .* classes \['neg', 'pos'\]"):
        load_splits(_data(train, test_source=str(write_csv(tmp_path / "t2.csv", rows))))


def test_max_examples_subsample_the_text_splits(tmp_path):
    train = write_csv(tmp_path / "train.csv", review_rows(40))
    test = write_csv(tmp_path / "test.csv", review_rows(20, seed=5))
    splits = load_splits(_data(train, test_source=str(test), max_train_examples=10,
                               max_test_examples=6))
    assert splits.size("train") == 10 and splits.size("test") == 6
    assert np.bincount(splits.labels["train"]).tolist() == [5, 5]
    # Validation shrinks with training: 40 rows carve 32 train + 8 val; 10/32 of 8 -> 2.
    assert splits.size("val") == 2
    assert np.bincount(splits.labels["val"]).tolist() == [1, 1]


def test_dataframes_with_integer_labels_and_missing_values():
    frame = pd.DataFrame({"review": [t for t, _ in review_rows(20)],
                          "stars": np.arange(20) % 2 + 1})
    data = _data("unused", text_column="review", label_column="stars")
    splits = load_dataframe_splits(frame, data)
    assert splits.class_names == ["1", "2"] and splits.source == "DataFrame"
    frame.loc[3, "review"] = None
    with pytest.raises(ValueError, match=r"Empty or missing text .* DataFrame, 1 row\(s\): 4 "):
        load_dataframe_splits(frame, data)
    frame = pd.DataFrame({"review": ["a", "b", "c"], "stars": [1.0, np.nan, 2.0]})
    with pytest.raises(ValueError, match=r"Missing label .* 1 row\(s\): 2 "):
        load_dataframe_splits(frame, data)


def test_separate_test_folder_for_images(tmp_path):
    train = make_image_folder(tmp_path / "train", per_class=5)
    test = make_image_folder(tmp_path / "test", per_class=2)
    splits = load_splits(_data(train, test_source=str(test)), image_size=16)
    assert splits.size("test") == 6 and splits.size("val") == 3 and splits.size("train") == 12
    assert all(path.startswith(str(test)) for path in splits.files["test"])
    other = make_image_folder(tmp_path / "other", per_class=2, classes=("a", "b"))
    with pytest.raises(ValueError, match="has classes"):
        load_splits(_data(train, test_source=str(other)), image_size=16)
    with pytest.raises(ValueError, match="same kind of source"):
        load_splits(_data(train, test_source=str(tmp_path / "t.csv")), image_size=16)


@pytest.mark.parametrize("training", [True, False])
def test_length_sorted_batches_keep_every_pair_and_pad_less(training):
    texts = [" ".join(["w"] * n) for n in np.random.default_rng(0).integers(1, 200, 256)]
    labels = np.arange(256)
    ds = tf.data.Dataset.from_tensor_slices((texts, labels))
    plain = list(make_batches(ds, batch_size=8, training=training, cache="none"))
    sorted_ds = make_batches(ds.take(250), batch_size=8, training=training, cache="none",
                             sort_window=4)
    assert int(sorted_ds.cardinality()) == 32  # known, as a warmup schedule needs (250 / 8)
    ordered = list(make_batches(ds, batch_size=8, training=training, cache="none",
                                sort_window=4))
    pairs = sorted((int(y), x.decode()) for b in ordered for x, y in zip(*(t.numpy() for t in b)))
    assert pairs == sorted(zip(labels.tolist(), texts))  # every text keeps its label

    def padded(batches):  # characters a batch padded to its longest text holds
        return sum(len(b[0]) * max(len(x) for x in b[0].numpy()) for b in batches)

    assert padded(ordered) < 0.8 * padded(plain)
    if training:  # the batches of a window come out shuffled, not shortest first
        longest = [max(len(x) for x in b[0].numpy()) for b in ordered]
        windows = [longest[i:i + 4] for i in range(0, len(longest), 4)]
        assert any(w != sorted(w) for w in windows)
