"""Fair admission in `tfxfer serve` over loopback: a flood cannot starve another client.

On REST and gRPC, the server's single worker is held by a gate until a flood
from 127.0.0.1 and one request from 127.0.0.2 are queued, so the order in which
they then run is fixed by the scheduler alone, not by timing. (All of
127.0.0.0/8 is loopback; gRPC reaches the server from 127.0.0.2 through a
`Relay`.) The scheduler alone: tests/test_server_admission.py.
"""

import http.client
import threading
import time

import grpc
import pytest
import tensorflow as tf
from server_models import Relay, http_request
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tfxfer import cli
from tfxfer.serving.server import ModelServer, ServerConfig
from tfxfer.serving.server.admission import AdmissionConfig
from tfxfer.serving.server.commands import config_from_args
from tfxfer.serving.server.predict import run_signature


def test_bounds_come_from_the_command_line(tmp_path):
    parse = cli.build_parser().parse_args
    config = config_from_args(parse(["serve", str(tmp_path), "--max-client-requests", "3",
                                     "--max-queued-requests", "0",
                                     "--grpc-max-connection-age", "7.5"]))
    assert config.admission == AdmissionConfig(3, 0)
    assert config.grpc_max_connection_age == 7.5
    defaults = config_from_args(parse(["serve", str(tmp_path)]))
    assert defaults.admission == AdmissionConfig(64, 1024)
    with pytest.raises(ValueError, match="max_client_requests must be an integer >= 0"):
        config_from_args(parse(["serve", str(tmp_path), "--max-client-requests", "-2"]))
    assert cli.main(["serve", str(tmp_path), "--max-queued-requests", "-1"]) == 2


# ---------------------------------------------------------------- over loopback

CAP = 5
FLOOD = "127.0.0.1"
OTHER = "127.0.0.2"


class _Gate:
    """Holds every inference until opened, recording the first input of each."""

    def __init__(self):
        self.open = threading.Event()
        self.order: list[str] = []

    def run(self, servable, signature_name, inputs, *args):
        first = inputs["inputs"].flat[0]
        self.order.append(first.decode() if isinstance(first, bytes) else str(first))
        assert self.open.wait(60)
        return run_signature(servable, signature_name, inputs, *args)


@pytest.fixture
def gated(tiny_base):
    """A server with one worker per API and a per-client bound of CAP, behind a gate."""
    gate = _Gate()
    config = ServerConfig(tiny_base, rest_port=0, grpc_port=0, rest_threads=1, grpc_threads=1,
                          warmup=False, admission=AdmissionConfig(max_client_requests=CAP))
    server = ModelServer(config)
    server._run = gate.run  # the APIs are built at start() with this run function
    with server:
        yield server, gate
        gate.open.set()


def _wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in 30 s")
        time.sleep(0.01)


def _in_threads(calls) -> tuple[list, list[threading.Thread]]:
    results = [None] * len(calls)

    def call(i):
        results[i] = calls[i]()

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    return results, threads


def _rest(port: int, text: str, source: str, headers: dict | None = None):
    return http_request(port, "POST", "/v1/models/tiny:predict", {"instances": [text]},
                        source=source, headers_out=headers)


def test_rest_flood_is_bounded_and_cannot_starve_another_client(gated):
    server, gate = gated
    scheduler, port = server.rest_scheduler, server.rest_port
    flood, threads = _in_threads([lambda i=i: _rest(port, f"a{i}", FLOOD) for i in range(CAP)])
    _wait_until(lambda: scheduler.queued == CAP - 1, "the flood queued")
    # Over the bound: refused at once, while the worker is still held.
    headers: dict = {}
    status, body = _rest(port, "a-over", FLOOD, headers)
    assert status == 429, body
    assert f"Too many requests from {FLOOD}: {CAP}" in body["error"]
    assert "--max-client-requests" in body["error"] and headers["Retry-After"] == "1"
    other, other_threads = _in_threads([lambda: _rest(port, "b0", OTHER)])
    _wait_until(lambda: scheduler.queued == CAP, "the other client queued")
    gate.open.set()
    for thread in threads + other_threads:
        thread.join()
    assert [s for s, _ in flood + other] == [200] * (CAP + 1)
    assert other[0][1]["predictions"][0]["score"] == 2.0
    # One flood request held the worker, one waited first; then the other client's turn
    # (first come, first served: last).
    assert gate.order.index("b0") == 2 and "a-over" not in gate.order
    assert scheduler.queued == 0 and scheduler.in_progress(FLOOD) == 0
    # The refusal is counted, with no version (none answered).
    assert ('{model_name="tiny",model_version="",API="predict",entrypoint="REST",'
            'status="RESOURCE_EXHAUSTED"} 1') in _metrics_text(port)


def _metrics_text(port: int) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", "/monitoring/prometheus/metrics")
        return connection.getresponse().read().decode()
    finally:
        connection.close()


def _predict_request(text: str) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "tiny"
    request.inputs["inputs"].CopyFrom(tf.make_tensor_proto([text.encode()]))
    return request


def test_grpc_flood_is_bounded_and_cannot_starve_another_client(gated):
    server, gate = gated
    scheduler = server.grpc_scheduler
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel, \
            Relay(server.grpc_port, OTHER) as relay, \
            grpc.insecure_channel(f"127.0.0.1:{relay.port}") as other_channel:
        predict = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict
        flood = [predict.future(_predict_request(f"a{i}"), timeout=60) for i in range(CAP)]
        _wait_until(lambda: scheduler.queued == CAP - 1, "the flood queued")
        with pytest.raises(grpc.RpcError) as refused:
            predict(_predict_request("a-over"), timeout=60)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert f"Too many requests from {FLOOD}: {CAP}" in refused.value.details()
        assert "--max-client-requests" in refused.value.details()
        other = prediction_service_pb2_grpc.PredictionServiceStub(other_channel).Predict.future(
            _predict_request("b0"), timeout=60)
        _wait_until(lambda: scheduler.queued == CAP, "the other client queued")
        gate.open.set()
        answers = [f.result() for f in flood] + [other.result()]
    assert [list(a.outputs["score"].float_val) for a in answers] == [[2.0]] * (CAP + 1)
    # One flood call held the worker, one waited first; then the other client's turn.
    assert gate.order.index("b0") == 2 and "a-over" not in gate.order
    assert scheduler.queued == 0 and scheduler.in_progress(FLOOD) == 0
