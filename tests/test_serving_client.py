"""Predict clients: request builders and parsers against TF Serving's documented formats.

The documented forms are those of https://www.tensorflow.org/tfx/serving/api_rest
(row format, {"b64": ...} for binary strings, "predictions"/"outputs"/"error"
responses) and the tensorflow-serving-api protos. The transports are exercised
over real sockets against small in-test servers that check what they receive.
"""

import base64
import json
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2, prediction_service_pb2_grpc

from tfxfer.serving import client

JPEG = b"\xff\xd8\xff\xe0fake jpeg bytes\x00\x01"


def test_rest_body_is_the_documented_row_format():
    body = client.rest_predict_body([JPEG, "a great film"])
    assert body == {
        "signature_name": "serving_default",
        "instances": [{"b64": base64.b64encode(JPEG).decode("ascii")}, "a great film"],
    }
    assert json.loads(json.dumps(body)) == body
    assert base64.b64decode(body["instances"][0]["b64"]) == JPEG


def test_rest_urls():
    assert client.rest_predict_url("http://localhost:8501", "flowers") == \
        "http://localhost:8501/v1/models/flowers:predict"
    assert client.rest_predict_url("http://h:8501/", "flowers", 3) == \
        "http://h:8501/v1/models/flowers/versions/3:predict"
    with pytest.raises(ValueError, match="http://HOST:8501"):
        client.rest_predict_url("localhost:8501", "flowers")


def test_rest_responses_in_every_documented_form():
    rows = [{"class_name": "roses", "class_id": 2, "probabilities": [0.1, 0.2, 0.7]},
            {"class_name": "tulips", "class_id": 0, "probabilities": [0.6, 0.3, 0.1]}]
    assert client.parse_rest_response({"predictions": rows}) == rows
    columnar = {"outputs": {"class_name": ["roses", "tulips"], "class_id": [2, 0],
                            "probabilities": [[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]]}}
    assert client.parse_rest_response(columnar) == rows
    assert client.parse_rest_response({"predictions": [3.5, 4.0]}) == \
        [{"output": 3.5}, {"output": 4.0}]
    encoded = {"predictions": [{"image_bytes": {"b64": base64.b64encode(JPEG).decode()}}]}
    assert client.parse_rest_response(encoded) == [{"image_bytes": JPEG}]
    with pytest.raises(client.PredictError, match="Servable not found"):
        client.parse_rest_response({"error": "Servable not found for request: Latest(half)"})


def test_grpc_request_is_a_predict_request_with_one_string_tensor():
    request = client.grpc_predict_request([JPEG, "text é"], "flowers", version=4)
    method = prediction_service_pb2.DESCRIPTOR.services_by_name["PredictionService"] \
        .methods_by_name["Predict"]
    assert isinstance(request, predict_pb2.PredictRequest)
    assert request.DESCRIPTOR.full_name == method.input_type.full_name \
        == "tensorflow.serving.PredictRequest"
    assert request.model_spec.name == "flowers"
    assert request.model_spec.signature_name == "serving_default"
    assert request.model_spec.version.value == 4
    assert list(request.inputs) == ["inputs"]
    tensor = request.inputs["inputs"]
    assert tensor.dtype == types_pb2.DT_STRING
    assert [d.size for d in tensor.tensor_shape.dim] == [2]
    assert list(tensor.string_val) == [JPEG, "text é".encode()]
    assert predict_pb2.PredictRequest.FromString(request.SerializeToString()) == request
    assert not client.grpc_predict_request([JPEG], "flowers").model_spec.HasField("version")


def _predict_response():
    response = predict_pb2.PredictResponse()
    outputs = {
        "class_name": tf.make_tensor_proto([b"roses", b"tulips"]),
        "class_id": tf.make_tensor_proto(np.array([2, 0], np.int64)),
        "probabilities": tf.make_tensor_proto(np.array([[0.25, 0.75], [0.5, 0.5]], np.float32)),
    }
    for name, proto in outputs.items():
        response.outputs[name].CopyFrom(proto)
    return response


def test_grpc_response_rows():
    rows = client.parse_predict_response(_predict_response())
    assert rows == [{"class_id": 2, "class_name": "roses", "probabilities": [0.25, 0.75]},
                    {"class_id": 0, "class_name": "tulips", "probabilities": [0.5, 0.5]}]


def test_summary_and_table():
    rows = [{"class_name": "roses", "class_id": 1, "probabilities": [0.2, 0.8],
             "top_k_class_names": ["roses", "daisy"], "top_k_probabilities": [0.8, 0.2]}]
    (record,) = client.summarize(["a.jpg"], rows)
    assert record["probability"] == 0.8 and record["top_k"][1] == \
        {"class_name": "daisy", "probability": 0.2}
    table = client.format_table([record]).splitlines()
    assert table[0].split() == ["input", "class", "prob", "top-k"]
    assert table[1].split() == ["a.jpg", "roses", "0.800", "roses", "0.800,", "daisy", "0.200"]


class _RestHandler(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.received.append((self.path, self.headers["Content-Type"], body))
        if "missing" in self.path:
            status, reply = 404, {"error": "Servable not found for request: Latest(missing)"}
        else:
            status, reply = 200, {"predictions": [
                {"class_name": "roses", "n": len(body["instances"])}]}
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_rest_transport_over_a_socket():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        rows = client.predict_rest(url, "flowers", [JPEG, "text"], version=2)
        with pytest.raises(client.PredictError, match="HTTP 404: Servable not found"):
            client.predict_rest(url, "missing", [JPEG])
    finally:
        server.shutdown()
    assert rows == [{"class_name": "roses", "n": 2}]
    path, content_type, body = _RestHandler.received[0]
    assert path == "/v1/models/flowers/versions/2:predict"
    assert content_type == "application/json"
    assert body == client.rest_predict_body([JPEG, "text"])


class _Servicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self):
        self.requests = []

    def Predict(self, request, context):
        self.requests.append(request)
        if request.model_spec.name != "flowers":
            context.abort(grpc.StatusCode.NOT_FOUND, "Servable not found")
        return _predict_response()


def test_grpc_transport_over_a_socket():
    servicer = _Servicer()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        rows = client.predict_grpc(f"127.0.0.1:{port}", "flowers", [JPEG, JPEG])
        with pytest.raises(client.PredictError, match="NOT_FOUND: Servable not found"):
            client.predict_grpc(f"127.0.0.1:{port}", "other", [JPEG])
    finally:
        server.stop(None)
    assert [r["class_name"] for r in rows] == ["roses", "tulips"]
    assert servicer.requests[0] == client.grpc_predict_request([JPEG, JPEG], "flowers")
