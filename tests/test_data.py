import logging

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from conftest import CLASS_COLOURS, make_image_folder, write_image

from tfxfer.config import DataConfig
from tfxfer.data import (
    load_splits,
    scan_image_folder,
    stratified_split,
    stratified_subset,
    tfds_source,
)
from tfxfer.data.pipeline import make_batches, single_pass


def test_split_is_deterministic_stratified_and_disjoint():
    labels = np.repeat([0, 1, 2], [20, 30, 10])
    a = stratified_split(labels, 0.2, 0.1, seed=7)
    b = stratified_split(labels, 0.2, 0.1, seed=7)
    c = stratified_split(labels, 0.2, 0.1, seed=8)
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(a[split], b[split])
        assert set(labels[a[split]]) == {0, 1, 2}
    assert not np.array_equal(a["test"], c["test"])
    everything = np.concatenate([a["train"], a["val"], a["test"]])
    assert sorted(everything) == list(range(60))
    assert np.bincount(labels[a["val"]]).tolist() == [4, 6, 2]


def test_split_of_one_class_does_not_depend_on_another():
    labels = np.repeat([0, 1], [20, 20])
    more = np.repeat([0, 1], [20, 35])
    a = stratified_split(labels, 0.2, 0.2, seed=3)
    b = stratified_split(more, 0.2, 0.2, seed=3)
    np.testing.assert_array_equal(a["test"][:4], b["test"][:4])


def test_class_with_too_few_examples_is_named():
    with pytest.raises(ValueError, match="Class 'rare' has 2 examples, too few"):
        stratified_split([0] * 10 + [1] * 2, 0.2, 0.2, seed=0, class_names=["common", "rare"])


def test_stratified_subset_keeps_proportions():
    labels = np.repeat([0, 1], [300, 100])
    kept = stratified_subset(np.arange(400), labels, 40, seed=0)
    assert len(kept) == 40 and np.bincount(labels[kept]).tolist() == [30, 10]
    assert len(stratified_subset(np.arange(400), labels, 3, seed=0)) == 3


def test_every_image_format_decodes_to_rgb(tmp_path):
    root = tmp_path / "formats"
    for i, (name, mode) in enumerate([("a.jpg", "RGB"), ("b.png", "RGB"), ("c.gif", "P"),
                                      ("d.bmp", "RGB"), ("e.png", "L"), ("f.png", "RGBA")]):
        write_image(root / "one" / name, CLASS_COLOURS[0], mode=mode, seed=i)
        write_image(root / "two" / name, CLASS_COLOURS[1], mode=mode, seed=10 + i)
    splits = load_splits(DataConfig(source=str(root), val_fraction=0, test_fraction=0,
                                    batch_size=12), image_size=24)
    assert splits.skipped == []
    images, labels = next(iter(splits.batches("train", DataConfig(batch_size=12))))
    assert images.shape == (12, 24, 24, 3) and images.dtype == tf.uint8
    means = images.numpy()[labels.numpy() == 0].mean(axis=(1, 2))
    grey = np.isclose(means[:, 0], means[:, 1])  # the "L" file: three equal channels
    assert grey.sum() == 1
    assert (means[~grey, 0] > means[~grey, 1] + 60).all()  # the others are still red


def test_bad_files_are_named_counted_and_skipped(tmp_path, caplog):
    root = make_image_folder(tmp_path / "imgs", per_class=5)
    good = (root / "red" / "red_0.jpg").read_bytes()
    (root / "red" / "empty.jpg").write_bytes(b"")
    (root / "red" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (root / "green" / "notes.txt").write_text("not an image")
    (root / "blue" / "garbage.png").write_bytes(np.random.default_rng(0).bytes(500))
    (root / "blue" / ".DS_Store").write_bytes(b"\x00\x01")
    with caplog.at_level(logging.WARNING):
        folder = scan_image_folder(root)
    reasons = {p.rsplit("/", 1)[-1]: r for p, r in ((s.path, s.reason) for s in folder.skipped)}
    assert set(reasons) == {"empty.jpg", "truncated.jpg", "notes.txt", "garbage.png"}
    assert reasons["empty.jpg"] == "empty file (0 bytes)"
    assert "not a decodable image" in reasons["truncated.jpg"]
    assert len(folder.paths) == 15
    assert "Skipped 4 file(s)" in caplog.text and "truncated.jpg" in caplog.text


def test_training_goes_on_without_validation_when_files_are_bad(tmp_path):
    root = make_image_folder(tmp_path / "imgs", per_class=5)
    (root / "red" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    data = DataConfig(source=str(root), validate_files=False, val_fraction=0, test_fraction=0,
                      batch_size=32)
    splits = load_splits(data, image_size=16)
    images, _ = next(iter(splits.batches("train", data)))
    assert images.shape[0] == 15  # the broken file was dropped by the pipeline


def test_empty_class_folder_is_an_error(tmp_path):
    root = make_image_folder(tmp_path / "imgs", per_class=3)
    (root / "empty_class").mkdir()
    with pytest.raises(ValueError, match="empty_class has no usable images"):
        scan_image_folder(root)


def test_single_class_folder_is_an_error(tmp_path):
    root = make_image_folder(tmp_path / "imgs", per_class=3, classes=("only",))
    with pytest.raises(ValueError, match="at least 2 class subfolders; found 1"):
        scan_image_folder(root)


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="Image folder not found"):
        scan_image_folder(tmp_path / "nowhere")


def test_folder_splits_and_pipeline(image_folder):
    data = DataConfig(source=str(image_folder), batch_size=4, val_fraction=0.2,
                      test_fraction=0.2, seed=3)
    splits = load_splits(data, image_size=32)
    assert splits.class_names == ["blue", "green", "red"] and splits.modality == "image"
    assert [splits.size(s) for s in ("train", "val", "test")] == [12, 3, 3]
    assert splits.summary()["counts"]["test"] == {"blue": 1, "green": 1, "red": 1}
    assert sorted(splits.files["train"] + splits.files["val"] + splits.files["test"]) == \
        sorted(str(p) for p in image_folder.rglob("*.jpg"))
    test_batches = splits.batches("test", data)
    first = [y.numpy().tolist() for _, y in test_batches]
    assert first == [y.numpy().tolist() for _, y in test_batches]  # test order is fixed
    epochs = [[y.numpy().tolist() for _, y in splits.batches("train", data, training=True)]
              for _ in range(1)]
    assert sum(len(b) for b in epochs[0]) == 12


def test_a_split_without_a_full_batch_has_no_batches_when_the_remainder_drops(image_folder,
                                                                             caplog):
    data = DataConfig(source=str(image_folder), batch_size=4, val_fraction=0.2,
                      test_fraction=0.2, seed=3)
    splits = load_splits(data, image_size=32)  # val holds 3 examples
    assert splits.has_batches("val", data)
    val = [y.numpy().tolist() for _, y in splits.batches("val", data)]
    assert [len(b) for b in val] == [3]  # the partial batch is kept without drop_remainder
    assert sorted(val[0]) == sorted(splits.labels["val"].tolist())
    with caplog.at_level(logging.WARNING):
        assert not splits.has_batches("val", data, drop_remainder=True)
    assert "val split (3 examples) holds no full batch of 4" in caplog.text
    assert splits.batches("val", data, drop_remainder=True) is None
    assert not splits.has_batches("missing", data)


def test_tfds_image_dataset_through_tfds_load():
    data = DataConfig(source="tfds:tf_flowers", batch_size=5, seed=0)
    with tfds.testing.mock_data(num_examples=40):
        splits = load_splits(data, image_size=24)
        images, labels = next(iter(splits.batches("train", data, training=True)))
    assert splits.modality == "image"
    assert splits.class_names == ["dandelion", "daisy", "tulips", "sunflowers", "roses"]
    assert images.shape == (5, 24, 24, 3) and images.dtype == tf.uint8
    assert sum(splits.size(s) for s in ("train", "val", "test")) == 40


def test_tfds_official_test_split_is_used(monkeypatch):
    monkeypatch.setattr(tfds_source, "available_splits", lambda info: {"train", "test"})
    data = DataConfig(source="tfds:imdb_reviews", val_fraction=0.25, max_test_examples=10)
    with tfds.testing.mock_data(num_examples=24):
        splits = load_splits(data)
        text, _ = next(iter(splits.raw["test"]))
    assert splits.modality == "text" and splits.class_names == ["neg", "pos"]
    assert splits.size("test") == 10  # the official split, subsampled
    assert splits.size("train") + splits.size("val") == 24
    assert text.dtype == tf.string


def test_single_pass_keeps_every_element_in_order_with_the_autotuner_off():
    ds = make_batches(tf.data.Dataset.from_tensor_slices((tf.range(10), tf.range(10) % 2)),
                      batch_size=4, training=False)
    once = single_pass(ds)
    assert not once.options().autotune.enabled and ds.options().autotune.enabled is not False
    assert [x.numpy().tolist() for x, _ in once] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_a_file_cache_in_a_missing_folder_is_created_and_a_blocked_one_named(tmp_path):
    root = make_image_folder(tmp_path / "images", per_class=3)
    data = DataConfig(source=str(root), val_fraction=0, test_fraction=0,
                      cache=str(tmp_path / "not" / "yet" / "decoded"))
    splits = load_splits(data, image_size=8)
    assert sum(len(y) for _, y in splits.batches("train", data)) == 9
    assert list((tmp_path / "not" / "yet").glob("decoded_train*"))  # the cache was written
    (tmp_path / "file").write_text("a file, not a folder")
    blocked = DataConfig(source=str(root), val_fraction=0, test_fraction=0,
                         cache=str(tmp_path / "file" / "decoded"))
    with pytest.raises(ValueError, match=r"data.cache=.*file/decoded.*train split"):
        load_splits(blocked, image_size=8).batches("train", blocked)
