"""Running a signature of a loaded SavedModel, as TF Serving's Predict does.

One path for every transport: the REST handler passes arrays parsed from JSON,
the gRPC handler and the warmup replay pass a `PredictRequest`. Inputs are
checked against the SignatureDef (names, dtypes, shapes) before the graph runs;
errors raised by the graph (e.g. `DecodeImage` on bytes that are not an image)
keep their TensorFlow status code, so they reach the client as 400 /
INVALID_ARGUMENT with TensorFlow's message.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2

from tfxfer.serving.contract import DEFAULT_SIGNATURE, read_warmup, warmup_path
from tfxfer.serving.server.errors import (
    Code,
    ServingError,
    check_tensor_shape,
    invalid_argument,
)
from tfxfer.serving.server.json_tensor import dtype_name
from tfxfer.serving.server.servable import Servable

logger = logging.getLogger(__name__)


def resolve_signature(servable: Servable, signature_name: str):
    """The SignatureDef named `signature_name` ("" means serving_default).

    Raises:
        ServingError: FAILED_PRECONDITION when the model has no such signature
            (TF Serving's code; the REST API answers 400).
    """
    name = signature_name or DEFAULT_SIGNATURE
    if name not in servable.functions:
        raise ServingError(
            Code.FAILED_PRECONDITION,
            f'Serving signature key "{name}" not found. Model {servable.name} version '
            f"{servable.version} has: {', '.join(sorted(servable.functions))}.")
    return name, servable.signature_defs[name]


def input_dtypes(servable: Servable, signature_name: str) -> dict[str, int]:
    """The inputs of a signature, name -> DataType enum (for parsing JSON)."""
    _, signature = resolve_signature(servable, signature_name)
    return {name: info.dtype for name, info in signature.inputs.items()}


def _shape_text(shape: Sequence[int | None]) -> str:
    return "[" + ",".join("None" if d is None or d < 0 else str(d) for d in shape) + "]"


def _check_input(signature_name: str, name: str, info, array: np.ndarray) -> None:
    shape = info.tensor_shape
    if shape.unknown_rank:
        return
    expected = [d.size for d in shape.dim]
    if len(expected) != array.ndim or any(
        e >= 0 and e != a for e, a in zip(expected, array.shape)
    ):
        raise invalid_argument(
            f"Input '{name}' of signature '{signature_name}' expects shape "
            f"{_shape_text(expected)} ({dtype_name(info.dtype)}); received shape "
            f"{_shape_text(array.shape)}.")


def _check_names(signature, names: Sequence[str]) -> None:
    sent, expected = set(names), set(signature.inputs)
    if len(sent) == len(expected) and sent != expected:
        raise invalid_argument(
            f"input tensor alias not found in signature: {sorted(sent - expected)[0]}. Inputs "
            f"expected to be in the set {{{','.join(sorted(expected))}}}.")
    if sent != expected:
        raise invalid_argument(
            f"input size does not match signature: {len(sent)}!={len(expected)} "
            f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(expected))}}}). "
            f"Sent extra: {{{','.join(sorted(sent - expected))}}}. Missing but required: "
            f"{{{','.join(sorted(expected - sent))}}}.")


def _output_names(signature, output_filter: Sequence[str]) -> list[str]:
    if not output_filter:
        return sorted(signature.outputs)
    if len(set(output_filter)) != len(output_filter):
        raise invalid_argument(f"duplicate output tensor alias in output_filter: "
                               f"{list(output_filter)}")
    unknown = [name for name in output_filter if name not in signature.outputs]
    if unknown:
        raise invalid_argument(
            f"output tensor alias not found in signature: {unknown[0]} Outputs expected to be "
            f"in the set {{{','.join(sorted(signature.outputs))}}}.")
    return list(output_filter)


def op_error_message(message: str) -> str:
    """TensorFlow's error without eager's preamble: the reason and the failing node."""
    lines = [line for line in message.splitlines() if line.strip() and not line.startswith(
        ("Graph execution error:", "Detected at node", "<stack traces unavailable>"))]
    text = "\n".join(lines)
    return re.sub(r"\s*\[Op:[^\]]*\]\s*$", "", text) or message


def run_signature(
    servable: Servable,
    signature_name: str,
    inputs: Mapping[str, np.ndarray],
    output_filter: Sequence[str] = (),
) -> dict[str, np.ndarray]:
    """Runs one signature on named input arrays.

    Args:
        servable: the loaded model version.
        signature_name: the signature ("" for serving_default).
        inputs: one array per signature input, of the signature's dtype.
        output_filter: the outputs to return (all when empty).

    Returns:
        The outputs, name -> array.

    Raises:
        ServingError: the inputs do not fit the signature, or the graph failed.
    """
    name, signature = resolve_signature(servable, signature_name)
    _check_names(signature, list(inputs))
    for key, array in inputs.items():
        _check_input(name, key, signature.inputs[key], array)
    wanted = _output_names(signature, output_filter)
    tensors = {key: tf.constant(array, dtype=tf.as_dtype(signature.inputs[key].dtype))
               for key, array in inputs.items()}
    try:
        outputs = servable.functions[name](**tensors)
    except tf.errors.OpError as err:
        code = err.error_code if err.error_code in Code._value2member_map_ else Code.UNKNOWN
        raise ServingError(Code(code), op_error_message(err.message)) from err
    except (TypeError, ValueError) as err:
        raise invalid_argument(f"Signature '{name}' rejected the inputs: {err}") from err
    return {key: outputs[key].numpy() for key in wanted}


# ---------------------------------------------------------------- TensorProto


def tensor_proto_to_array(
    name: str, proto: tensor_pb2.TensorProto, dtype: int, max_elements: int | None = None
) -> np.ndarray:
    """A request's input tensor as an array, after checking its dtype and declared shape.

    `tf.make_ndarray` repeats the last value up to the declared shape, so a 64-byte
    proto can declare gigabytes: the shape is checked against `max_elements` first.
    """
    if proto.dtype != dtype:
        raise invalid_argument(
            f"Input '{name}' expects {dtype_name(dtype)} but {dtype_name(proto.dtype)} was "
            "provided.")
    check_tensor_shape(f"Input '{name}'", [d.size for d in proto.tensor_shape.dim], max_elements)
    try:
        return tf.make_ndarray(proto)
    except (TypeError, ValueError, MemoryError) as err:
        raise invalid_argument(f"tensor parsing error: {name}: {err}") from err


# numpy kind/size -> the repeated field of TensorProto that TF Serving fills (AsProtoField),
# so clients reading e.g. `outputs["scores"].float_val` see the values there.
_VALUE_FIELDS = {
    types_pb2.DT_FLOAT: "float_val",
    types_pb2.DT_DOUBLE: "double_val",
    types_pb2.DT_INT32: "int_val",
    types_pb2.DT_INT16: "int_val",
    types_pb2.DT_INT8: "int_val",
    types_pb2.DT_UINT8: "int_val",
    types_pb2.DT_UINT16: "int_val",
    types_pb2.DT_INT64: "int64_val",
    types_pb2.DT_UINT32: "uint32_val",
    types_pb2.DT_UINT64: "uint64_val",
    types_pb2.DT_BOOL: "bool_val",
    types_pb2.DT_STRING: "string_val",
}


def array_to_tensor_proto(array: np.ndarray) -> tensor_pb2.TensorProto:
    """An output array as a TensorProto with typed value fields, as TF Serving writes it."""
    array = np.asarray(array)
    dtype = types_pb2.DT_STRING if array.dtype.kind in "OSU" else \
        tf.as_dtype(array.dtype).as_datatype_enum
    if dtype not in _VALUE_FIELDS:
        return tf.make_tensor_proto(array)
    proto = tensor_pb2.TensorProto(
        dtype=dtype,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in array.shape]),
    )
    values = array.ravel().tolist()
    if dtype == types_pb2.DT_STRING:
        values = [v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in values]
    getattr(proto, _VALUE_FIELDS[dtype]).extend(values)
    return proto


def predict_request(
    servable: Servable, request: predict_pb2.PredictRequest, max_elements: int | None = None,
    run: Callable = run_signature,
) -> predict_pb2.PredictResponse:
    """Answers a `PredictRequest` (gRPC Predict, warmup replay) with this servable.

    Args:
        max_elements: input tensors declaring more elements are refused (None: no limit).
        run: runs the signature (`run_signature`, or a `Batcher.run`).
    """
    name, signature = resolve_signature(servable, request.model_spec.signature_name)
    _check_names(signature, list(request.inputs))
    arrays = {key: tensor_proto_to_array(key, proto, signature.inputs[key].dtype, max_elements)
              for key, proto in request.inputs.items()}
    outputs = run(servable, name, arrays, list(request.output_filter))
    response = predict_pb2.PredictResponse()
    response.model_spec.name = servable.name
    response.model_spec.version.value = servable.version
    response.model_spec.signature_name = name
    for key, array in outputs.items():
        response.outputs[key].CopyFrom(array_to_tensor_proto(array))
    return response


# ---------------------------------------------------------------- warm-up


def warm_up(servable: Servable) -> int:
    """Replays the version's warmup PredictionLog records; returns how many ran.

    Raises:
        ServingError: a warmup request failed (the version is not loaded, as in TF Serving).
    """
    count = 0
    for log in read_warmup(servable.path):
        if log.WhichOneof("log_type") != "predict_log":
            logger.warning("%s: skipping a %s warmup record (only predict is served)",
                           warmup_path(servable.path), log.WhichOneof("log_type"))
            continue
        predict_request(servable, log.predict_log.request)
        count += 1
    return count
