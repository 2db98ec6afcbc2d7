"""TFDS datasets (`tfds:NAME`) through the real `tfds.load` call.

Official "validation" and "test" splits are used when the dataset has them;
what is missing is carved from "train" with a stratified split. Images are
loaded undecoded (`SkipDecoding`) so the shared pipeline decodes and resizes
them in parallel, exactly as for image folders.
"""

from __future__ import annotations

import logging

import numpy as np
import tensorflow as tf

from tfxfer.config import DataConfig
from tfxfer.data.pipeline import image_decoder
from tfxfer.data.splits import Splits, carve_indices, subsample_splits
from tfxfer.modality import IMAGE, modality_of_source
from tfxfer.runtime.offline import check_reachable, fetching

logger = logging.getLogger(__name__)

_OFFICIAL = {"val": "validation", "test": "test"}
_OFFLINE = ("--data FOLDER (a class-subfolder image folder, or a CSV file for text), or "
            "--tfds-data-dir DIR holding the prepared dataset")


def _load(name: str, split: str, data: DataConfig, decoders=None, download: bool = True):
    import tensorflow_datasets as tfds

    return tfds.load(
        name, split=split, data_dir=data.tfds_data_dir, as_supervised=True,
        with_info=True, decoders=decoders, shuffle_files=False, download=download,
    )


def _check_download(name: str, data: DataConfig) -> None:
    """Fails within seconds when an unprepared dataset's download host cannot be reached.

    Without this, TFDS retries a refused download for minutes before failing.
    """
    import tensorflow_datasets as tfds

    builder = tfds.builder(name, data_dir=data.tfds_data_dir)
    with fetching(f"TFDS dataset {name!r}", _OFFLINE):
        check_reachable(builder.url_infos or {})


def _load_info(name: str, data: DataConfig):
    """The train split and info; a dataset not prepared yet is downloaded after a probe."""
    import tensorflow_datasets as tfds

    try:
        return _load(name, "train", data, download=False)
    except AssertionError:  # TFDS: "could not find data in ..." (not prepared)
        pass
    except tfds.core.registered.DatasetNotFoundError as err:
        # Its message lists every TFDS dataset (some 1,300 lines): name the one asked for.
        raise ValueError(
            f"Unknown TFDS dataset {name!r} (--data tfds:{name}): TFDS "
            f"{tfds.__version__} has no such name; see "
            "https://www.tensorflow.org/datasets/catalog/overview") from err
    _check_download(name, data)
    with fetching(f"TFDS dataset {name!r}", _OFFLINE):
        return _load(name, "train", data)


def _modality(info) -> str:
    return modality_of_source("tfds", info.features[info.supervised_keys[0]], info.name)


def _labels(ds: tf.data.Dataset) -> np.ndarray:
    return np.fromiter(ds.map(lambda x, y: y).as_numpy_iterator(), dtype=np.int64)


def _select(ds: tf.data.Dataset, indices: np.ndarray, total: int) -> tf.data.Dataset:
    if len(indices) == total:
        return ds
    mask = np.zeros(total, dtype=bool)
    mask[indices] = True
    mask = tf.constant(mask)
    selected = ds.enumerate().filter(lambda i, ex: tf.gather(mask, i)).map(lambda i, ex: ex)
    # `filter` loses the length; stating it lets Keras count steps per epoch.
    return selected.apply(tf.data.experimental.assert_cardinality(len(indices)))


def _official(labels: np.ndarray, split: str, data: DataConfig) -> np.ndarray:
    """Indices of an official split: all of it, or the `max_*_examples` subset."""
    return subsample_splits({split: np.arange(len(labels))}, labels, data)[split]


def available_splits(info) -> set[str]:
    """Split names the dataset declares ("train" only when its metadata is unknown)."""
    return set(info.splits.keys()) if info.splits else {"train"}


def load_tfds_splits(data: DataConfig, image_size: int | None) -> Splits:
    """Loads `tfds:NAME` and splits it into train/val/test.

    Args:
        data: the data section; `source` is "tfds:NAME".
        image_size: side images are decoded to (image datasets only).

    Returns:
        Splits of encoded images or text strings.
    """
    name = data.source.removeprefix("tfds:")
    _, info = _load_info(name, data)
    modality = _modality(info)
    input_key, label_key = info.supervised_keys
    import tensorflow_datasets as tfds

    decoders = {input_key: tfds.decode.SkipDecoding()} if modality == IMAGE else None
    class_names = [str(n) for n in info.features[label_key].names]
    available = available_splits(info)
    official = {k: v for k, v in _OFFICIAL.items() if v in available}

    datasets = {"train": _load(name, "train", data, decoders)[0]}
    datasets.update({k: _load(name, v, data, decoders)[0] for k, v in official.items()})
    labels = {k: _labels(ds) for k, ds in datasets.items()}

    carved = carve_indices(labels["train"], data, class_names,
                           carve_val="val" not in official, carve_test="test" not in official)
    raw, split_labels = {}, {}
    for split in ("train", "val", "test"):
        if split in official:  # an official split is used whole, subsampled if asked
            source, indices = split, _official(labels[split], split, data)
        else:
            source, indices = "train", carved[split]
        if len(indices):
            raw[split] = _select(datasets[source], indices, len(labels[source]))
            split_labels[split] = labels[source][indices]
    logger.info("Loaded tfds:%s (%s), splits %s", name, modality,
                {k: len(v) for k, v in split_labels.items()})
    decode = image_decoder(image_size, from_paths=False) if modality == IMAGE else None
    example_bytes = image_size * image_size * 3 if modality == IMAGE else 0
    return Splits(class_names, modality, raw, split_labels, data.source, decode=decode,
                  example_bytes=example_bytes)
