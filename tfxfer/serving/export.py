"""Exports a classifier as a SavedModel that TensorFlow Serving loads as it is.

    export_run(run_dir, base="saved_models", name="flowers")
        -> saved_models/flowers/<next version>/
             saved_model.pb     signatures (see tfxfer.serving.signatures)
             variables/         every weight once, no optimizer state
             assets/labels.txt  class names, looked up inside the graph
             assets.extra/tf_serving_warmup_requests

The exported graph takes raw inputs: decoding and resizing of image bytes
happen in the graph with the same `decode_image` the training pipeline uses,
and the model's own preprocessing follows. The modality comes from the model's
input: a string input is a text model, a rank-4 input an image model.

Before a version is published, the graph is scanned for ops TF Serving's binary
lacks (Python callbacks), the variables are checked to be written once, and,
with `verify=True`, a fresh process that imports only TensorFlow runs the export
against the Keras model. Only then is the temporary directory renamed into place.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from tfxfer.data.pipeline import decode_image
from tfxfer.serving import layout
from tfxfer.serving.samples import read_samples, run_samples
from tfxfer.serving.signatures import (
    CLASS_ID,
    CLASS_NAME,
    DEFAULT_SIGNATURE,
    DEFAULT_TOP_K,
    INPUT_KEY,
    LABELS_ASSET,
    PIXELS_KEY,
    PIXELS_SIGNATURE,
    PROBABILITIES,
    TOP_K_CLASS_IDS,
    TOP_K_CLASS_NAMES,
    TOP_K_PROBABILITIES,
)
from tfxfer.serving.verify import VerifyReport, verify_export
from tfxfer.serving.warmup import write_warmup

logger = logging.getLogger(__name__)

RESIZE_LAYER = "resize"

# Ops whose kernels live in the Python runtime: TF Serving's C++ binary cannot run them.
PYTHON_OPS = {
    "PyFunc": "tf.numpy_function / tf.compat.v1.py_func",
    "PyFuncStateless": "tf.numpy_function / tf.compat.v1.py_func (stateless)",
    "EagerPyFunc": "tf.py_function",
}

# variables/ may exceed the weights by this factor plus a fixed allowance for the
# checkpoint index and small non-weight state (seed generators, counters).
SIZE_FACTOR = 1.1
SIZE_ALLOWANCE = 64 * 1024


class ExportError(ValueError):
    """The model cannot be exported as TF Serving needs it, or the export failed a check."""


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


# ---------------------------------------------------------------- the model


def modality_of(model: keras.Model) -> str:
    """"text" for a model with one string input, "image" for one rank-4 image input."""
    if len(model.inputs) != 1:
        raise ExportError(
            f"Only single-input models can be exported. Received {len(model.inputs)} inputs: "
            f"{[t.name for t in model.inputs]}"
        )
    spec = model.inputs[0]
    dtype = keras.backend.standardize_dtype(spec.dtype)
    if dtype == "string" and len(spec.shape) in (1, 2) and spec.shape[1:] in ((), (1,)):
        return "text"
    if len(spec.shape) == 4 and spec.shape[-1] == 3 and dtype != "string":
        return "image"
    raise ExportError(
        "Cannot tell the model's modality: expected a [batch] or [batch, 1] string input "
        f"(text) or a [batch, H, W, 3] image input. Received: dtype={dtype}, "
        f"shape={tuple(spec.shape)}"
    )


def image_size_of(model: keras.Model, image_size: int | None = None) -> int:
    """The side images are decoded to: given, the model's "resize" layer, or its input."""
    if image_size:
        return int(image_size)
    try:
        layer = model.get_layer(RESIZE_LAYER)
    except ValueError:
        layer = None
    if isinstance(layer, keras.layers.Resizing):
        if layer.height != layer.width:
            raise ExportError(f"Square images expected; the resize layer gives "
                              f"{layer.height}x{layer.width}.")
        return int(layer.height)
    height, width = model.inputs[0].shape[1:3]
    if height and height == width:
        return int(height)
    raise ExportError(
        "Cannot tell the image size: the model has no square 'resize' layer and no static "
        "square input; pass image_size."
    )


def _validate_classes(model: keras.Model, class_names: Sequence[str]) -> None:
    width = model.outputs[0].shape[-1]
    if width != len(class_names):
        raise ExportError(
            f"The model predicts {width} classes but {len(class_names)} labels were given."
        )
    bad = [n for n in class_names if not n or "\n" in n or "\r" in n]
    if bad:
        raise ExportError(f"Labels must be non-empty single lines. Received: {bad}")


def _top_k(top_k: int | None, num_classes: int) -> int:
    k = min(DEFAULT_TOP_K, num_classes) if top_k is None else int(top_k)
    if not 1 <= k <= num_classes:
        raise ExportError(f"top_k must be in [1, {num_classes}]. Received: top_k={top_k}")
    return k


def weights_bytes(model: keras.Model) -> int:
    """Bytes of the model's weights (each variable counted once)."""
    unique = {id(v): v for v in model.weights}.values()
    return sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in unique)


# ---------------------------------------------------------------- the serving module


def build_serving_module(
    model: keras.Model,
    class_names: Sequence[str],
    labels_file: str | Path,
    *,
    top_k: int | None = None,
    image_size: int | None = None,
) -> tuple[tf.Module, dict[str, tf.types.experimental.ConcreteFunction]]:
    """A `tf.Module` around `model` with serving signatures, ready for `tf.saved_model.save`.

    The module tracks what `serving_state` finds, never the model object: a model
    reloaded from `.keras` carries its optimizer and compiled metrics, whose
    variables would otherwise be exported too (Adam: 3x the weights).

    Args:
        model: a single-input classifier whose output is class probabilities.
        class_names: the labels, in class-id order; written to `labels_file`.
        labels_file: where to write the labels; the SavedModel copies it into assets/.
        top_k: how many best classes to return (default min(5, classes)).
        image_size: side to decode images to (default: from the model).

    Returns:
        The module and its signatures by name.
    """
    modality = modality_of(model)
    _validate_classes(model, class_names)
    k = _top_k(top_k, len(class_names))
    Path(labels_file).write_text("".join(f"{n}\n" for n in class_names))

    module = tf.Module(name="tfxfer_serving")
    module.model_variables, module.model_objects = serving_state(model)
    module.labels = tf.lookup.StaticHashTable(
        tf.lookup.TextFileInitializer(
            str(labels_file), tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER,
            tf.string, tf.lookup.TextFileIndex.WHOLE_LINE, vocab_size=len(class_names),
        ),
        default_value="",
    )
    classify = _classifier(model, module.labels, k)
    string_spec = tf.TensorSpec([None], tf.string, name=INPUT_KEY)
    if modality == "text":
        module.serve = tf.function(_text_fn(model, classify), input_signature=[string_spec])
        return module, {DEFAULT_SIGNATURE: module.serve.get_concrete_function()}

    size = image_size_of(model, image_size)
    input_dtype = keras.backend.standardize_dtype(model.inputs[0].dtype)
    module.serve_pixels = tf.function(
        _pixels_fn(classify, input_dtype),
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name=PIXELS_KEY)],
    )
    # The bytes signature decodes, then calls the pixels function: the model is traced once.
    module.serve = tf.function(_bytes_fn(module.serve_pixels, size),
                               input_signature=[string_spec])
    return module, {
        DEFAULT_SIGNATURE: module.serve.get_concrete_function(),
        PIXELS_SIGNATURE: module.serve_pixels.get_concrete_function(),
    }


def _backing(variable):
    """The `tf.Variable` behind a Keras variable (a Keras variable wraps one)."""
    return variable.value if isinstance(variable, keras.Variable) else variable


def serving_state(model: keras.Model) -> tuple[list[tf.Variable], list[Any]]:
    """What a SavedModel of `model` must track, each tensor once.

    Returns the `tf.Variable`s behind all of the model's variables (weights and
    non-weight state such as the seed generators of augmentation layers, which
    layers do not track), deduplicated, and the non-Keras objects the layers hold
    (lookup tables, assets, loaded TF-Hub modules), found by walking the layers'
    SavedModel children. Keras variables met on the walk are replaced by their
    `tf.Variable`: a layer that keeps both a Keras variable and the variable it
    wraps (as a layer around a TF-Hub module does) would otherwise have the same
    tensor written twice. The model object itself is never tracked, so neither
    are its optimizer and metrics.
    """
    variables: dict[int, tf.Variable] = {}
    objects: dict[int, Any] = {}
    visited: set[int] = set()

    def add_variable(variable) -> None:
        backing = _backing(variable)
        variables.setdefault(id(backing), backing)

    def visit(obj) -> None:
        if id(obj) in visited:
            return
        visited.add(id(obj))
        for child in tf.train.TrackableView.children(obj, save_type="savedmodel").values():
            if isinstance(child, (keras.Variable, tf.Variable)):
                add_variable(child)
            elif isinstance(child, (keras.layers.Layer, list, tuple, Mapping)):
                visit(child)
            else:
                objects.setdefault(id(child), child)

    for variable in model.variables:
        add_variable(variable)
    for layer in model.layers:
        visit(layer)
    return list(variables.values()), list(objects.values())


def _classifier(model: keras.Model, labels: tf.lookup.StaticHashTable, k: int) -> Callable:
    def classify(x):
        probabilities = tf.cast(model(x, training=False), tf.float32)
        class_id = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
        top_probabilities, top_ids = tf.math.top_k(probabilities, k=k)
        top_ids = tf.cast(top_ids, tf.int64)
        return {
            PROBABILITIES: probabilities,
            CLASS_ID: class_id,
            CLASS_NAME: labels.lookup(class_id),
            TOP_K_CLASS_IDS: top_ids,
            TOP_K_CLASS_NAMES: labels.lookup(top_ids),
            TOP_K_PROBABILITIES: top_probabilities,
        }

    return classify


def _text_fn(model: keras.Model, classify: Callable) -> Callable:
    expand = len(model.inputs[0].shape) == 2

    def serve(inputs):
        return classify(tf.expand_dims(inputs, -1) if expand else inputs)

    return serve


def _bytes_fn(serve_pixels: Callable, size: int) -> Callable:
    image_spec = tf.TensorSpec([size, size, 3], tf.uint8)

    def serve(inputs):
        images = tf.map_fn(lambda encoded: decode_image(encoded, size), inputs,
                           fn_output_signature=image_spec)
        return serve_pixels(images)

    return serve


def _pixels_fn(classify: Callable, input_dtype: str) -> Callable:
    def serve_pixels(images):
        return classify(tf.cast(images, input_dtype))

    return serve_pixels


# ---------------------------------------------------------------- checks


def graph_ops(saved_model_dir: str | Path) -> dict[str, set[str]]:
    """Every op type in a SavedModel's graph and function library -> where it appears."""
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString(Path(saved_model_dir, "saved_model.pb").read_bytes())
    ops: dict[str, set[str]] = {}
    for meta_graph in saved.meta_graphs:
        for node in meta_graph.graph_def.node:
            ops.setdefault(node.op, set()).add("graph")
        for function in meta_graph.graph_def.library.function:
            for node in function.node_def:
                ops.setdefault(node.op, set()).add(function.signature.name)
    return ops


def check_ops(saved_model_dir: str | Path) -> None:
    """Raises ExportError naming any op TF Serving's binary cannot run."""
    found = graph_ops(saved_model_dir)
    bad = sorted(set(found) & set(PYTHON_OPS))
    if bad:
        details = "; ".join(
            f"{op} (from {PYTHON_OPS[op]}) in {', '.join(sorted(found[op]))}" for op in bad
        )
        raise ExportError(
            f"The exported graph uses ops that TF Serving cannot run: {details}. Replace "
            "the Python callback with TensorFlow ops."
        )


def directory_bytes(path: str | Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def check_variables_size(saved_model_dir: str | Path, expected_bytes: int) -> int:
    """Raises ExportError when variables/ holds clearly more than the weights (written twice).

    Returns:
        The size of variables/ in bytes.
    """
    written = directory_bytes(Path(saved_model_dir, "variables"))
    limit = SIZE_FACTOR * expected_bytes + SIZE_ALLOWANCE
    if written > limit:
        raise ExportError(
            f"variables/ holds {written / 1e6:.2f} MB for {expected_bytes / 1e6:.2f} MB of "
            "weights: variables were written more than once (or optimizer state was exported)."
        )
    return written


# ---------------------------------------------------------------- export


def _save(
    model: keras.Model, class_names: Sequence[str], out: Path, top_k: int,
    image_size: int | None,
) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="tfxfer-labels-") as scratch:
        module, signatures = build_serving_module(
            model, class_names, Path(scratch, LABELS_ASSET), top_k=top_k, image_size=image_size
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
    samples: Sequence[bytes | str] = (),
    warmup: bool = True,
    verify: bool = False,
) -> ExportResult:
    """Exports `model` to BASE/NAME/VERSION for TF Serving, atomically.

    Args:
        model: a single-input Keras classifier (uint8 images or strings in,
            probabilities out).
        class_names: labels in class-id order.
        base: the base directory of all exported models.
        name: the model name (a subdirectory of `base`).
        version: the version number; None takes the next free one. An existing
            version is an error and is never overwritten.
        top_k: how many best classes the signatures return (default min(5, C)).
        image_size: side images are decoded to (default: from the model).
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
    modality = modality_of(model)
    _validate_classes(model, class_names)
    size = image_size_of(model, image_size) if modality == "image" else None
    k = _top_k(top_k, len(class_names))
    if (warmup or verify) and not samples:
        raise ExportError("Warmup and verification need example inputs (samples).")

    layout.remove_stale_temp_dirs(target_dir)
    temp = layout.make_temp_dir(target_dir)
    try:
        signatures = _save(model, class_names, temp, k, size)
        check_ops(temp)
        expected = weights_bytes(model)
        written = check_variables_size(temp, expected)
        records = write_warmup(temp, samples, name) if warmup else 0
        report = None
        if verify:
            report = verify_export(temp, model, class_names, samples, modality=modality,
                                   image_size=size, top_k=k)
        chosen, path = _publish(temp, target_dir, version)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    logger.info("Exported %s version %d (%s) to %s", name, chosen, ", ".join(signatures), path)
    if report is not None:
        report.saved_model = path
    return ExportResult(path, chosen, modality, list(class_names), signatures, written,
                        expected, records, report)


def _publish(temp: Path, target_dir: Path, version: int | None) -> tuple[int, Path]:
    """Publishes as `version`, or as the next free version (retried if a concurrent
    export takes it first)."""
    if version is not None:
        return version, layout.publish(temp, target_dir, version)
    for _ in range(100):
        chosen = layout.next_version(target_dir)
        try:
            return chosen, layout.publish(temp, target_dir, chosen)
        except FileExistsError:
            logger.info("Version %d was taken meanwhile; trying the next one.", chosen)
    raise ExportError(f"Could not find a free version under {target_dir}.")


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
    otherwise the run's own image files or a few sentences (`tfxfer.serving.samples`).
    """
    from tfxfer.models import image_size_for
    from tfxfer.rundir import load_run

    config, model, class_names = load_run(run_dir)
    modality = modality_of(model)
    samples = (read_samples(sample_files, modality) if sample_files
               else run_samples(run_dir, modality))
    if modality == "image" and kwargs.get("image_size") is None:
        kwargs["image_size"] = image_size_for(config.model)
    return export_model(model, class_names, base, name, samples=samples, **kwargs)
