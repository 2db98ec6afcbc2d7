"""TF Serving's JSON tensor format: predict request bodies to arrays, outputs to JSON.

Follows tensorflow_serving/util/json_tensor.cc (and its error messages):

    row       {"signature_name": ..., "instances": [...]}  -> {"predictions": [...]}
    columnar  {"signature_name": ..., "inputs": ... }      -> {"outputs": ...}

A tensor's shape is read from the nesting of its JSON lists (following the
first element of each list); every other list must match it. DT_STRING values
are JSON strings (sent as UTF-8) or {"b64": "..."} objects. In the response,
DT_STRING outputs whose name ends with "_bytes" are written as {"b64": ...},
others as strings; float32 values as the shortest decimal that reads back as
the same float32. A single output is written as a plain list, several as one
object per row (row format) or one key per output (columnar).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from tensorflow.core.framework import types_pb2

from tfxfer.serving.server.errors import (
    Code,
    ServingError,
    check_tensor_shape,
    invalid_argument,
)

ROW = "row"
COLUMNAR = "columnar"
BYTES_SUFFIX = "_bytes"
MAX_RANK = 254  # TensorShape's limit

_FLOAT32_MAX_INT = (1 << 24) - 1
_FLOAT64_MAX_INT = (1 << 53) - 1
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def dtype_name(dtype: int) -> str:
    """`DT_FLOAT` for types_pb2.DT_FLOAT."""
    return types_pb2.DataType.Name(dtype)


def _json_text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _json_type(value: Any) -> str:
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def _type_error(value: Any, dtype: int) -> ServingError:
    return invalid_argument(
        f"JSON Value: {_json_text(value)} Type: {_json_type(value)} is not of expected type: "
        f"{dtype_name(dtype)}"
    )


def _is_int(value: Any) -> bool:
    return type(value) is int  # bool is an int subclass, but not a JSON number


def _lossy(value: Any, target: str) -> ServingError:
    return invalid_argument(
        f"Cannot convert JSON value: {_json_text(value)} to {target} without loss of precision."
    )


def _float_converter(max_int: int, max_value: float, target: str) -> Callable[[Any], float]:
    dtype = types_pb2.DT_FLOAT if target == "float" else types_pb2.DT_DOUBLE

    def convert(value: Any) -> float:
        if _is_int(value):
            if abs(value) > max_int:
                raise _lossy(value, target)
            return float(value)
        if type(value) is float:
            if math.isfinite(value) and abs(value) > max_value:
                raise _lossy(value, target)
            return value
        raise _type_error(value, dtype)

    return convert


def _int_converter(dtype: int, low: int, high: int) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        if not _is_int(value):
            raise _type_error(value, dtype)
        if not low <= value <= high:
            raise invalid_argument(
                f"JSON Value: {value} is out of range for {dtype_name(dtype)} [{low}, {high}]")
        return value

    return convert


def _bool(value: Any) -> bool:
    if type(value) is not bool:
        raise _type_error(value, types_pb2.DT_BOOL)
    return value


def decode_b64(value: dict) -> bytes:
    """The bytes of a {"b64": "..."} object (standard alphabet, padding optional)."""
    if not is_b64_object(value):
        raise invalid_argument(
            f"JSON Value: {_json_text(value)} not formatted correctly for base64 data")
    text = value["b64"]
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as err:
        raise invalid_argument(f"Unable to base64 decode: {err}") from err


def _string(value: Any) -> bytes:
    if isinstance(value, str):
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError as err:  # a lone surrogate such as "\ud83d"
            raise invalid_argument(
                f"JSON Value: {_json_text(value)} is not valid Unicode: {err.reason} at "
                f"character {err.start}") from err
    if isinstance(value, dict):
        return decode_b64(value)
    raise _type_error(value, types_pb2.DT_STRING)


# dtype -> (numpy dtype, converter of one JSON value)
_CONVERTERS: dict[int, tuple[Any, Callable[[Any], Any]]] = {
    types_pb2.DT_FLOAT: (np.float32, _float_converter(_FLOAT32_MAX_INT, _FLOAT32_MAX, "float")),
    types_pb2.DT_DOUBLE: (np.float64, _float_converter(_FLOAT64_MAX_INT, math.inf, "double")),
    types_pb2.DT_INT8: (np.int8, _int_converter(types_pb2.DT_INT8, -(1 << 7), (1 << 7) - 1)),
    types_pb2.DT_INT16: (np.int16, _int_converter(types_pb2.DT_INT16, -(1 << 15), (1 << 15) - 1)),
    types_pb2.DT_INT32: (np.int32, _int_converter(types_pb2.DT_INT32, -(1 << 31), (1 << 31) - 1)),
    types_pb2.DT_INT64: (np.int64, _int_converter(types_pb2.DT_INT64, -(1 << 63), (1 << 63) - 1)),
    types_pb2.DT_UINT8: (np.uint8, _int_converter(types_pb2.DT_UINT8, 0, (1 << 8) - 1)),
    types_pb2.DT_UINT16: (np.uint16, _int_converter(types_pb2.DT_UINT16, 0, (1 << 16) - 1)),
    types_pb2.DT_UINT32: (np.uint32, _int_converter(types_pb2.DT_UINT32, 0, (1 << 32) - 1)),
    types_pb2.DT_UINT64: (np.uint64, _int_converter(types_pb2.DT_UINT64, 0, (1 << 64) - 1)),
    types_pb2.DT_BOOL: (np.bool_, _bool),
    types_pb2.DT_STRING: (object, _string),
}


def is_b64_object(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _dense_shape(value: Any) -> list[int]:
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _fill(value: Any, level: int, shape: list[int], convert: Callable, out: list) -> None:
    rank = len(shape)
    if not isinstance(value, list):
        if level != rank:
            raise invalid_argument(
                f"JSON Value: {_json_text(value)} found at incorrect level: {level + 1} in the "
                f"JSON DOM. Expected at level: {rank}")
        out.append(convert(value))
        return
    if level >= rank:
        raise invalid_argument(f"Encountered list at unexpected level: {level} expected < {rank}")
    if len(value) != shape[level]:
        raise invalid_argument(
            f"Encountered list at unexpected size: {len(value)} at level: {level} expected "
            f"size: {shape[level]}")
    for item in value:
        _fill(item, level + 1, shape, convert, out)


def json_to_array(value: Any, dtype: int, max_elements: int | None = None) -> np.ndarray:
    """One JSON value (a scalar or nested lists) as an array of `dtype`.

    Args:
        max_elements: refuse a value of more elements, before converting it (None: no limit).

    Raises:
        ServingError: INVALID_ARGUMENT for ragged lists or values of the wrong type;
            UNIMPLEMENTED for dtypes JSON cannot carry.
    """
    if dtype not in _CONVERTERS:
        raise ServingError(Code.UNIMPLEMENTED, f"Conversion of JSON Value: {_json_text(value)} "
                                               f"to type: {dtype_name(dtype)}")
    np_dtype, convert = _CONVERTERS[dtype]
    shape = _dense_shape(value)
    if len(shape) > MAX_RANK:
        raise invalid_argument(f"JSON value nested {len(shape)} lists deep; a tensor has at "
                               f"most {MAX_RANK} dimensions")
    check_tensor_shape("A JSON value", shape, max_elements)
    values: list = []
    _fill(value, 0, shape, convert, values)
    array = np.empty(len(values), dtype=np_dtype)
    array[:] = values
    return array.reshape(shape)


# ---------------------------------------------------------------- requests


def parse_json_body(body: bytes) -> dict[str, Any]:
    """The top-level JSON object of a request body."""
    if not body:
        raise invalid_argument("JSON Parse error: The document is empty")
    try:
        document = json.loads(body)
    except UnicodeDecodeError as err:
        raise invalid_argument(f"JSON Parse error: Invalid encoding in string at offset: "
                               f"{err.start}") from err
    except json.JSONDecodeError as err:
        raise invalid_argument(f"JSON Parse error: {err.msg} at offset: {err.pos}") from err
    except RecursionError as err:
        raise invalid_argument("JSON Parse error: the document is nested too deeply") from err
    if not isinstance(document, dict):
        raise invalid_argument(f"JSON Value: {_json_text(document)} Is not object")
    return document


def signature_name_of(document: Mapping[str, Any]) -> str:
    """The optional "signature_name" of a request ("" when absent)."""
    name = document.get("signature_name", "")
    if not isinstance(name, str):
        raise invalid_argument(
            f"JSON Value: {_json_text(dict(document))} not formatted correctly. "
            "'signature_name' key must be a string value.")
    return name


def inputs_from_json(
    document: Mapping[str, Any], input_dtypes: Mapping[str, int],
    max_elements: int | None = None,
) -> tuple[dict[str, np.ndarray], str]:
    """The named input arrays of a predict request and its format (ROW or COLUMNAR).

    Args:
        document: the parsed request body.
        input_dtypes: the signature's inputs, name -> DataType enum.
        max_elements: refuse an input tensor of more elements (None: no limit).
    """
    if not input_dtypes:
        raise invalid_argument("Failed to get input map for signature")
    has_instances, has_inputs = "instances" in document, "inputs" in document
    if has_instances and has_inputs:
        raise invalid_argument("Not formatted correctly: expecting only one of 'inputs' or "
                               "'instances' keys to exist")
    if has_instances:
        instances = document["instances"]
        if not isinstance(instances, list):
            raise invalid_argument("Expecting 'instances' to be an list/array")
        if not instances:
            raise invalid_argument("No values in 'instances' array")
        return _from_instances(instances, input_dtypes, max_elements), ROW
    if has_inputs:
        return _from_inputs(document["inputs"], input_dtypes, max_elements), COLUMNAR
    raise invalid_argument("Missing 'inputs' or 'instances' key")


def _is_named_object(value: Any) -> bool:
    return isinstance(value, dict) and not is_b64_object(value)


def _from_instances(
    instances: list, input_dtypes: Mapping[str, int], max_elements: int | None
) -> dict[str, np.ndarray]:
    named = _is_named_object(instances[0])
    if not named and len(input_dtypes) > 1:
        raise invalid_argument(
            "instances is a plain list, but expecting list of objects as multiple input "
            f"tensors required as per tensorinfo_map: {', '.join(sorted(input_dtypes))}")
    columns: dict[str, list[np.ndarray]] = {name: [] for name in input_dtypes}
    for index, item in enumerate(instances):
        if named and not _is_named_object(item):
            raise invalid_argument(f"Expecting object but got list at item {index} of input list")
        if not named and _is_named_object(item):
            raise invalid_argument(
                f"Expecting value/list but got object at item {index} of input list")
        pairs = item.items() if named else [(next(iter(input_dtypes)), item)]
        if named and set(item) != set(input_dtypes):
            raise invalid_argument(
                f"Failed to process element: {index} of 'instances' list. JSON object: "
                f"{_json_text(item)} keys must be equal to: {','.join(sorted(input_dtypes))}")
        for name, value in pairs:
            columns[name].append(_instance_item(value, name if named else None, index,
                                                input_dtypes, columns, max_elements))
    for name, items in columns.items():
        check_tensor_shape(f"Input '{name}'", [len(items), *items[0].shape], max_elements)
    return {name: np.stack(items) for name, items in columns.items()}


def _instance_item(value, key, index, input_dtypes, columns, max_elements) -> np.ndarray:
    """One instance's value of one input (`key` None: the only input, not named)."""
    name = key if key is not None else next(iter(input_dtypes))
    try:
        array = json_to_array(value, input_dtypes[name], max_elements)
        if columns[name]:
            _check_same_shape(columns[name][0], array)
    except ServingError as err:
        where = f"{index} key: {key}" if key is not None else f"{index}"
        raise ServingError(err.code, f"Failed to process element: {where} of 'instances' list. "
                                     f"Error: {err}") from err
    return array


def _check_same_shape(first: np.ndarray, array: np.ndarray) -> None:
    if first.size != array.size:
        raise invalid_argument(f"Expecting tensor size: {first.size} but got: {array.size}")
    if first.shape != array.shape:
        raise invalid_argument(
            f"Expecting shape {list(first.shape)} but got: {list(array.shape)}")


def _from_inputs(
    value: Any, input_dtypes: Mapping[str, int], max_elements: int | None
) -> dict[str, np.ndarray]:
    if not _is_named_object(value):
        if len(input_dtypes) > 1:
            raise invalid_argument(
                "inputs is a plain value/list, but expecting an object as multiple input "
                f"tensors required as per tensorinfo_map: {', '.join(sorted(input_dtypes))}")
        name, dtype = next(iter(input_dtypes.items()))
        return {name: json_to_array(value, dtype, max_elements)}
    arrays = {}
    for name, dtype in input_dtypes.items():
        if name not in value:
            raise invalid_argument(f"Missing named input: {name} in 'inputs' object.")
        arrays[name] = json_to_array(value[name], dtype, max_elements)
    return arrays


# ---------------------------------------------------------------- responses


def _float_list(array: np.ndarray) -> Any:
    """Nested lists of the shortest decimals that read back as the same float32."""
    flat = np.array([float(str(x)) for x in array.ravel()], dtype=np.float64)
    return flat.reshape(array.shape).tolist()


def _strings(array: np.ndarray, as_b64: bool) -> Any:
    if as_b64:
        convert = lambda b: {"b64": base64.b64encode(b).decode("ascii")}  # noqa: E731
    else:
        convert = lambda b: b.decode("utf-8", "replace")  # noqa: E731
    flat = np.empty(array.size, dtype=object)
    flat[:] = [convert(bytes(b)) for b in array.ravel()]
    return flat.reshape(array.shape).tolist()


def array_to_json(name: str, array: np.ndarray) -> Any:
    """One output as JSON values (nested lists), the way TF Serving writes them."""
    array = np.asarray(array)
    if array.dtype.kind in "SOU":
        return _strings(array, as_b64=name.endswith(BYTES_SUFFIX))
    if array.dtype in (np.float32, np.float16):
        return _float_list(array)
    if array.dtype.kind in "biuf":
        return array.tolist()
    raise ServingError(Code.INVALID_ARGUMENT,
                       f"Failed to write JSON value for tensor {name!r} of type {array.dtype}")


def outputs_to_json(outputs: Mapping[str, np.ndarray], format: str) -> dict[str, Any]:
    """The response body of a predict request: {"predictions": ...} or {"outputs": ...}."""
    if not outputs:
        raise invalid_argument("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    if format == COLUMNAR:
        if len(names) == 1:
            return {"outputs": array_to_json(names[0], outputs[names[0]])}
        return {"outputs": {name: array_to_json(name, outputs[name]) for name in names}}
    batch = None
    for name in names:
        shape = np.shape(outputs[name])
        if not shape:
            raise invalid_argument(f"Tensor name: {name} has no shape information ")
        if batch is not None and shape[0] != batch:
            raise invalid_argument(f"Tensor name: {name} has inconsistent batch size: "
                                   f"{shape[0]} expecting: {batch}")
        batch = shape[0]
    columns = {name: array_to_json(name, outputs[name]) for name in names}
    if len(names) == 1:
        return {"predictions": columns[names[0]]}
    return {"predictions": [{name: columns[name][i] for name in names} for i in range(batch)]}
