"""Predict clients for an exported model: local SavedModel, TF Serving REST and gRPC.

Request building and response parsing are small pure functions, separate from
the transports, so they can be checked against TF Serving's documented formats
(https://www.tensorflow.org/tfx/serving/api_rest) and proto types:

    REST  POST {server}/v1/models/{name}[/versions/{v}]:predict
          {"signature_name": "serving_default", "instances": [{"b64": "..."}, "text", ...]}
       -> {"predictions": [{"class_name": "roses", "probabilities": [...], ...}, ...]}
    gRPC  PredictionService.Predict(PredictRequest{model_spec, inputs["inputs"]: [N] DT_STRING})
       -> PredictResponse{outputs: {name: TensorProto}}

Every client returns one dict per input: output name -> value (lists for vector
outputs, str for strings). Only the REST path works without TensorFlow; the
gRPC and local paths import it when called.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tfxfer.serving.contract import (
    CLASS_ID,
    CLASS_NAME,
    DEFAULT_SIGNATURE,
    INPUT_KEY,
    PROBABILITIES,
    TOP_K_CLASS_NAMES,
    TOP_K_PROBABILITIES,
)

Row = dict[str, Any]


class PredictError(RuntimeError):
    """A server or model refused or failed a predict request."""


# ---------------------------------------------------------------- REST


def rest_instance(value: bytes | str) -> Any:
    """One row-format instance: text as a JSON string, bytes as {"b64": ...}."""
    if isinstance(value, str):
        return value
    return {"b64": base64.b64encode(bytes(value)).decode("ascii")}


def rest_predict_body(
    values: Sequence[bytes | str], signature_name: str = DEFAULT_SIGNATURE
) -> dict[str, Any]:
    """The JSON body of a row-format predict request for a one-input signature."""
    return {"signature_name": signature_name, "instances": [rest_instance(v) for v in values]}


def rest_predict_url(server: str, model: str, version: int | None = None) -> str:
    """`{server}/v1/models/{model}[/versions/{version}]:predict`."""
    if not server.startswith(("http://", "https://")):
        raise ValueError(f"A REST server is a URL like http://HOST:8501. Received: {server!r}")
    url = f"{server.rstrip('/')}/v1/models/{model}"
    if version is not None:
        url += f"/versions/{int(version)}"
    return url + ":predict"


def _from_json(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def parse_rest_response(body: dict[str, Any]) -> list[Row]:
    """Rows of a REST predict response, row (`predictions`) or columnar (`outputs`).

    A single unnamed output comes back under the key "output".

    Raises:
        PredictError: the body is TF Serving's {"error": ...} form or unrecognised.
    """
    if "error" in body:
        raise PredictError(f"TF Serving error: {body['error']}")
    if "predictions" in body:
        rows = body["predictions"]
        return [
            {k: _from_json(v) for k, v in row.items()} if isinstance(row, dict)
            else {"output": _from_json(row)}
            for row in rows
        ]
    if "outputs" in body:
        outputs = body["outputs"]
        if not isinstance(outputs, dict):
            return [{"output": _from_json(v)} for v in outputs]
        columns = {k: _from_json(v) for k, v in outputs.items()}
        count = len(next(iter(columns.values()))) if columns else 0
        return [{k: column[i] for k, column in columns.items()} for i in range(count)]
    raise PredictError(f"Unrecognised predict response; keys: {sorted(body)}")


def _error_text(detail: str) -> str:
    """TF Serving's {"error": message} body as its message; anything else as it is."""
    try:
        body = json.loads(detail)
    except json.JSONDecodeError:
        return detail
    return body["error"] if isinstance(body, dict) and "error" in body else detail


def predict_rest(
    server: str,
    model: str,
    values: Sequence[bytes | str],
    *,
    version: int | None = None,
    signature_name: str = DEFAULT_SIGNATURE,
    timeout: float = 30.0,
) -> list[Row]:
    """Sends one predict request to TF Serving's REST API and parses the rows."""
    url = rest_predict_url(server, model, version)
    data = json.dumps(rest_predict_body(values, signature_name)).encode("utf-8")
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as err:
        detail = err.read().decode("utf-8", "replace")
        raise PredictError(f"POST {url} failed: HTTP {err.code}: {_error_text(detail)}") \
            from err
    except (urllib.error.URLError, OSError) as err:
        raise PredictError(f"POST {url} failed: {err}") from err
    return parse_rest_response(body)


# ---------------------------------------------------------------- gRPC


def grpc_predict_request(
    values: Sequence[bytes | str],
    model: str,
    *,
    signature_name: str = DEFAULT_SIGNATURE,
    input_key: str = INPUT_KEY,
    version: int | None = None,
):
    """A `tensorflow.serving.PredictRequest` sending `values` as one `[N]` DT_STRING tensor.

    Text is sent UTF-8 encoded. Also used for the warmup records of an export.
    """
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = int(version)
    data = [v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in values]
    request.inputs[input_key].CopyFrom(
        tf.make_tensor_proto(data, dtype=tf.string, shape=[len(data)])
    )
    return request


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def rows_from_arrays(outputs: dict[str, Any]) -> list[Row]:
    """Splits named batch arrays (numpy or tensors) into one dict per example."""
    import numpy as np

    columns = {k: _decode(np.asarray(v).tolist()) for k, v in outputs.items()}
    count = len(next(iter(columns.values()))) if columns else 0
    return [{k: column[i] for k, column in sorted(columns.items())} for i in range(count)]


def parse_predict_response(response) -> list[Row]:
    """Rows of a `tensorflow.serving.PredictResponse`."""
    import tensorflow as tf

    return rows_from_arrays({k: tf.make_ndarray(v) for k, v in response.outputs.items()})


def predict_grpc(
    target: str,
    model: str,
    values: Sequence[bytes | str],
    *,
    version: int | None = None,
    signature_name: str = DEFAULT_SIGNATURE,
    input_key: str = INPUT_KEY,
    timeout: float = 30.0,
) -> list[Row]:
    """Calls `PredictionService.Predict` on TF Serving's gRPC port (HOST:8500)."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    request = grpc_predict_request(
        values, model, signature_name=signature_name, input_key=input_key, version=version
    )
    options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    with grpc.insecure_channel(target, options=options) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            response = stub.Predict(request, timeout=timeout)
        except grpc.RpcError as err:
            raise PredictError(f"gRPC Predict on {target} failed: {err.code().name}: "
                               f"{err.details()}") from err
    return parse_predict_response(response)


# ---------------------------------------------------------------- local


def predict_local(
    saved_model_dir: str | Path,
    values: Sequence[bytes | str],
    *,
    signature_name: str = DEFAULT_SIGNATURE,
) -> list[Row]:
    """Calls a signature of a SavedModel in this process, as TF Serving would."""
    import tensorflow as tf

    path = Path(saved_model_dir)
    if not (path / "saved_model.pb").is_file():
        raise FileNotFoundError(f"No saved_model.pb in {path}")
    from tfxfer.serving.op_libraries import import_op_libraries

    import_op_libraries(path)
    loaded = tf.saved_model.load(str(path))
    if signature_name not in loaded.signatures:
        raise ValueError(f"{path} has no signature {signature_name!r}; it has "
                         f"{sorted(loaded.signatures)}")
    function = loaded.signatures[signature_name]
    keys = list(function.structured_input_signature[1])
    if len(keys) != 1:
        raise ValueError(f"Signature {signature_name!r} takes {keys}; expected one input.")
    data = [v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in values]
    try:
        outputs = function(**{keys[0]: tf.constant(data, dtype=tf.string)})
    except tf.errors.InvalidArgumentError as err:
        raise PredictError(f"{path} could not predict: {err.message}") from err
    return rows_from_arrays(outputs)


# ---------------------------------------------------------------- output


def summarize(names: Sequence[str], rows: Sequence[Row]) -> list[dict[str, Any]]:
    """One compact record per input: the predicted class, its probability and the top-k."""
    records = []
    for name, row in zip(names, rows):
        record: dict[str, Any] = {"input": name}
        if CLASS_NAME in row:
            record["class_name"] = row[CLASS_NAME]
        if CLASS_ID in row:
            record["class_id"] = row[CLASS_ID]
            if PROBABILITIES in row:
                record["probability"] = row[PROBABILITIES][row[CLASS_ID]]
        if TOP_K_CLASS_NAMES in row and TOP_K_PROBABILITIES in row:
            record["top_k"] = [
                {"class_name": n, "probability": p}
                for n, p in zip(row[TOP_K_CLASS_NAMES], row[TOP_K_PROBABILITIES])
            ]
        record["outputs"] = row
        records.append(record)
    return records


def format_table(records: Sequence[dict[str, Any]]) -> str:
    """A plain-text table: input, predicted class, probability, top-k."""
    width = max([len("input")] + [len(r["input"]) for r in records])
    lines = [f"{'input':<{width}}  {'class':<16} {'prob':>6}  top-k"]
    for r in records:
        top = ", ".join(f"{t['class_name']} {t['probability']:.3f}" for t in r.get("top_k", []))
        prob = f"{r['probability']:.3f}" if "probability" in r else "-"
        lines.append(f"{r['input']:<{width}}  {r.get('class_name', '-'):<16} {prob:>6}  {top}")
    return "\n".join(lines)
