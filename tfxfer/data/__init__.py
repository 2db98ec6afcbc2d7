"""Data sources, stratified splits and tf.data pipelines.

    sources.py      `load_splits`: which loader reads `DataConfig.source`
    folder.py       image folders (one subfolder per class) -> Splits
    text.py         CSV/TSV tables and DataFrames of text -> Splits
    tfds_source.py  `tfds:NAME` datasets -> Splits
    splits.py       the `Splits` type, stratified split and subsampling
    images.py       scanning image folders, naming bad files
    pipeline.py     decode, cache, shuffle, batch, prefetch
"""

from tfxfer.data.images import ImageFolder, SkippedFile, check_image, scan_image_folder
from tfxfer.data.pipeline import decode_image, make_batches
from tfxfer.data.sources import load_splits, source_kind
from tfxfer.data.splits import Splits, stratified_split, stratified_subset

__all__ = [
    "ImageFolder",
    "SkippedFile",
    "Splits",
    "check_image",
    "decode_image",
    "load_splits",
    "make_batches",
    "scan_image_folder",
    "source_kind",
    "stratified_split",
    "stratified_subset",
]
