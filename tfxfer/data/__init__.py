"""Data sources, stratified splits and tf.data pipelines."""

from tfxfer.data.images import ImageFolder, SkippedFile, check_image, scan_image_folder
from tfxfer.data.pipeline import decode_image, make_batches
from tfxfer.data.sources import Splits, load_splits, source_kind
from tfxfer.data.split import stratified_split, stratified_subset

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
