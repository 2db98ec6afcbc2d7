"""Export and prediction of a task run: raw inputs in, every output's answer out.

`export_task_run` writes a SavedModel for TF Serving (and `tfxfer serve`), published
atomically like a classifier's (`tfxfer.serving.export.layout`). `serving_default`
takes one `[None]` string tensor `inputs` (encoded image bytes, WAV bytes or raw text)
and returns, per output NAME:

    regression      NAME_value           [None]     float32  in the target's units
    classification  NAME_probabilities   [None, C]  float32
                    NAME_class_id        [None]     int64
                    NAME_class_name      [None]     string
    multilabel      NAME_probabilities   [None, T]  float32  one sigmoid per tag
                    NAME_above_threshold [None, T]  bool     at the thresholds chosen on
                                                             validation
                    NAME_labels          [None]     string   the tags above threshold,
                                                             joined by the tag delimiter

Image exports also have `serving_pixels` (a `[None, H, W, 3]` uint8 batch `images`),
audio exports `serving_waveform` (a `[None, clip samples]` float32 batch `waveforms` at
the model's rate); WAV inputs longer than `max_audio_seconds` are refused, as a
classifier's are.
Class and tag names and thresholds are constants of the graph. `predict_task_run`
answers the same from the run's Keras model, in Python.
LiteRT conversion of task runs is refused (`tfxfer.lite` converts classifiers).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import tfxfer.tasks.model  # noqa: F401  (registers the task layers and losses for loading)
from tfxfer.data.pipeline import decode_image
from tfxfer.serving.contract import (
    DEFAULT_MAX_AUDIO_SECONDS,
    DEFAULT_MAX_PIXELS,
    DEFAULT_SIGNATURE,
    INPUT_KEY,
    PIXELS_KEY,
    PIXELS_SIGNATURE,
)
from tfxfer.serving.export import layout
from tfxfer.serving.export.checks import check_ops
from tfxfer.serving.export.errors import ExportError
from tfxfer.serving.export.image_guard import within_pixel_budget
from tfxfer.serving.export.introspect import export_modality, image_size_of
from tfxfer.serving.export.serving_module import audio_signatures, serving_state
from tfxfer.serving.export.verify import model_batch
from tfxfer.tasks.losses import CLASSIFICATION, MULTILABEL, REGRESSION, distribution_point
from tfxfer.tasks.outputs import DEFAULT_THRESHOLD, Output, read_outputs

logger = logging.getLogger(__name__)


@dataclass
class TaskExportResult:
    """What `export_task_run` wrote.

    Attributes:
        path: the published version directory BASE/NAME/VERSION.
        version: its integer version.
        modality: "image", "text" or "audio".
        outputs: the run's outputs.
        signatures: names of the exported signatures.
        output_keys: the keys `serving_default` returns.
        verified: the reloaded SavedModel answered the samples as the Keras model did.
    """

    path: Path
    version: int
    modality: str
    outputs: list[Output]
    signatures: list[str]
    output_keys: list[str]
    verified: bool


def answer(outputs: Sequence[Output], predictions: dict, delimiter: str = "|") -> dict:
    """The exported answers from a model's raw predictions (tensors), per output."""
    result = {}
    for output in outputs:
        p = tf.cast(predictions[output.name], tf.float32)
        n = output.name
        if output.distribution:  # the median or mean of the distribution over its values
            result[f"{n}_value"] = distribution_point(output.values, p, output.answer)
        elif output.task == REGRESSION:
            result[f"{n}_value"] = tf.reshape(p, [-1])
        elif output.task == CLASSIFICATION:
            class_id = tf.argmax(p, axis=-1, output_type=tf.int64)
            result[f"{n}_probabilities"] = p
            result[f"{n}_class_id"] = class_id
            result[f"{n}_class_name"] = tf.gather(tf.constant(output.names), class_id)
        else:
            thresholds = output.thresholds or [DEFAULT_THRESHOLD] * len(output.names)
            above = p >= tf.constant(thresholds, tf.float32)
            names = tf.broadcast_to(tf.constant(output.names), tf.shape(above))
            chosen = tf.ragged.boolean_mask(names, above)
            result[f"{n}_probabilities"] = p
            result[f"{n}_above_threshold"] = above
            result[f"{n}_labels"] = tf.strings.reduce_join(chosen, axis=-1, separator=delimiter)
    return result


def _module(model: keras.Model, outputs: list[Output], delimiter: str, image_size: int | None,
            max_pixels: int, max_audio_seconds: float) -> tuple[tf.Module, dict]:
    module = tf.Module(name="tfxfer_task_serving")
    module.model_variables, module.model_objects = serving_state(model)
    string_spec = tf.TensorSpec([None], tf.string, name=INPUT_KEY)

    def respond(x):
        return answer(outputs, model(x, training=False), delimiter)

    modality = export_modality(model)
    if modality == "text":
        expand = len(model.inputs[0].shape) == 2
        module.serve = tf.function(
            lambda inputs: respond(tf.expand_dims(inputs, -1) if expand else inputs),
            input_signature=[string_spec])
        return module, {DEFAULT_SIGNATURE: module.serve.get_concrete_function()}
    if modality == "audio":
        return audio_signatures(module, model, respond, max_audio_seconds)
    dtype = keras.backend.standardize_dtype(model.inputs[0].dtype)
    module.serve_pixels = tf.function(
        lambda images: respond(tf.cast(images, dtype)),
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name=PIXELS_KEY)])
    image_spec = tf.TensorSpec([image_size, image_size, 3], tf.uint8)

    def serve(inputs):
        images = tf.map_fn(lambda e: decode_image(within_pixel_budget(e, max_pixels), image_size),
                           inputs, fn_output_signature=image_spec)
        return module.serve_pixels(images)

    module.serve = tf.function(serve, input_signature=[string_spec])
    return module, {DEFAULT_SIGNATURE: module.serve.get_concrete_function(),
                    PIXELS_SIGNATURE: module.serve_pixels.get_concrete_function()}


def load_task_run(run_dir: str | Path):
    """(config, Keras model, outputs) of a task run; an error when it is not one."""
    from tfxfer.rundir import load_run

    outputs = read_outputs(run_dir)
    if outputs is None:
        raise ValueError(f"{run_dir} is not a task run (no outputs.json).")
    config, model, _ = load_run(run_dir)
    return config, model, outputs


def _samples(run_dir: Path, modality: str) -> list[bytes | str]:
    from tfxfer.serving.export.samples import run_samples

    return run_samples(run_dir, modality)


def _verify(path: Path, model: keras.Model, outputs: list[Output], delimiter: str,
            samples: list[bytes | str], image_size: int | None) -> None:
    """Reloads the export and compares its answers on `samples` with the Keras model's."""
    loaded = tf.saved_model.load(str(path))
    got = loaded.signatures[DEFAULT_SIGNATURE](**{INPUT_KEY: tf.constant(samples)})
    batch = model_batch(model, samples, image_size, export_modality(model))
    want = answer(outputs, model(batch, training=False), delimiter)
    for key, value in want.items():
        a, b = np.asarray(value), got[key].numpy()
        same = (np.allclose(a, b, atol=1e-4) if a.dtype.kind == "f"
                else np.array_equal(a, b))
        if not same:
            raise ExportError(f"The export's {key} differs from the Keras model's on the "
                              f"samples: {b!r} vs {a!r}")


def export_task_run(run_dir: str | Path, base: str | Path, name: str, *,
                    version: int | None = None, verify: bool = True,
                    max_pixels: int = DEFAULT_MAX_PIXELS,
                    max_audio_seconds: float = DEFAULT_MAX_AUDIO_SECONDS,
                    samples: Sequence[bytes | str] = ()) -> TaskExportResult:
    """Exports a task run to BASE/NAME/VERSION (see the module docstring), atomically.

    Args:
        run_dir: a finished task run (outputs.json, model.keras).
        base: the base directory of exported models.
        name: the model name.
        version: the version; None takes the next free one (never overwrites).
        verify: reload the export and compare it with the Keras model on `samples`.
        max_pixels: image inputs declaring more pixels are refused before decoding.
        max_audio_seconds: WAV inputs of more seconds are refused.
        samples: example inputs for the check (default: the run's files or sentences).

    Returns:
        A TaskExportResult.
    """
    config, model, outputs = load_task_run(run_dir)
    modality = export_modality(model)
    size = image_size_of(model, config.model.image_input_size) if modality == "image" else None
    delimiter = config.data.tag_delimiter
    target_dir = layout.model_dir(base, name)
    if version is not None:
        layout.check_new_version(target_dir, version)
    samples = list(samples) or _samples(Path(run_dir), modality)
    layout.remove_stale_temp_dirs(target_dir)
    temp = layout.make_temp_dir(target_dir)
    try:
        module, signatures = _module(model, outputs, delimiter, size, max_pixels,
                                     max_audio_seconds)
        tf.saved_model.save(module, str(temp), signatures=signatures)
        check_ops(temp)
        if verify:
            _verify(temp, model, outputs, delimiter, samples, size)
        keys = sorted(signatures[DEFAULT_SIGNATURE].structured_outputs)
        if version is None:
            version, path = layout.publish_next(temp, target_dir)
        else:
            path = layout.publish(temp, target_dir, version)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    logger.info("Exported task model %s version %d (%s) to %s", name, version,
                ", ".join(keys), path)
    return TaskExportResult(path, version, modality, outputs, sorted(signatures), keys, verify)


def predict_task_run(run_dir: str | Path, inputs: Sequence[bytes | str]) -> list[dict]:
    """Every output's answer for raw `inputs` (texts, encoded images or WAV bytes), from
    model.keras.

    Returns:
        One dict per input: output name -> value (regression), class name
        (classification) or the list of tags above threshold (multilabel), plus
        NAME_probabilities for the last two.
    """
    config, model, outputs = load_task_run(run_dir)
    modality = export_modality(model)
    size = image_size_of(model, config.model.image_input_size) if modality == "image" else None
    x = model_batch(model, inputs, size, modality)
    answers = {k: v.numpy() for k, v in answer(outputs, model(x, training=False),
                                               config.data.tag_delimiter).items()}
    rows = []
    for i in range(len(inputs)):
        row = {}
        for o in outputs:
            if o.task == REGRESSION:
                row[o.name] = float(answers[f"{o.name}_value"][i])
                continue
            row[f"{o.name}_probabilities"] = answers[f"{o.name}_probabilities"][i].tolist()
            if o.task == CLASSIFICATION:
                row[o.name] = answers[f"{o.name}_class_name"][i].decode()
            elif o.task == MULTILABEL:
                row[o.name] = [t for t, a in zip(o.names, answers[f"{o.name}_above_threshold"][i])
                               if a]
        rows.append(row)
    return rows
