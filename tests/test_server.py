"""`tfxfer serve` over real loopback sockets: TF Serving's REST and gRPC APIs, every bad request.

One server (ephemeral ports) serves tiny SavedModels built from a tf.Module;
each bad request must get its status and a clear message, and the server must
answer the next good request.
"""

import base64
import io
import json

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import json_format
from server_models import cleanup_built, http_request, publish, tiny_model
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from tfxfer.serving.server import ModelServer, ServerConfig, VersionPolicy
from tfxfer.serving.server.json_tensor import COLUMNAR, ROW, inputs_from_json, outputs_to_json
from tfxfer.serving.server.rest import Route, parse_route

MAX_BYTES = 64 * 1024
INIT_OP = "__saved_model_init_op"


def _png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full((4, 5, 3), 100, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    publish(root / "tiny", 1, scale=1.0)
    # Not versions: an exporter's temporary directory and a non-integer name.
    publish(root / "tiny", 9, scale=3.0).rename(root / "tiny" / ".tmp-export-1-x")
    publish(root / "tiny", 8, scale=3.0).rename(root / "tiny" / "latest")
    yield root
    cleanup_built()


@pytest.fixture(scope="module")
def server(base):
    config = ServerConfig(base, rest_port=0, grpc_port=0, poll_seconds=0.2,
                          max_request_bytes=MAX_BYTES,
                          version_labels={"tiny": {"stable": 1}})
    with ModelServer(config) as running:
        yield running


@pytest.fixture(scope="module")
def local():
    """The same SavedModel loaded in this process (the reference outputs)."""
    return tf.saved_model.load(str(tiny_model(1.0)))


def _predict(server, body, path="/v1/models/tiny:predict"):
    return http_request(server.rest_port, "POST", path, body)


def _assert_serving(server):
    status, body = _predict(server, {"instances": ["abc"]})
    assert status == 200, body
    assert body["predictions"][0]["score"] == 3.0


# ---------------------------------------------------------------- REST: good requests


def test_binds_loopback_by_default(tmp_path):
    assert ServerConfig(tmp_path).host == "127.0.0.1"


def test_model_status(server):
    status, body = http_request(server.rest_port, "GET", "/v1/models/tiny")
    assert status == 200
    assert body == {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK",
                                                          "error_message": ""}}]}
    status, body = http_request(server.rest_port, "GET", "/v1/models/tiny/versions/1")
    assert status == 200 and body["model_version_status"][0]["version"] == "1"


def _loader_signatures(path) -> dict:
    """Name -> inputs/outputs -> (dtype, shape), read with tf.saved_model.load (the oracle)."""
    def spec(tensor_spec):
        shape = [-1 if d is None else d for d in tensor_spec.shape]
        return types_pb2.DataType.Name(tensor_spec.dtype.as_datatype_enum), shape

    return {name: {"inputs": {k: spec(v) for k, v in f.structured_input_signature[1].items()},
                   "outputs": {k: spec(v) for k, v in f.structured_outputs.items()}}
            for name, f in tf.saved_model.load(str(path)).signatures.items()}


def _metadata_signatures(signature_defs: dict) -> dict:
    """The same view of SignatureDefs in protobuf's JSON mapping (proto field names)."""
    def spec(info):
        return info["dtype"], [int(d["size"]) for d in info["tensor_shape"].get("dim", [])]

    return {name: {"inputs": {k: spec(v) for k, v in d.get("inputs", {}).items()},
                   "outputs": {k: spec(v) for k, v in d.get("outputs", {}).items()}}
            for name, d in signature_defs.items() if name != INIT_OP}


def test_model_metadata_is_the_signature_defs(server):
    status, body = http_request(server.rest_port, "GET", "/v1/models/tiny/metadata")
    assert status == 200
    assert body["model_spec"] == {"name": "tiny", "version": "1", "signature_name": ""}
    signatures = body["metadata"]["signature_def"]["signature_def"]
    assert INIT_OP in signatures  # listed without a function, as TF Serving lists it
    assert _metadata_signatures(signatures) == _loader_signatures(tiny_model(1.0))
    default = signatures["serving_default"]
    assert default["method_name"] == "tensorflow/serving/predict"
    assert default["inputs"]["inputs"]["dtype"] == "DT_STRING"
    assert default["inputs"]["inputs"]["tensor_shape"]["dim"] == [{"size": "-1", "name": ""}]
    assert set(default["outputs"]) == {"score", "echo_bytes", "upper", "calls"}
    versioned = http_request(server.rest_port, "GET", "/v1/models/tiny/versions/1/metadata")
    assert versioned == (200, body)


def test_predict_row_format_matches_in_process(server, local):
    texts = ["hello", "tf serving"]
    image = _png()
    status, body = _predict(server, {"instances": [texts[0], {"b64": base64.b64encode(
        texts[1].encode()).decode()}]})
    assert status == 200, body
    expected = local.signatures["serving_default"](inputs=tf.constant(texts))
    rows = body["predictions"]
    assert [r["score"] for r in rows] == expected["score"].numpy().tolist()
    assert [r["upper"] for r in rows] == [t.upper() for t in texts]
    # A DT_STRING output named *_bytes comes back base64-encoded, as TF Serving does.
    assert [base64.b64decode(r["echo_bytes"]["b64"]).decode() for r in rows] == texts
    status, body = _predict(server, {"signature_name": "decode",
                                     "instances": [{"b64": base64.b64encode(image).decode()}]})
    assert status == 200 and body == {"predictions": [100.0]}


def test_predict_columnar_format_and_named_inputs(server, local):
    rows = [[1.5, 2.0, 3.0], [0.1, 0.2, 0.3]]
    expected = local.signatures["floats"](x=tf.constant(rows))["sum"].numpy()
    status, body = _predict(server, {"signature_name": "floats", "inputs": rows})
    assert status == 200, body
    assert np.array_equal(np.float32(body["outputs"]), expected)  # one output: a plain list
    status, body = _predict(server, {"signature_name": "floats", "inputs": {"x": rows}})
    assert status == 200 and np.array_equal(np.float32(body["outputs"]), expected)
    status, body = _predict(server, {"signature_name": "floats",
                                     "instances": [{"x": r} for r in rows]})
    assert status == 200 and np.array_equal(np.float32(body["predictions"]), expected)
    status, body = _predict(server, {"inputs": ["ab", "c"]})
    assert status == 200 and body["outputs"]["score"] == [2.0, 1.0]


def test_predict_by_version_and_label(server):
    for path in ("/v1/models/tiny/versions/1:predict", "/v1/models/tiny/labels/stable:predict",
                 "/V1/MODELS/tiny:PREDICT"):
        status, body = _predict(server, {"instances": ["abcd"]}, path)
        assert status == 200 and body["predictions"][0]["score"] == 4.0, (path, body)


def test_directories_that_are_not_versions_are_ignored(server):
    status, body = http_request(server.rest_port, "GET", "/v1/models/tiny")
    assert [v["version"] for v in body["model_version_status"]] == ["1"]


# ---------------------------------------------------------------- REST: bad requests

BAD_REQUESTS = [
    # (id, method, path, body, status, part of the message)
    ("malformed-json", "POST", "/v1/models/tiny:predict", '{"instances": ["a"', 400,
     "JSON Parse error"),
    ("empty-body", "POST", "/v1/models/tiny:predict", "", 400, "The document is empty"),
    ("not-an-object", "POST", "/v1/models/tiny:predict", "[1, 2]", 400, "Is not object"),
    ("not-utf8", "POST", "/v1/models/tiny:predict", b'{"instances": ["\xff"]}', 400,
     "JSON Parse error"),
    ("nested-too-deep", "POST", "/v1/models/tiny:predict",
     '{"instances": ' + "[" * 30_000 + "]" * 30_000 + "}", 400, "nested too deeply"),
    ("rank-too-high", "POST", "/v1/models/tiny:predict",
     '{"instances": [' + "[" * 300 + '"a"' + "]" * 300 + "]}", 400, "at most 254 dimensions"),
    ("string-rank-2", "POST", "/v1/models/tiny:predict", {"instances": [["a"]]}, 400,
     "expects shape [None] (DT_STRING); received shape [1,1]"),
    ("no-inputs", "POST", "/v1/models/tiny:predict", {"signature_name": "floats"}, 400,
     "Missing 'inputs' or 'instances' key"),
    ("both-keys", "POST", "/v1/models/tiny:predict", {"inputs": ["a"], "instances": ["a"]},
     400, "only one of 'inputs' or 'instances'"),
    ("empty-instances", "POST", "/v1/models/tiny:predict", {"instances": []}, 400,
     "No values in 'instances'"),
    ("signature-not-string", "POST", "/v1/models/tiny:predict",
     {"signature_name": 3, "instances": ["a"]}, 400, "'signature_name' key must be a string"),
    ("bad-base64", "POST", "/v1/models/tiny:predict", {"instances": [{"b64": "@@not base64"}]},
     400, "Unable to base64 decode"),
    ("not-an-image", "POST", "/v1/models/tiny:predict",
     {"signature_name": "decode", "instances": [{"b64": base64.b64encode(b"nope").decode()}]},
     400, "Unknown image file format"),
    ("wrong-dtype", "POST", "/v1/models/tiny:predict",
     {"signature_name": "floats", "instances": [["a", "b", "c"]]}, 400,
     "is not of expected type: DT_FLOAT"),
    ("number-for-string", "POST", "/v1/models/tiny:predict", {"instances": [1]}, 400,
     "is not of expected type: DT_STRING"),
    ("lossy-float", "POST", "/v1/models/tiny:predict",
     {"signature_name": "floats", "instances": [[1, 2, 16777217]]}, 400, "loss of precision"),
    ("wrong-shape", "POST", "/v1/models/tiny:predict",
     {"signature_name": "floats", "instances": [[1.0, 2.0]]}, 400,
     "expects shape [None,3] (DT_FLOAT); received shape [1,2]"),
    ("ragged", "POST", "/v1/models/tiny:predict",
     {"signature_name": "floats", "inputs": [[1.0, 2.0, 3.0], [1.0]]}, 400,
     "Encountered list at unexpected size"),
    ("instances-differ", "POST", "/v1/models/tiny:predict",
     {"signature_name": "floats", "instances": [[1.0, 2.0, 3.0], [1.0]]}, 400,
     "Expecting tensor size: 3 but got: 1"),
    ("wrong-input-name", "POST", "/v1/models/tiny:predict",
     {"signature_name": "floats", "inputs": {"y": [[1.0, 2.0, 3.0]]}}, 400,
     "Missing named input: x"),
    ("unknown-signature", "POST", "/v1/models/tiny:predict",
     {"signature_name": "nope", "instances": ["a"]}, 400,
     'Serving signature name: "nope" not found'),
    ("init-op-signature", "POST", "/v1/models/tiny:predict",
     {"signature_name": "__saved_model_init_op", "instances": ["a"]}, 400, "not found"),
    ("unknown-model", "POST", "/v1/models/nope:predict", {"instances": ["a"]}, 404,
     "Servable not found for request: Latest(nope)"),
    ("unknown-version", "POST", "/v1/models/tiny/versions/7:predict", {"instances": ["a"]}, 404,
     "Servable not found for request: Specific(tiny, 7)"),
    ("unknown-label", "POST", "/v1/models/tiny/labels/canary:predict", {"instances": ["a"]},
     400, "Unrecognized servable version label: canary"),
    ("hidden-dir-as-model", "POST", "/v1/models/.tmp-export-1-x:predict",
     {"instances": ["a"]}, 400, "Invalid model name"),
    ("integer-model-name", "POST", "/v1/models/12:predict", {"instances": ["a"]}, 400,
     "not an integer"),
    ("escape-encoded-slash", "GET", "/v1/models/..%2F..%2Fetc", None, 400, "Invalid model name"),
    ("escape-dotdot", "GET", "/v1/models/%2E%2E/metadata", None, 400, "Invalid model name"),
    ("escape-backslash", "POST", "/v1/models/..%5Ctiny:predict", {"instances": ["a"]}, 400,
     "Invalid model name"),
    ("status-unknown-model", "GET", "/v1/models/nope", None, 404,
     "Could not find any versions of model nope"),
    ("status-unknown-version", "GET", "/v1/models/tiny/versions/5", None, 404,
     "Could not find version 5 of model tiny"),
    ("metadata-unknown-model", "GET", "/v1/models/nope/metadata", None, 404,
     "Servable not found"),
    ("missing-model-name", "GET", "/v1/models", None, 400, "Missing model name"),
    ("bad-method", "DELETE", "/v1/models/tiny", None, 400, "Malformed request: DELETE"),
    ("bad-verb", "POST", "/v1/models/tiny:explain", {"instances": ["a"]}, 400,
     "Malformed request"),
    ("get-predict", "GET", "/v1/models/tiny:predict", None, 400, "Malformed request"),
    ("outside-api", "GET", "/index.html", None, 404, "Not found"),
    ("classify", "POST", "/v1/models/tiny:classify", {"examples": []}, 501, "classify"),
    ("too-large", "POST", "/v1/models/tiny:predict",
     {"instances": ["x" * (MAX_BYTES + 10)]}, 413, "Request body too large"),
]


@pytest.mark.parametrize("method,path,body,status,message",
                         [case[1:] for case in BAD_REQUESTS], ids=[c[0] for c in BAD_REQUESTS])
def test_bad_request_gets_4xx_and_server_keeps_serving(server, method, path, body, status,
                                                       message):
    got, answer = http_request(server.rest_port, method, path, body)
    assert got == status, answer
    assert set(answer) == {"error"}
    assert message in answer["error"]
    _assert_serving(server)


def test_parse_route_uses_tf_serving_paths():
    assert parse_route("POST", "/v1/models/m/versions/3:predict") == Route("predict", "m", 3)
    assert parse_route("POST", "/v1/models/m/labels/a%20b:predict") == \
        Route("predict", "m", None, "a b")
    assert parse_route("GET", "/v1/models/m/versions/2/metadata") == Route("metadata", "m", 2)
    assert parse_route("GET", "/v1/models/my%2Dmodel") == Route("status", "my-model")


# ---------------------------------------------------------------- JSON tensor format


def test_json_row_inputs_batch_instances():
    inputs, layout = inputs_from_json(
        {"instances": [{"a": [1, 2], "b": "x"}, {"a": [3, 4], "b": {"b64": "eQ"}}]},
        {"a": types_pb2.DT_INT64, "b": types_pb2.DT_STRING})
    assert layout == ROW
    assert inputs["a"].dtype == np.int64 and inputs["a"].tolist() == [[1, 2], [3, 4]]
    assert inputs["b"].tolist() == [b"x", b"y"]


def test_json_outputs_shaped_as_tf_serving():
    outputs = {"p": np.array([[0.1, 0.7]], np.float32), "n": np.array([b"roses"]),
               "raw_bytes": np.array([b"\xff\x00"], dtype=object)}
    body = outputs_to_json(outputs, ROW)
    # float32 values are written as their shortest decimal (0.1, not 0.10000000149011612).
    assert json.dumps(body) == ('{"predictions": [{"n": "roses", "p": [0.1, 0.7], '
                                '"raw_bytes": {"b64": "/wA="}}]}')
    assert outputs_to_json({"p": outputs["p"]}, ROW) == {"predictions": [[0.1, 0.7]]}
    assert outputs_to_json({"p": outputs["p"]}, COLUMNAR) == {"outputs": [[0.1, 0.7]]}
    nan = outputs_to_json({"p": np.array([np.nan, np.inf], np.float32)}, COLUMNAR)
    assert json.dumps(nan) == '{"outputs": [NaN, Infinity]}'


def test_version_policy_selection():
    assert VersionPolicy().select([3, 1, 2]) == [3]
    assert VersionPolicy("latest", num_versions=2).select([3, 1, 2]) == [2, 3]
    assert VersionPolicy("all").select([2, 1]) == [1, 2]
    assert VersionPolicy("specific", versions=(1, 5)).select([1, 2]) == [1]
    with pytest.raises(ValueError, match="Valid policies"):
        VersionPolicy("newest")
    with pytest.raises(ValueError, match="needs the versions"):
        VersionPolicy("specific")


# ---------------------------------------------------------------- gRPC


@pytest.fixture(scope="module")
def channel(server):
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as open_channel:
        yield open_channel


def _request(inputs, signature="", name="tiny", version=None):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return request


def test_grpc_predict_matches_in_process(channel, local):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    response = stub.Predict(_request({"inputs": [b"hello", b"abc"]}), timeout=30)
    expected = local.signatures["serving_default"](inputs=tf.constant(["hello", "abc"]))
    assert response.model_spec.name == "tiny" and response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "serving_default"
    # Typed value fields, as TF Serving fills them (clients read .float_val directly).
    assert list(response.outputs["score"].float_val) == expected["score"].numpy().tolist()
    assert list(response.outputs["upper"].string_val) == [b"HELLO", b"ABC"]
    floats = stub.Predict(_request({"x": np.ones((2, 3), np.float32)}, "floats", version=1))
    assert tf.make_ndarray(floats.outputs["sum"]).tolist() == [3.0, 3.0]
    filtered = _request({"inputs": [b"a"]})
    filtered.output_filter.append("upper")
    assert list(stub.Predict(filtered).outputs) == ["upper"]


def test_grpc_metadata_and_status(channel):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "tiny"
    response = stub.GetModelMetadata(request, timeout=30)
    signature_defs = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signature_defs)
    as_json = json_format.MessageToDict(signature_defs, preserving_proto_field_name=True)
    assert _metadata_signatures(as_json["signature_def"]) == \
        _loader_signatures(tiny_model(1.0))
    assert response.model_spec.version.value == 1
    status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
        get_model_status_pb2.GetModelStatusRequest(model_spec={"name": "tiny"}), timeout=30)
    assert [(s.version, s.state) for s in status.model_version_status] == \
        [(1, get_model_status_pb2.ModelVersionStatus.AVAILABLE)]


GRPC_BAD = [
    ("unknown-model", {"inputs": [b"a"]}, "", "nope", grpc.StatusCode.NOT_FOUND,
     "Servable not found"),
    ("unknown-version", {"inputs": [b"a"]}, "", "tiny", grpc.StatusCode.NOT_FOUND, "Specific"),
    ("unknown-signature", {"inputs": [b"a"]}, "nope", "tiny",
     grpc.StatusCode.FAILED_PRECONDITION, 'Serving signature key "nope" not found'),
    ("wrong-dtype", {"inputs": np.ones(2, np.float32)}, "", "tiny",
     grpc.StatusCode.INVALID_ARGUMENT, "expects DT_STRING but DT_FLOAT was provided"),
    ("wrong-shape", {"x": np.ones((2, 4), np.float32)}, "floats", "tiny",
     grpc.StatusCode.INVALID_ARGUMENT, "expects shape [None,3]"),
    ("missing-input", {"y": np.ones((2, 3), np.float32)}, "floats", "tiny",
     grpc.StatusCode.INVALID_ARGUMENT, "input tensor alias not found in signature: y"),
    ("not-an-image", {"images": [b"nope"]}, "decode", "tiny", grpc.StatusCode.INVALID_ARGUMENT,
     "Unknown image file format"),
    ("escape", {"inputs": [b"a"]}, "", "../tiny", grpc.StatusCode.INVALID_ARGUMENT,
     "Invalid model name"),
    ("too-large", {"inputs": [b"x" * (MAX_BYTES + 10)]}, "", "tiny",
     grpc.StatusCode.RESOURCE_EXHAUSTED, "Received message larger than max"),
]


@pytest.mark.parametrize("inputs,signature,name,code,message", [c[1:] for c in GRPC_BAD],
                         ids=[c[0] for c in GRPC_BAD])
def test_grpc_errors_have_tf_serving_codes(channel, server, inputs, signature, name, code,
                                           message):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    version = 7 if "Specific" in message else None
    with pytest.raises(grpc.RpcError) as error:
        stub.Predict(_request(inputs, signature, name, version), timeout=30)
    assert error.value.code() == code
    assert message in error.value.details()
    assert stub.Predict(_request({"inputs": [b"ok"]}), timeout=30).outputs["score"].float_val \
        == [2.0]
    _assert_serving(server)


def test_grpc_metadata_needs_signature_def_field(channel):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["other"])
    request.model_spec.name = "tiny"
    with pytest.raises(grpc.RpcError) as error:
        stub.GetModelMetadata(request, timeout=30)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
