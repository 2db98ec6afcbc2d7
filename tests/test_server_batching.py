"""`tfxfer serve --enable-batching`: concurrent requests share one graph call, over loopback."""

import base64
import io
import threading

import numpy as np
import pytest
from server_models import http_request

from tfxfer.serving.server import ModelServer, ServerConfig
from tfxfer.serving.server.batching_config import BatchingConfig

CLIENTS = 6


def _concurrent(port: int, bodies: list, signature_path="/v1/models/tiny:predict"):
    """Sends the bodies at once from one thread each; returns [(status, body)] in order."""
    answers = [None] * len(bodies)
    start = threading.Barrier(len(bodies))

    def send(i):
        start.wait()
        answers[i] = http_request(port, "POST", signature_path, bodies[i])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def _calls_now(port: int) -> int:
    """The model's graph-call count, read by one request on its own."""
    status, body = http_request(port, "POST", "/v1/models/tiny:predict", {"instances": ["x"]})
    assert status == 200, body
    return body["predictions"][0]["calls"]


@pytest.mark.parametrize("batching,most_calls,fewest_calls", [
    (BatchingConfig(max_batch_size=64, batch_timeout_micros=500_000), 2, 1),
    (None, CLIENTS, CLIENTS),
], ids=["batching", "no-batching"])
def test_concurrent_requests_share_graph_calls(tiny_base, batching, most_calls, fewest_calls):
    config = ServerConfig(tiny_base, rest_port=0, grpc_port=0, rest_threads=CLIENTS,
                          batching=batching)
    with ModelServer(config) as server:
        before = _calls_now(server.rest_port)
        texts = ["a" * (i + 1) for i in range(CLIENTS)]
        answers = _concurrent(server.rest_port, [{"instances": [t]} for t in texts])
        after = _calls_now(server.rest_port)
    assert [status for status, _ in answers] == [200] * CLIENTS
    # Each request gets its own rows back.
    assert [body["predictions"][0]["score"] for _, body in answers] == \
        [float(len(t)) for t in texts]
    # `calls` counts graph calls. It is read only by requests sent alone: a count read inside
    # concurrent calls may already include a neighbour's increment.
    graph_calls = after - before - 1
    assert fewest_calls <= graph_calls <= most_calls


def _png(value: int) -> dict:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full((4, 4, 3), value, np.uint8)).save(buffer, format="PNG")
    return {"b64": base64.b64encode(buffer.getvalue()).decode()}


def test_a_bad_request_in_a_batch_fails_alone(tiny_base):
    config = ServerConfig(tiny_base, rest_port=0, grpc_port=0, rest_threads=4,
                          batching=BatchingConfig(64, 500_000))
    bodies = [{"signature_name": "decode", "instances": [_png(v)]} for v in (10, 20, 30)]
    bodies.append({"signature_name": "decode",
                   "instances": [{"b64": base64.b64encode(b"nope").decode()}]})
    with ModelServer(config) as server:
        answers = _concurrent(server.rest_port, bodies)
    assert [status for status, _ in answers] == [200, 200, 200, 400]
    assert [body["predictions"][0] for _, body in answers[:3]] == [10.0, 20.0, 30.0]
    assert "Unknown image file format" in answers[3][1]["error"]


def test_batching_parameters_are_checked():
    with pytest.raises(ValueError, match="max_batch_size must be >= 1"):
        BatchingConfig(max_batch_size=0)
