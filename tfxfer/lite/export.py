"""On-device export: a verified .tflite model with its labels, published atomically.

    export_run_tflite("runs/flowers", quantization="int8")
        -> runs/flowers/tflite-int8/
             model.tflite        uint8 RGB [1, S, S, 3] in, probabilities out
             labels.txt          class names in output order
             tflite_report.json  mode, sizes, input/output description, calibration
                                 set, verification on the test split

Steps: convert (`tfxfer.lite.convert`; full-integer calibrated on training
images, `tfxfer.lite.representative`), write into a temporary directory, run the
file with the LiteRT interpreter on the run's test split against the Keras
model (`tfxfer.lite.verify`), refuse to publish when it loses more accuracy
than the mode allows (unless `force`), then rename into place.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from tfxfer.lite.convert import LiteConversionError, convert_image_model, unsupported_model_error
from tfxfer.lite.metadata import io_description, write_labels
from tfxfer.lite.publish import check_new_target, make_temp_dir, publish_directory
from tfxfer.lite.quantization import (
    DEFAULT_REPRESENTATIVE_EXAMPLES,
    get_quantization,
    validate_io_type,
)
from tfxfer.lite.representative import RepresentativeSet, collect_images, training_examples
from tfxfer.lite.runtime import LiteClassifier, interpreter_class
from tfxfer.lite.verify import LiteVerificationError, LiteVerifyReport, verify

logger = logging.getLogger(__name__)

MODEL_FILE = "model.tflite"
REPORT_FILE = "tflite_report.json"


@dataclass
class LiteExportResult:
    """What `export_tflite` published.

    Attributes:
        path: the export directory.
        quantization: the mode.
        size_bytes: size of model.tflite.
        report: the contents of tflite_report.json.
        verification: the comparison with the Keras model, when it ran.
    """

    path: Path
    quantization: str
    size_bytes: int
    report: dict
    verification: LiteVerifyReport | None

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FILE


def _keras_probabilities(model: keras.Model, images: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict(images, batch_size=32, verbose=0), dtype=np.float32)


def export_tflite(
    model: keras.Model,
    class_names: Sequence[str],
    out: str | Path,
    *,
    quantization: str,
    image_size: int,
    test_images: np.ndarray | None = None,
    test_labels: np.ndarray | None = None,
    representative: RepresentativeSet | None = None,
    io_type: str = "uint8",
    force: bool = False,
    resize_in_model: bool = False,
    backbone: str = "",
) -> LiteExportResult:
    """Converts, verifies and publishes `model` as OUT/model.tflite with labels and a report.

    Args:
        model: a tfxfer image classifier (uint8 images in, probabilities out).
        class_names: labels in class-id order.
        out: the export directory; must not exist.
        quantization: "none", "float16", "dynamic" or "int8".
        image_size: the side S of the model's input.
        test_images: uint8 [N, S, S, 3] labelled images to verify on.
        test_labels: their class ids.
        representative: calibration images (int8).
        io_type: input/output type of an int8 model, "uint8" or "int8".
        force: publish without verification, or when it fails.
        resize_in_model: keep the resize layer; the model takes any H x W.
        backbone: the backbone's name, for the report.

    Returns:
        A LiteExportResult.

    Raises:
        LiteConversionError: the model cannot be converted (e.g. string ops).
        LiteVerificationError: the accuracy bound failed (and not `force`).
        FileExistsError: `out` exists.
    """
    spec = get_quantization(quantization)
    validate_io_type(io_type)
    out = check_new_target(out)
    if len(model.outputs[0].shape) != 2 or model.outputs[0].shape[-1] != len(class_names):
        raise ValueError(f"The model predicts {model.outputs[0].shape[-1]} classes but "
                         f"{len(class_names)} labels were given.")
    if test_images is None and not force:
        raise ValueError("No test images to verify the export on; pass force=True (--force) "
                         "to publish it unverified.")
    images = representative.images if representative is not None else None
    content = convert_image_model(model, quantization, image_size,
                                  representative_images=images, io_type=io_type,
                                  resize_in_model=resize_in_model)
    temp = make_temp_dir(out)
    try:
        Path(temp, MODEL_FILE).write_bytes(content)
        write_labels(temp, class_names)
        classifier = LiteClassifier(temp / MODEL_FILE)
        verification = None
        if test_images is not None:
            verification = verify(classifier, test_images, test_labels,
                                  _keras_probabilities(model, test_images), quantization)
        report = _report(spec.name, io_type, len(content), classifier, representative,
                         verification, backbone, class_names)
        Path(temp, REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
        if verification is not None and not verification.passed and not force:
            raise LiteVerificationError(
                f"The {quantization} model loses {verification.accuracy_drop_points:.2f} "
                f"accuracy points (bound {verification.max_accuracy_drop:.2f}): "
                f"{verification.summary()}. Nothing was published; --force publishes anyway."
            )
        publish_directory(temp, out)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    logger.info("Exported %s LiteRT model (%d bytes) to %s", quantization, len(content), out)
    return LiteExportResult(out, quantization, len(content), report, verification)


def _report(
    quantization: str, io_type: str, size: int, classifier: LiteClassifier,
    representative: RepresentativeSet | None, verification: LiteVerifyReport | None,
    backbone: str, class_names: Sequence[str],
) -> dict:
    runtime = interpreter_class()
    return {
        "model": MODEL_FILE,
        "labels": "labels.txt",
        "quantization": quantization,
        "int8_io_type": io_type if quantization == "int8" else None,
        "size_bytes": size,
        "classes": list(class_names),
        **io_description(classifier.input, classifier.output, backbone),
        "representative": representative.summary() if representative is not None else None,
        "verification": verification.to_dict() if verification is not None else None,
        "verified_with": f"{runtime.__module__}.{runtime.__name__}",
    }


# ---------------------------------------------------------------- from a run directory


def decoded_test_split(splits, config) -> tuple[np.ndarray, np.ndarray] | None:
    """The decoded test images (uint8 [N, S, S, 3]) and labels of a run's splits, or None."""
    batches = splits.batches("test", config.data)
    if batches is None:
        return None
    images, labels = [], []
    for x, y in batches.as_numpy_iterator():
        images.append(x)
        labels.append(y)
    return np.concatenate(images), np.concatenate(labels)


def export_run_tflite(
    run_dir: str | Path,
    out: str | Path | None = None,
    *,
    quantization: str = "dynamic",
    io_type: str = "uint8",
    representative_examples: int = DEFAULT_REPRESENTATIVE_EXAMPLES,
    force: bool = False,
    resize_in_model: bool = False,
) -> LiteExportResult:
    """Exports the model of a finished run (see `export_tflite`).

    The run's data are read again: calibration images from its training split
    (int8), verification on its test split. `out` defaults to RUN_DIR/tflite-MODE.
    """
    from tfxfer.data.sources import load_splits
    from tfxfer.image.model import image_size_for
    from tfxfer.rundir import load_run
    from tfxfer.tasks.outputs import read_outputs

    if read_outputs(run_dir) is not None:
        raise ValueError(f"{run_dir} is a task run (regression, multilabel or several outputs): "
                         "LiteRT export converts single-label classifiers only; export it as "
                         "a SavedModel (tfxfer.tasks.export.export_task_run).")
    spec = get_quantization(quantization)
    out = Path(out) if out else Path(run_dir, f"tflite-{quantization}")
    check_new_target(out)
    config, model, class_names = load_run(run_dir)
    if len(model.inputs[0].shape) != 4:
        raise unsupported_model_error(model)
    size = image_size_for(config.model)
    splits = load_splits(config.data, size)
    if splits.class_names != class_names:
        raise ValueError(f"The data at {config.data.source} now has classes "
                         f"{splits.class_names}, but the run was trained on {class_names}.")
    representative = None
    if spec.needs_representative:
        representative = collect_images(
            training_examples(splits, config.data.seed), size, representative_examples,
            source=f"train split of {config.data.source}",
        )
        if len(representative.images) == 0:
            raise LiteConversionError("No readable training image for calibration.")
    test = decoded_test_split(splits, config)
    if test is None:
        logger.warning("The run has no test split: the export is not verified.")
    return export_tflite(
        model, class_names, out, quantization=quantization, image_size=size,
        test_images=None if test is None else test[0],
        test_labels=None if test is None else test[1], representative=representative,
        io_type=io_type, force=force, resize_in_model=resize_in_model,
        backbone=config.model.section("image").backbone,
    )
