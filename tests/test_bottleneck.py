import dataclasses
import logging
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import spread_backbone_weights, tiny_config, write_image

from tfxfer.config import load_config
from tfxfer.data import load_splits
from tfxfer.experiment import resolve_config, train
from tfxfer.image.model import build_image_classifier
from tfxfer.training import bottleneck


def _config(folder, out, cache_dir, **train_overrides):
    config = tiny_config(folder, out, strategy="feature_extraction", epochs=2,
                         bottleneck_cache="on", **train_overrides)
    return dataclasses.replace(
        config, data=dataclasses.replace(config.data, cache_dir=str(cache_dir)),
        model=dataclasses.replace(
            config.model, image=dataclasses.replace(config.model.image, augment=False)))


def test_head_on_cached_features_equals_the_full_model(image_folder, tmp_path):
    config = resolve_config(_config(image_folder, tmp_path / "run", tmp_path / "cache"))
    splits = load_splits(config.data, 32)
    model = spread_backbone_weights(build_image_classifier(config.model, 3))
    x, y = bottleneck.cached_split(model, config, splits, "train")
    assert x.shape == (splits.size("train"), 256) and np.isfinite(x).all()
    np.testing.assert_array_equal(y, splits.labels["train"])
    images = np.concatenate([batch.numpy() for batch, _ in
                             splits.batches("train", config.data)])
    from_images = model.predict(images, verbose=0)
    from_cache = bottleneck.head_model(model).predict(x, verbose=0)
    assert np.ptp(from_images[:, 0]) > 1e-3  # outputs depend on the image
    np.testing.assert_allclose(from_cache, from_images, atol=1e-5)


def test_second_run_reuses_the_cache_and_new_data_does_not(image_folder, tmp_path, caplog):
    cache = tmp_path / "cache"
    train(_config(image_folder, tmp_path / "a", cache))
    with caplog.at_level(logging.INFO, logger="tfxfer.training.bottleneck"):
        train(_config(image_folder, tmp_path / "b", cache))
    assert "Reusing cached train features" in caplog.text
    assert len(list((cache / "features").iterdir())) == 2  # train and val
    write_image(image_folder / "red" / "extra.jpg", (200, 30, 30), seed=99)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="tfxfer.training.bottleneck"):
        train(_config(image_folder, tmp_path / "c", cache))
    assert "Computing train features" in caplog.text


def test_augmentation_without_copies_falls_back_to_the_full_model(image_folder, tmp_path,
                                                                  caplog):
    config = tiny_config(image_folder, tmp_path / "run", strategy="feature_extraction")
    with caplog.at_level(logging.INFO, logger="tfxfer.training.bottleneck"):
        train(config)  # bottleneck_cache="auto", augmentation on, no copies
    assert "Bottleneck cache off: augmentation is on" in caplog.text
    strict = tiny_config(image_folder, tmp_path / "run2", strategy="feature_extraction",
                         bottleneck_cache="on")
    with pytest.raises(ValueError, match="bottleneck_cache='on' cannot be honoured"):
        train(strict)


def test_augmented_copies_are_cached_and_differ(image_folder, tmp_path):
    config = tiny_config(image_folder, tmp_path / "run", strategy="fine_tune",
                         bottleneck_cache="on", augmented_copies=3)
    config.data.cache_dir = str(tmp_path / "cache")
    result = train(config)
    assert [p.name for p in result.history.phases] == ["head", "fine_tune"]
    x, _ = bottleneck.cached_split(result.model, result.config, result.splits, "train", 3)
    assert x.shape[:2] == (result.splits.size("train"), 3)
    assert np.abs(x[:, 0] - x[:, 1]).max() > 0.01 * np.abs(x).max()  # copies differ


@pytest.mark.parametrize("mapped", [True, False], ids=["memory-mapped", "in-memory"])
@pytest.mark.parametrize("in_memory_bytes", [0, bottleneck.IN_MEMORY_BYTES],
                         ids=["read-per-batch", "one-tensor"])
def test_features_dataset_draws_one_copy_per_example_each_epoch(tmp_path, mapped,
                                                                 in_memory_bytes):
    x = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float32,
                                  shape=(10, 2, 4))
    x[:] = np.arange(80, dtype=np.float32).reshape(10, 2, 4)
    x.flush()
    x = np.load(tmp_path / "x.npy", mmap_mode="r" if mapped else None)
    y = np.arange(10)
    ds = bottleneck.features_dataset(x, y, batch_size=4, training=True, seed=0,
                                     in_memory_bytes=in_memory_bytes)
    epochs = []
    for _ in range(4):
        seen, orders = {}, []
        for features, labels in ds:
            assert features.shape[1:] == (4,)
            for f, label in zip(features.numpy(), labels.numpy()):
                assert f[0] in (label * 8, label * 8 + 4)  # one of that example's two copies
                seen[int(label)] = int(f[0] - label * 8) // 4
                orders.append(int(label))
        assert sorted(seen) == list(range(10))
        epochs.append((orders, [seen[i] for i in range(10)]))
    assert len({tuple(order) for order, _ in epochs}) > 1  # reshuffled
    assert len({tuple(copies) for _, copies in epochs}) > 1  # copies drawn anew


@pytest.mark.parametrize("in_memory_bytes", [0, bottleneck.IN_MEMORY_BYTES],
                         ids=["read-per-batch", "one-tensor"])
def test_features_dataset_draws_whole_copies_of_activation_maps(in_memory_bytes):
    copies = np.arange(2, dtype=np.float32)[None, :] + 10 * np.arange(6)[:, None]  # (6, 2)
    x = np.broadcast_to(copies[:, :, None, None, None], (6, 2, 3, 3, 4)).copy()
    ds = bottleneck.features_dataset(x, np.arange(6), batch_size=4, training=True, seed=1,
                                     feature_rank=3, in_memory_bytes=in_memory_bytes)
    drawn = set()
    for _ in range(3):
        for features, labels in ds:
            assert features.shape[1:] == (3, 3, 4)
            for f, label in zip(features.numpy(), labels.numpy()):
                assert np.all(f == f.flat[0]) and f.flat[0] in (10 * label, 10 * label + 1)
                drawn.add(float(f.flat[0]) % 10)
    assert drawn == {0.0, 1.0}


@pytest.mark.parametrize("in_memory_bytes", [0, bottleneck.IN_MEMORY_BYTES],
                         ids=["read-per-batch", "one-tensor"])
def test_features_dataset_keeps_order_shapes_and_drops_the_remainder(in_memory_bytes):
    x = np.arange(10 * 2 * 3, dtype=np.float32).reshape(10, 2, 3)  # activations of rank 2
    y = np.arange(10)
    ds = bottleneck.features_dataset(x, y, batch_size=4, training=False, seed=0,
                                     feature_rank=2, in_memory_bytes=in_memory_bytes)
    assert ds.element_spec[0].shape.as_list() == [None, 2, 3]
    batches = list(ds)
    assert [len(labels) for _, labels in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([f for f, _ in batches]), x)
    even = bottleneck.features_dataset(x, y, batch_size=4, training=True, seed=0,
                                       feature_rank=2, drop_remainder=True,
                                       in_memory_bytes=in_memory_bytes)
    labels = np.concatenate([labels for _, labels in even])
    assert len(labels) == 8 and len(set(labels.tolist())) == 8
    for features, batch_labels in even:
        np.testing.assert_array_equal(features.numpy(), x[batch_labels.numpy()])


@pytest.mark.parametrize("training", [True, False])
def test_features_dataset_with_lengths_batches_similar_lengths_and_keeps_every_pair(training):
    lengths = np.random.default_rng(0).integers(1, 100, 256)
    x = np.repeat(lengths[:, None].astype(np.float32), 3, axis=1)  # each row names its length
    y = np.arange(256)
    ds = bottleneck.features_dataset(x, y, batch_size=8, training=training, seed=0,
                                     lengths=lengths)
    batches = [(f.numpy(), labels.numpy()) for f, labels in ds]
    assert int(ds.cardinality()) == len(batches) == 32  # a warmup schedule needs it known
    for features, labels in batches:
        np.testing.assert_array_equal(features, x[labels])
    assert sorted(np.concatenate([labels for _, labels in batches])) == list(range(256))
    longest = sum(len(labels) * lengths[labels].max() for _, labels in batches)
    plain = bottleneck.features_dataset(x, y, batch_size=8, training=training, seed=0)
    longest_plain = sum(len(labels) * lengths[labels.numpy()].max() for _, labels in plain)
    assert longest < 0.8 * longest_plain  # padded positions a length-cut batch computes


def test_data_digest_of_file_lists_equals_the_digest_of_the_pipeline(image_folder, tmp_path):
    config = _config(image_folder, tmp_path / "run", tmp_path / "cache")
    splits = load_splits(config.data, 32)
    through_pipeline = dataclasses.replace(splits, files={})
    for split in ("train", "val"):
        assert bottleneck._data_digest(splits, split) == bottleneck._data_digest(
            through_pipeline, split)
    assert bottleneck._data_digest(splits, "train") != bottleneck._data_digest(splits, "val")


def test_cache_key_depends_on_the_backbone_settings(image_folder, tmp_path):
    config = _config(image_folder, tmp_path / "run", tmp_path / "cache")
    splits = load_splits(config.data, 32)
    key = bottleneck.cache_key(config, splits, "train", 0)
    assert key == bottleneck.cache_key(config, splits, "train", 0)
    config.model.image.image_size = 40
    assert key != bottleneck.cache_key(config, splits, "train", 0)


def test_mirrored_strategy_on_two_logical_cpus(image_folder, tmp_path):
    script = textwrap.dedent(f"""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from tfxfer.config import load_config
        from tfxfer.experiment import train
        config = load_config(overrides={{
            "data": {{"source": {str(image_folder)!r}, "batch_size": 4, "seed": 1,
                      "val_fraction": 0.2, "test_fraction": 0.2}},
            "model": {{"image": {{"backbone": "mobilenet", "weights": "none",
                                 "image_size": 32, "backbone_kwargs": {{"alpha": 0.25}}}}}},
            "train": {{"epochs": 1, "fine_tune_epochs": 1, "distribute": "mirrored",
                       "verbose": 0}},
            "out": {str(tmp_path / "run")!r}}})
        result = train(config)
        print("replicas", result.model.distribute_strategy.num_replicas_in_sync)
        print("accuracy", result.evaluation.accuracy)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "replicas 2" in done.stdout


def test_text_cache_key_follows_the_encoder_files(tmp_path):
    import os

    from text_helpers import build_tiny_encoder, review_rows, write_csv

    from tfxfer.text.model import build_text_classifier

    encoder = build_tiny_encoder(tmp_path / "encoder")
    csv = write_csv(tmp_path / "reviews.csv", review_rows(20))
    config = load_config(overrides={"data": {"source": str(csv)},
                                    "model": {"text": {"encoder": str(encoder)}}})
    splits = load_splits(config.data)
    key = bottleneck.cache_key(config, splits, "train", 0, build_text_classifier(config.model, 2))
    pb = encoder / "saved_model.pb"
    os.utime(pb, ns=(pb.stat().st_atime_ns, pb.stat().st_mtime_ns + 10**9))  # "rebuilt"
    rebuilt = build_text_classifier(config.model, 2)
    assert key != bottleneck.cache_key(config, splits, "train", 0, rebuilt)
