"""Converts a tfxfer classifier into a LiteRT (TFLite) flatbuffer.

The on-device model takes what a phone camera gives after the app has scaled
the picture to the model's side S (resizing is the app's job, like cropping):

    none / float16 / dynamic   uint8 [1, S, S, 3] RGB  -> float32 [1, C] probabilities
    int8                       uint8 (or int8) [1, S, S, 3] -> uint8 (int8) [1, C], scale 1/256
                               zero point 0 (-128); input scale and zero point are
                               calibrated: 1 and 0 (-128) when the calibration
                               images span 0-255, as photos do

The backbone's own preprocessing stays inside the model. The Keras model's
`resize` layer is left out (it would resize S x S to S x S); with
`resize_in_model=True` it is kept and the input takes any height and width
(see docs/litert.md for how that converts and runs).

Models the converter cannot express with LiteRT's builtin ops (text models:
string ops for tokenization and vocabulary lookup) raise `LiteConversionError`
naming the ops and the layers that need them.
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from collections.abc import Callable, Iterable

import keras
import numpy as np
import tensorflow as tf

from tfxfer.lite.quantization import get_quantization, validate_io_type
from tfxfer.utils import keras_compat

logger = logging.getLogger(__name__)

# What a failed conversion raises (private to TensorFlow; see keras_compat).
ConverterError = keras_compat.lite_converter_error()

RESIZE_LAYER = "resize"
_OP_PATTERN = re.compile(r"'(tf\.\w+)' op is neither a custom op nor a flex op")
# Reported with the missing ops, but a graph input (e.g. a lookup table's handle), not an op.
_NOT_OPS = {"tf.Placeholder"}


class LiteConversionError(ValueError):
    """The model cannot be converted to a LiteRT model with builtin ops."""


def _is_image_model(model: keras.Model) -> bool:
    spec = model.inputs[0]
    dtype = keras.backend.standardize_dtype(spec.dtype)
    return len(model.inputs) == 1 and len(spec.shape) == 4 and dtype != "string"


def _body(model: keras.Model, resize_in_model: bool) -> keras.Model:
    """The part of `model` that runs on the device: after its resize layer when it has one."""
    if resize_in_model:
        return model
    try:
        resize = model.get_layer(RESIZE_LAYER)
    except ValueError:
        return model
    return keras.Model(resize.output, model.output, name=f"{model.name}_on_device")


def device_function(
    model: keras.Model, image_size: int, *, float_input: bool = False,
    resize_in_model: bool = False,
) -> tf.types.experimental.ConcreteFunction:
    """The traced function the converter sees: one image in, probabilities out.

    Args:
        model: a tfxfer image classifier (uint8 images in, probabilities out).
        image_size: the side S of the square input.
        float_input: take float32 pixel values (0-255) instead of uint8; the
            full-integer converter turns this input into quantized uint8/int8.
        resize_in_model: keep the model's resize layer and take any H x W.

    Returns:
        A concrete function of one [1, S, S, 3] (or [1, None, None, 3]) tensor.
    """
    if not _is_image_model(model):
        raise LiteConversionError("device_function takes a single-input image model.")
    body = _body(model, resize_in_model)
    body_dtype = keras.backend.standardize_dtype(body.inputs[0].dtype)
    side = None if resize_in_model else image_size
    spec = tf.TensorSpec([1, side, side, 3], tf.float32 if float_input else tf.uint8,
                         name="image")

    def serve(image):
        return tf.cast(body(tf.cast(image, body_dtype), training=False), tf.float32)

    return tf.function(serve, input_signature=[spec]).get_concrete_function()


class _TrackableNotice(logging.Filter):
    """Drops the converter's advice to pass a trackable object (see `_converter` for why not)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "providing the trackable_obj argument" not in record.getMessage()


@contextlib.contextmanager
def _quiet_converter():
    """Silences two converter messages that do not apply to tfxfer's use of it."""
    notice = _TrackableNotice()
    absl_logger = logging.getLogger("absl")
    absl_logger.addFilter(notice)
    try:
        with warnings.catch_warnings():
            # Full-integer: warned before the converter calibrates the input statistics itself.
            warnings.filterwarnings("ignore", "Statistics for quantized inputs were expected")
            yield
    finally:
        absl_logger.removeFilter(notice)


def _converter(
    function, quantization: str,
    representative: Callable[[], Iterable[list[np.ndarray]]] | None, io_type: str,
) -> tf.lite.TFLiteConverter:
    # Without a trackable object the converter freezes every variable; with the model
    # passed, it may keep some as resource variables (READ_VARIABLE ops, unfused Dense
    # layers, and a calibration that fails to run).
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function])
    if quantization == "none":
        return converter
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "int8":
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.as_dtype(io_type)
        converter.inference_output_type = tf.as_dtype(io_type)
    return converter


def representative_dataset(images: np.ndarray) -> Callable[[], Iterable[list[np.ndarray]]]:
    """The converter's calibration generator over uint8 images [N, S, S, 3]."""
    if len(images) == 0:
        raise LiteConversionError("Full-integer quantization needs representative images; "
                                  "none were given.")

    def generate():
        for image in images:
            yield [image[None].astype(np.float32)]

    return generate


def convert_image_model(
    model: keras.Model,
    quantization: str,
    image_size: int,
    *,
    representative_images: np.ndarray | None = None,
    io_type: str = "uint8",
    resize_in_model: bool = False,
) -> bytes:
    """Converts a tfxfer image classifier to a LiteRT flatbuffer.

    Args:
        model: uint8 images in, probabilities out (a tfxfer image model, or any
            Keras model of that form).
        quantization: "none", "float16", "dynamic" or "int8".
        image_size: the side S of the square input the app sends.
        representative_images: uint8 [N, S, S, 3] calibration images (int8 only).
        io_type: "uint8" or "int8": input and output type of an int8 model.
        resize_in_model: keep the model's resize layer (any input size).

    Returns:
        The .tflite file's bytes.
    """
    spec = get_quantization(quantization)
    validate_io_type(io_type)
    if spec.needs_representative and resize_in_model:
        raise LiteConversionError("resize_in_model is not supported with int8: the full-"
                                  "integer model needs a fixed input size.")
    if not _is_image_model(model):
        raise unsupported_model_error(model)
    representative = None
    if spec.needs_representative:
        if representative_images is None:
            raise LiteConversionError("int8 quantization needs representative_images.")
        representative = representative_dataset(representative_images)
    function = device_function(model, image_size, float_input=spec.needs_representative,
                               resize_in_model=resize_in_model)
    converter = _converter(function, quantization, representative, io_type)
    try:
        with _quiet_converter():
            return converter.convert()
    except ConverterError as err:
        raise LiteConversionError(
            f"The LiteRT converter failed on {model.name} ({quantization}): "
            f"{', '.join(unsupported_ops(err)) or str(err)[:500]}"
        ) from err


# ---------------------------------------------------------------- unsupported models


def unsupported_ops(error: ConverterError) -> list[str]:
    """The TensorFlow op names a ConverterError reports as missing from LiteRT."""
    names = {e.operator.name for e in getattr(error, "errors", ()) if e.operator.name}
    names.update(_OP_PATTERN.findall(str(error)))
    return sorted(names - _NOT_OPS)


def _model_function(model: keras.Model):
    spec = model.inputs[0]
    dtype = tf.as_dtype(keras.backend.standardize_dtype(spec.dtype))
    shape = [1, *spec.shape[1:]]
    return tf.function(lambda x: model(x, training=False),
                       input_signature=[tf.TensorSpec(shape, dtype)]).get_concrete_function()


def _try_convert(model: keras.Model) -> list[str] | None:
    """None when `model` converts with builtin ops, else the missing op names (may be empty).

    A part of a model cut after a string layer may not even trace (its symbolic input
    claims float32 where strings flow): that part does not convert either.
    """
    try:
        function = _model_function(model)
    except (ValueError, TypeError):
        return []
    try:
        with _quiet_converter():
            tf.lite.TFLiteConverter.from_concrete_functions([function]).convert()
    except ConverterError as err:
        return unsupported_ops(err) or [str(err).splitlines()[0][:200]]
    return None


def unsupported_model_error(model: keras.Model) -> LiteConversionError:
    """Explains which ops and layers of a (text) model cannot go on-device.

    The whole model is converted with builtin ops only; when that fails, the
    model is cut after each layer in turn, and the first remainder that converts
    tells where the on-device part could begin. A keras-hub transformer encoder
    among the blocked layers is looked into: its tokenizer needs the string ops,
    and its transformer (token ids in) is converted alone to say whether it could
    run on the device.
    """
    missing = _try_convert(model)
    if missing is None:
        return LiteConversionError(
            f"{model.name} converts, but tfxfer exports only image models (one [batch, H, W, 3] "
            "input) to LiteRT."
        )
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    blocked, first_ok, shape = [la.name for la in layers], None, None
    for index, layer in enumerate(layers[:-1]):
        rest = keras.Model(layer.output, model.output)
        if _try_convert(rest) is None:
            blocked = [la.name for la in layers[:index + 1]]
            first_ok, shape = layers[index + 1].name, layer.output.shape
            break
    text = _message(model, missing, blocked, first_ok, shape)
    for name in blocked:
        if _is_transformer_encoder(model.get_layer(name)):
            text += " " + _transformer_note(model.get_layer(name))
    return LiteConversionError(text)


def _is_transformer_encoder(layer: keras.layers.Layer) -> bool:
    return hasattr(layer, "transformer") and hasattr(layer, "preprocessor")


def _transformer_inputs(encoder) -> dict[str, tf.TensorSpec]:
    length = encoder.sequence_length
    return {name: tf.TensorSpec([1, length], tf.int32, name=name)
            for name in sorted(encoder.transformer.input)}


def _transformer_note(encoder) -> str:
    """Which part of a transformer encoder layer could go on-device."""
    inputs = _transformer_inputs(encoder)
    function = tf.function(
        lambda features: encoder.transformer(features, training=False),
        input_signature=[inputs],
    ).get_concrete_function()
    try:
        with _quiet_converter():
            tf.lite.TFLiteConverter.from_concrete_functions([function]).convert()
        converts = "converts with builtin ops"
    except ConverterError as err:
        ops = unsupported_ops(err)
        converts = f"does not convert either ({', '.join(ops) or str(err).splitlines()[0]})"
    described = ", ".join(f"{name} int32 [1, {encoder.sequence_length}]" for name in inputs)
    return (
        f"Inside {encoder.name!r} (a keras-hub transformer encoder), the string ops are its "
        f"preprocessor {encoder.preprocessor.name!r} (tokenizer and [CLS]/[SEP] packing), "
        f"which cannot go on-device; its transformer {encoder.transformer.name!r} ({described} "
        f"in) {converts}: an app would have to tokenize the text itself with the same "
        "vocabulary and pool the transformer's output as the encoder does."
    )


def _split_ops(missing: list[str]) -> tuple[list[str], list[str]]:
    """(TF Text ops, TensorFlow ops) among `missing`: TF Text's are not in tf.raw_ops."""
    text = [op for op in missing
            if op.startswith("tf.TFText>") or not hasattr(tf.raw_ops, op.removeprefix("tf."))]
    return text, [op for op in missing if op not in text]


def _message(model, missing, blocked, first_ok, shape) -> str:
    text_ops, tf_ops = _split_ops(missing)
    kinds = []
    if text_ops:
        kinds.append(f"TF Text ops (tensorflow_text's library): {', '.join(text_ops)}")
    if tf_ops:
        kinds.append(f"TensorFlow string/ragged ops: {', '.join(tf_ops)}")
    text = (
        f"Cannot export {model.name} to LiteRT: its graph needs ops that LiteRT's builtin op "
        f"set lacks: {'; '.join(kinds)}. They come from layer(s) "
        f"{', '.join(repr(n) for n in blocked)} (text cleanup, tokenization and vocabulary "
        "lookup on strings), which cannot go on-device."
    )
    if first_ok:
        text += (
            f" The rest of the model, from layer {first_ok!r} on (input: float32 "
            f"{tuple(shape)}), converts: compute the text features in the app or on a "
            "server and run only that part on the device."
        )
    return text
