"""Exports a classifier as a SavedModel that TensorFlow Serving loads as it is.

    export_run(run_dir, base="saved_models", name="flowers")
        -> saved_models/flowers/<next version>/
             saved_model.pb     signatures (see tfxfer.serving.contract)
             variables/         every weight once, no optimizer state
             assets/labels.txt  class names, looked up inside the graph
             assets.extra/tf_serving_warmup_requests

The steps live beside this module: `introspect` (modality, image size, classes),
`serving_module` (the graph and its signatures), `checks` (ops, size), `verify`
(a fresh TensorFlow-only process), `warmup` and `layout` (atomic publishing).

Before a version is published, the graph is scanned for ops TF Serving's binary
lacks (Python callbacks), the variables are checked to be written once, and,
with `verify=True`, a fresh process that imports only TensorFlow runs the export
against the Keras model. Only then is the temporary directory renamed into place.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from tfxfer.serving.contract import DEFAULT_MAX_AUDIO_SECONDS, DEFAULT_MAX_PIXELS, LABELS_ASSET
from tfxfer.serving.export import layout
from tfxfer.serving.export.checks import check_ops, check_variables_size
from tfxfer.serving.export.errors import ExportError
from tfxfer.serving.export.introspect import (
    export_modality,
    image_size_of,
    top_k_of,
    validate_classes,
    weights_bytes,
)
from tfxfer.serving.export.samples import read_samples, run_samples
from tfxfer.serving.export.serving_module import build_serving_module
from tfxfer.serving.export.verify import VerifyReport, verify_export
from tfxfer.serving.export.warmup import write_warmup

logger = logging.getLogger(__name__)


@dataclass
class ExportResult:
    """What `export_model` wrote.

    Attributes:
        path: the published version directory BASE/NAME/VERSION.
        version: its integer version.
        modality: "image" or "text".
        class_names: the labels, in class-id order.
        signatures: names of the exported signatures.
        variables_bytes: size of variables/ on disk.
        weights_bytes: bytes of the model's weights in memory.
        warmup_records: number of PredictionLog records written.
        verification: the fresh-process check, when asked for.
    """

    path: Path
    version: int
    modality: str
    class_names: list[str]
    signatures: list[str]
    variables_bytes: int
    weights_bytes: int
    warmup_records: int
    verification: VerifyReport | None = None


def _save(
    model: keras.Model, class_names: Sequence[str], out: Path, top_k: int,
    image_size: int | None, max_pixels: int, max_audio_seconds: float,
) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="tfxfer-labels-") as scratch:
        module, signatures = build_serving_module(
            model, class_names, Path(scratch, LABELS_ASSET), top_k=top_k, image_size=image_size,
            max_pixels=max_pixels, max_audio_seconds=max_audio_seconds,
        )
        tf.saved_model.save(module, str(out), signatures=signatures)
    return sorted(signatures)


def export_model(
    model: keras.Model,
    class_names: Sequence[str],
    base: str | Path,
    name: str,
    *,
    version: int | None = None,
    top_k: int | None = None,
    image_size: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_audio_seconds: float = DEFAULT_MAX_AUDIO_SECONDS,
    samples: Sequence[bytes | str] = (),
    warmup: bool = True,
    verify: bool = False,
) -> ExportResult:
    """Exports `model` to BASE/NAME/VERSION for TF Serving, atomically.

    Args:
        model: a single-input Keras classifier (uint8 images, strings or float
            waveforms in, probabilities out).
        class_names: labels in class-id order.
        base: the base directory of all exported models.
        name: the model name (a subdirectory of `base`).
        version: the version number; None takes the next free one. An existing
            version is an error and is never overwritten.
        top_k: how many best classes the signatures return (default min(5, C)).
        image_size: side images are decoded to (default: from the model).
        max_pixels: images whose header declares more pixels are refused before
            decoding (INVALID_ARGUMENT; HTTP 400).
        max_audio_seconds: audio models: WAV inputs of more seconds are refused
            (INVALID_ARGUMENT; HTTP 400).
        samples: real example inputs (encoded images or text) for the warmup
            file and the verification; needed when `warmup` or `verify` is set.
        warmup: write assets.extra/tf_serving_warmup_requests.
        verify: run the export in a fresh TensorFlow-only process and compare it
            with the Keras model before publishing.

    Returns:
        An ExportResult describing the published version.
    """
    target_dir = layout.model_dir(base, name)
    if version is not None:
        layout.check_new_version(target_dir, version)
    modality = export_modality(model)
    validate_classes(model, class_names)
    size = image_size_of(model, image_size) if modality == "image" else None
    k = top_k_of(top_k, len(class_names))
    if max_pixels < 1:
        raise ExportError(f"max_pixels must be >= 1. Received: max_pixels={max_pixels}")
    if (warmup or verify) and not samples:
        raise ExportError("Warmup and verification need example inputs (samples).")

    layout.remove_stale_temp_dirs(target_dir)
    temp = layout.make_temp_dir(target_dir)
    try:
        signatures = _save(model, class_names, temp, k, size, max_pixels, max_audio_seconds)
        check_ops(temp)
        expected = weights_bytes(model)
        written = check_variables_size(temp, expected)
        records = write_warmup(temp, samples, name) if warmup else 0
        report = None
        if verify:
            report = verify_export(temp, model, class_names, samples, modality=modality,
                                   image_size=size, top_k=k)
        if version is None:
            chosen, path = layout.publish_next(temp, target_dir)
        else:
            chosen, path = version, layout.publish(temp, target_dir, version)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    logger.info("Exported %s version %d (%s) to %s", name, chosen, ", ".join(signatures), path)
    if report is not None:
        report.saved_model = path
    return ExportResult(path, chosen, modality, list(class_names), signatures, written,
                        expected, records, report)


def export_run(
    run_dir: str | Path,
    base: str | Path,
    name: str,
    *,
    sample_files: Sequence[str | Path] = (),
    **kwargs,
) -> ExportResult:
    """Exports the model of a finished run (see `export_model` for the options).

    Example inputs for warmup and verification are `sample_files` when given,
    otherwise the run's own image files or a few sentences (`tfxfer.serving.export.samples`).
    """
    from tfxfer.image.model import image_size_for
    from tfxfer.rundir import load_run
    from tfxfer.tasks.outputs import read_outputs

    if read_outputs(run_dir) is not None:
        raise ExportError(f"{run_dir} is a task run (outputs.json): export it with "
                          "tfxfer.tasks.export.export_task_run (what `tfxfer export` does).")
    config, model, class_names = load_run(run_dir)
    modality = export_modality(model)
    samples = (read_samples(sample_files, modality) if sample_files
               else run_samples(run_dir, modality))
    if modality == "image" and kwargs.get("image_size") is None:
        kwargs["image_size"] = image_size_for(config.model)
    return export_model(model, class_names, base, name, samples=samples, **kwargs)
