"""Fair admission in `tfxfer serve`: a flooding client cannot starve another, refusals, bounds.

The scheduler is checked alone (asyncio, a one-thread pool whose work waits on
a gate), then over loopback on REST and gRPC: the server's single worker is
held by a gate until a flood from 127.0.0.1 and one request from 127.0.0.2 are
queued, so the order in which they then run is fixed by the scheduler alone,
not by timing. (All of 127.0.0.0/8 is loopback; gRPC reaches the server from
127.0.0.2 through a `Relay`.)
"""

import asyncio
import http.client
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
import tensorflow as tf
from server_models import Relay, cleanup_built, http_request, publish
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tfxfer import cli
from tfxfer.serving.server import ModelServer, ServerConfig
from tfxfer.serving.server.admission import AdmissionConfig, FairScheduler, client_identity
from tfxfer.serving.server.commands import config_from_args
from tfxfer.serving.server.errors import Code, ServingError
from tfxfer.serving.server.predict import run_signature

# ---------------------------------------------------------------- the scheduler alone


async def _flood_then_one(scheduler: FairScheduler, flood: dict[str, int], late: str,
                          gate: threading.Event, order: list[str]) -> None:
    """Queues every client's flood, then one request of `late`; opens the gate."""
    def work(name):
        order.append(name)
        assert gate.wait(30)

    tasks = [asyncio.create_task(scheduler.submit(client, lambda n=f"{client}{i}": work(n)))
             for client, count in flood.items() for i in range(count)]
    await asyncio.sleep(0)  # every task has started: one runs, the rest wait
    tasks.append(asyncio.create_task(scheduler.submit(late, lambda: work(f"{late}0"))))
    await asyncio.sleep(0)
    assert scheduler.queued == sum(flood.values())
    gate.set()
    await asyncio.gather(*tasks)


def test_a_flooding_client_cannot_starve_another():
    order: list[str] = []
    with ThreadPoolExecutor(1) as pool:
        scheduler = FairScheduler(pool, 1, AdmissionConfig(max_client_requests=0))
        asyncio.run(_flood_then_one(scheduler, {"a": 8}, "b", threading.Event(), order))
    # a0 held the worker; a1 waited first, then it is b's turn. First come, first
    # served would run b last (index 8).
    assert order == ["a0", "a1", "b0", "a2", "a3", "a4", "a5", "a6", "a7"]


def test_waiting_clients_take_turns():
    order: list[str] = []
    with ThreadPoolExecutor(1) as pool:
        scheduler = FairScheduler(pool, 1, AdmissionConfig(max_client_requests=0))
        asyncio.run(_flood_then_one(scheduler, {"a": 4, "b": 3}, "c", threading.Event(), order))
    assert order == ["a0", "a1", "b0", "c0", "a2", "b1", "a3", "b2"]


def _refusal(config: AdmissionConfig, clients: list[str]) -> ServingError:
    """The error of the first of `clients`' requests refused while a gate holds the worker."""
    async def main():
        gate = threading.Event()
        with ThreadPoolExecutor(1) as pool:
            scheduler = FairScheduler(pool, 1, config)
            tasks = [asyncio.create_task(scheduler.submit(c, lambda: gate.wait(30)))
                     for c in clients]
            await asyncio.sleep(0)
            refused = [t.exception() for t in tasks if t.done()]
            gate.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            assert (scheduler.queued, scheduler.in_progress("a")) == (0, 0)
            return refused

    refused = asyncio.run(main())
    assert len(refused) == 1, refused
    return refused[0]


def test_a_client_over_its_bound_is_refused_at_once():
    error = _refusal(AdmissionConfig(max_client_requests=3), ["a", "a", "a", "b", "a"])
    assert error.code == Code.RESOURCE_EXHAUSTED and error.http_status == 429
    assert "Too many requests from a: 3" in error.message
    assert "--max-client-requests" in error.message


def test_a_full_queue_is_refused_with_unavailable():
    error = _refusal(AdmissionConfig(max_client_requests=0, max_queued_requests=2),
                     ["a", "b", "c", "d"])  # one runs, two wait, the fourth is refused
    assert error.code == Code.UNAVAILABLE and error.http_status == 503
    assert "--max-queued-requests" in error.message


def test_a_cancelled_request_gives_up_its_place_and_turn():
    async def main():
        gate, order = threading.Event(), []
        with ThreadPoolExecutor(1) as pool:
            scheduler = FairScheduler(pool, 1, AdmissionConfig(max_client_requests=2))
            first = asyncio.create_task(scheduler.submit("a", lambda: gate.wait(30)))
            gone = asyncio.create_task(scheduler.submit("a", lambda: order.append("gone")))
            await asyncio.sleep(0)
            gone.cancel()
            await asyncio.gather(gone, return_exceptions=True)
            assert (scheduler.queued, scheduler.in_progress("a")) == (0, 1)
            # Its place is free again: a second request of "a" is admitted and runs.
            second = asyncio.create_task(scheduler.submit("a", lambda: order.append("next")))
            await asyncio.sleep(0)
            gate.set()
            await asyncio.gather(first, second)
            return order

    assert asyncio.run(main()) == ["next"]


@pytest.mark.parametrize("peer,client", [
    ("127.0.0.1", "127.0.0.1"),
    ("ipv4:127.0.0.2:5000", "127.0.0.2"),
    ("ipv6:[::1]:5000", "::1"),
    ("ipv6:%5B::1%5D:5000", "::1"),
    ("::ffff:10.0.0.7", "10.0.0.7"),
    ("ipv6:[::ffff:10.0.0.7]:80", "10.0.0.7"),
    ("unix:/tmp/socket", "unix:/tmp/socket"),
    (None, "unknown"),
])
def test_client_identity_is_the_ip_address(peer, client):
    assert client_identity(peer) == client


@pytest.mark.parametrize("field,value", [("max_client_requests", -1),
                                         ("max_queued_requests", 2.5),
                                         ("max_client_requests", True)])
def test_bounds_are_validated(field, value):
    with pytest.raises(ValueError, match=rf"{field} must be an integer >= 0.*Received: {value}"):
        AdmissionConfig(**{field: value})


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


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    publish(root / "tiny", 1, scale=1.0)
    yield root
    cleanup_built()


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
def gated(base):
    """A server with one worker per API and a per-client bound of CAP, behind a gate."""
    gate = _Gate()
    config = ServerConfig(base, rest_port=0, grpc_port=0, rest_threads=1, grpc_threads=1,
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
    # a0 held the worker, a1 waited first; then the other client's turn (FIFO: last).
    assert gate.order[:3] == ["a0", "a1", "b0"] and "a-over" not in gate.order
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
