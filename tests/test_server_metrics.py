"""Prometheus metrics of `tfxfer serve` at /monitoring/prometheus/metrics, over loopback."""

import http.client
import re

import grpc
import pytest
import tensorflow as tf
from server_models import http_request
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tfxfer.serving.server import ModelServer, ServerConfig
from tfxfer.serving.server.metrics import Metrics


@pytest.fixture(scope="module")
def server(tiny_base):
    with ModelServer(ServerConfig(tiny_base, rest_port=0, grpc_port=0)) as running:
        yield running


def _metrics(port: int) -> tuple[str, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", "/monitoring/prometheus/metrics")
        response = connection.getresponse()
        assert response.status == 200
        return response.getheader("Content-Type"), response.read().decode()
    finally:
        connection.close()


def _value(text: str, name: str, **labels) -> float:
    for line in text.splitlines():
        match = re.fullmatch(r"(\S+)\{(.*)\} (\S+)", line)
        if match and match[1] == name and all(f'{k}="{v}"' in match[2].split(",")
                                              for k, v in labels.items()):
            return float(match[3])
    raise AssertionError(f"no {name} {labels} in:\n{text}")


def test_requests_are_counted_by_model_version_entrypoint_and_status(server):
    for _ in range(2):
        assert http_request(server.rest_port, "POST", "/v1/models/tiny:predict",
                            {"instances": ["ab"]})[0] == 200
    assert http_request(server.rest_port, "POST", "/v1/models/tiny:predict",
                        {"instances": [1]})[0] == 400
    assert http_request(server.rest_port, "POST", "/v1/models/nope:predict",
                        {"instances": ["a"]})[0] == 404
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "tiny"
    request.inputs["inputs"].CopyFrom(tf.make_tensor_proto([b"abc"]))
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)

    content_type, text = _metrics(server.rest_port)
    assert content_type.startswith("text/plain")
    count = ":tensorflow:serving:request_count"
    assert _value(text, count, model_name="tiny", model_version="1", entrypoint="REST",
                  status="OK") == 2
    assert _value(text, count, model_name="tiny", model_version="1", entrypoint="REST",
                  status="INVALID_ARGUMENT") == 1
    assert _value(text, count, model_name="nope", model_version="", entrypoint="REST",
                  status="NOT_FOUND") == 1
    assert _value(text, count, model_name="tiny", model_version="1", entrypoint="GRPC",
                  status="OK") == 1
    latency = ":tensorflow:serving:request_latency"
    assert _value(text, latency + "_count", model_name="tiny", model_version="1",
                  entrypoint="REST") == 3
    assert _value(text, latency + "_bucket", model_name="tiny", model_version="1",
                  entrypoint="REST", le="+Inf") == 3
    assert _value(text, latency + "_sum", model_name="tiny", model_version="1",
                  entrypoint="REST") > 0


def test_histogram_buckets_are_cumulative():
    metrics = Metrics()
    for seconds in (0.0005, 0.003, 0.003, 20.0):
        metrics.observe("m", 1, "REST", "OK", seconds)
    text = metrics.render()
    bucket = ":tensorflow:serving:request_latency_bucket"
    assert _value(text, bucket, le="1000") == 1
    assert _value(text, bucket, le="5000") == 3
    assert _value(text, bucket, le="1e+07") == 3
    assert _value(text, bucket, le="+Inf") == 4
