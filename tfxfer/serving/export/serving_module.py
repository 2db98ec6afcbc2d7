"""The `tf.Module` an export saves: the model's state and the serving signatures.

The exported graph takes raw inputs: decoding and resizing of image bytes
happen in the graph with the same `decode_image` the training pipeline uses,
and the model's own preprocessing follows. WAV bytes are decoded, made mono,
resampled and cut to the clip with `tfxfer.audio.decode.decode_wav_bytes`, the
training pipeline's decoder; the log-mel front end is inside the model.
Signature and output names are the contract of `tfxfer.serving.contract`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from tfxfer.data.pipeline import decode_image
from tfxfer.serving.contract import (
    CLASS_ID,
    CLASS_NAME,
    DEFAULT_MAX_AUDIO_SECONDS,
    DEFAULT_MAX_PIXELS,
    DEFAULT_SIGNATURE,
    INPUT_KEY,
    PIXELS_KEY,
    PIXELS_SIGNATURE,
    PROBABILITIES,
    TOP_K_CLASS_IDS,
    TOP_K_CLASS_NAMES,
    TOP_K_PROBABILITIES,
    WAVEFORM_KEY,
    WAVEFORM_SIGNATURE,
)
from tfxfer.serving.export.image_guard import within_pixel_budget
from tfxfer.serving.export.introspect import (
    export_modality,
    image_size_of,
    top_k_of,
    validate_classes,
)


def build_serving_module(
    model: keras.Model,
    class_names: Sequence[str],
    labels_file: str | Path,
    *,
    top_k: int | None = None,
    image_size: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_audio_seconds: float = DEFAULT_MAX_AUDIO_SECONDS,
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
        max_pixels: encoded images whose header declares more pixels are refused
            (INVALID_ARGUMENT) before decoding.
        max_audio_seconds: audio models: WAV bytes of more seconds are refused
            (INVALID_ARGUMENT), before decoding when the header is canonical.

    Returns:
        The module and its signatures by name.
    """
    modality = export_modality(model)
    validate_classes(model, class_names)
    k = top_k_of(top_k, len(class_names))
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
    if modality == "audio":
        return audio_signatures(module, model, classify, max_audio_seconds)

    size = image_size_of(model, image_size)
    input_dtype = keras.backend.standardize_dtype(model.inputs[0].dtype)
    module.serve_pixels = tf.function(
        _pixels_fn(classify, input_dtype),
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name=PIXELS_KEY)],
    )
    # The bytes signature decodes, then calls the pixels function: the model is traced once.
    module.serve = tf.function(_bytes_fn(module.serve_pixels, size, max_pixels),
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


def _bytes_fn(serve_pixels: Callable, size: int, max_pixels: int) -> Callable:
    image_spec = tf.TensorSpec([size, size, 3], tf.uint8)

    def decode(encoded):
        return decode_image(within_pixel_budget(encoded, max_pixels), size)

    def serve(inputs):
        images = tf.map_fn(decode, inputs,
                           fn_output_signature=image_spec)
        return serve_pixels(images)

    return serve


def audio_signatures(module: tf.Module, model: keras.Model, classify: Callable,
                     max_seconds: float) -> tuple[tf.Module, dict[str, Any]]:
    """`serving_default` (WAV bytes) and `serving_waveform` (float waveforms of one clip),
    both answering `classify(waveforms)` (a classifier's or a task model's outputs)."""
    from tfxfer.audio.decode import decode_wav_bytes
    from tfxfer.audio.guard import within_duration_budget
    from tfxfer.audio.model import audio_front_end

    if not max_seconds > 0:
        raise ValueError(f"max_audio_seconds must be > 0. Received: {max_seconds!r}")
    rate, samples = audio_front_end(model)
    module.serve_waveform = tf.function(
        classify, input_signature=[tf.TensorSpec([None, samples], tf.float32,
                                                 name=WAVEFORM_KEY)])

    def decode(encoded):
        return decode_wav_bytes(within_duration_budget(encoded, max_seconds), rate, samples,
                                max_seconds=max_seconds)

    def serve(inputs):
        waveforms = tf.map_fn(decode, inputs,
                              fn_output_signature=tf.TensorSpec([samples], tf.float32))
        return module.serve_waveform(waveforms)

    module.serve = tf.function(serve, input_signature=[tf.TensorSpec([None], tf.string,
                                                                      name=INPUT_KEY)])
    return module, {DEFAULT_SIGNATURE: module.serve.get_concrete_function(),
                    WAVEFORM_SIGNATURE: module.serve_waveform.get_concrete_function()}


def _pixels_fn(classify: Callable, input_dtype: str) -> Callable:
    def serve_pixels(images):
        return classify(tf.cast(images, input_dtype))

    return serve_pixels
