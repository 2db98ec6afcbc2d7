"""Version management of `tfxfer serve`: swaps under load, failed loads, policies, unloads."""

import shutil
import threading
import time

import numpy as np
import pytest
import tensorflow as tf
from server_models import WARMUP_RECORDS, cleanup_built, http_request, publish, tiny_model
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tfxfer.serving.policy import VersionPolicy
from tfxfer.serving.server import Code, ModelManager, ModelServer, ServerConfig, ServingError
from tfxfer.serving.server.manager import State
from tfxfer.serving.server.predict import run_signature


@pytest.fixture(scope="module", autouse=True)
def _built_models():
    yield
    cleanup_built()


def _wait_until(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise TimeoutError(f"{what} not reached in {timeout} s")


def _states(manager, name="tiny"):
    return {s.version: s.state for s in manager.status(name)}


def test_swap_during_a_request_stream_fails_no_request(tmp_path):
    """Version 2 arrives while 5 clients (4 REST, 1 gRPC) send requests: none fails."""
    import grpc

    base = tmp_path / "models"
    publish(base / "tiny", 1, scale=1.0)
    tiny_model(2.0)  # built before the server starts: the swap itself is copy + rename
    config = ServerConfig(base, rest_port=0, grpc_port=0, poll_seconds=0.1)
    results, failures, lock, stop = [], [], threading.Lock(), threading.Event()
    limit = 4000  # a safety bound; a run stops 60 answers after the swap (a few hundred)

    def rest_client(port):
        while not stop.is_set() and len(results) < limit:
            try:
                status, body = http_request(port, "POST", "/v1/models/tiny:predict",
                                            {"instances": ["abcd"]})
            except OSError as err:
                status, body = None, repr(err)
            with lock:
                if status == 200:
                    row = body["predictions"][0]
                    results.append((row["score"], row["calls"]))
                else:
                    failures.append((status, body))

    def grpc_client(port):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "tiny"
        request.inputs["inputs"].CopyFrom(tf.make_tensor_proto([b"abcd"]))
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            while not stop.is_set() and len(results) < limit:
                try:
                    outputs = stub.Predict(request, timeout=30).outputs
                except grpc.RpcError as err:
                    with lock:
                        failures.append((err.code(), err.details()))
                    continue
                with lock:
                    results.append((outputs["score"].float_val[0], outputs["calls"].int64_val[0]))

    with ModelServer(config) as server:
        threads = [threading.Thread(target=rest_client, args=(server.rest_port,))
                   for _ in range(4)]
        threads.append(threading.Thread(target=grpc_client, args=(server.grpc_port,)))
        for thread in threads:
            thread.start()
        try:
            _wait_until(lambda: len(results) >= 60, what="60 answers from version 1")
            publish(base / "tiny", 2, scale=2.0)
            _wait_until(lambda: _states(server.manager).get(1) == State.END,
                        what="version 1 unloaded")
            swapped_at = len(results)
            _wait_until(lambda: len(results) >= swapped_at + 60,
                        what="60 answers after the swap")
        finally:
            stop.set()
            for thread in threads:
                thread.join()
    scores = [score for score, _ in results]
    assert failures == []
    assert set(scores) == {4.0, 8.0}  # len("abcd") * scale of version 1, then of version 2
    assert set(scores[swapped_at + 5:]) == {8.0}  # allow for answers in flight at the count
    # Version 2 was warmed up (its 3 warmup records ran) before its first request.
    assert min(calls for score, calls in results if score == 8.0) > WARMUP_RECORDS


def test_failed_version_is_reported_and_previous_keeps_serving(tmp_path):
    base = tmp_path / "models"
    publish(base / "tiny", 1, scale=1.0)
    config = ServerConfig(base, rest_port=0, grpc_port=0, poll_seconds=0.1)
    with ModelServer(config) as server:
        broken = base / "tiny" / ".tmp-broken"
        broken.mkdir()
        (broken / "saved_model.pb").write_bytes(b"not a SavedModel")
        broken.rename(base / "tiny" / "2")
        _wait_until(lambda: _states(server.manager).get(2) == State.END, what="v2 failed")
        status, body = http_request(server.rest_port, "GET", "/v1/models/tiny")
        assert status == 200
        by_version = {v["version"]: v for v in body["model_version_status"]}
        assert by_version["1"]["state"] == "AVAILABLE"
        assert by_version["2"]["state"] == "END"
        assert by_version["2"]["status"]["error_code"] != "OK"
        assert by_version["2"]["status"]["error_message"]
        time.sleep(0.3)  # several polls: the broken version is not retried while unchanged
        assert _states(server.manager) == {1: State.AVAILABLE, 2: State.END}
        status, body = http_request(server.rest_port, "POST", "/v1/models/tiny:predict",
                                    {"instances": ["abc"]})
        assert status == 200 and body["predictions"][0]["score"] == 3.0
        # A good version 2 replaces the broken one: it is loaded, and version 1 unloaded.
        shutil.rmtree(base / "tiny" / "2")
        publish(base / "tiny", 2, scale=2.0)
        _wait_until(lambda: _states(server.manager) == {1: State.END, 2: State.AVAILABLE},
                    what="good v2 loaded")
        status, body = http_request(server.rest_port, "POST", "/v1/models/tiny:predict",
                                    {"instances": ["abc"]})
        assert status == 200 and body["predictions"][0]["score"] == 6.0


def test_failed_warmup_fails_the_load(tmp_path):
    path = publish(tmp_path / "tiny", 1, scale=1.0)
    warmup = path / "assets.extra" / "tf_serving_warmup_requests"
    request = predict_pb2.PredictRequest()
    request.inputs["wrong_name"].CopyFrom(tf.make_tensor_proto([b"a"]))
    from tensorflow_serving.apis import prediction_log_pb2

    with tf.io.TFRecordWriter(str(warmup)) as writer:
        writer.write(prediction_log_pb2.PredictionLog(
            predict_log=prediction_log_pb2.PredictLog(request=request)).SerializeToString())
    manager = ModelManager(tmp_path)
    manager.poll()
    [status] = manager.status("tiny")
    assert status.state == State.END and status.error_code == Code.INVALID_ARGUMENT
    assert "Warmup failed" in status.error_message and "wrong_name" in status.error_message
    without_warmup = ModelManager(tmp_path, warmup=False)
    without_warmup.poll()
    assert without_warmup.available_versions("tiny") == [1]


def test_in_flight_requests_finish_on_the_old_version(tmp_path):
    publish(tmp_path / "tiny", 1, scale=1.0)
    manager = ModelManager(tmp_path, unload_timeout=30)
    manager.poll()
    with manager.handle("tiny") as old:
        publish(tmp_path / "tiny", 2, scale=2.0)
        poll = threading.Thread(target=manager.poll)
        poll.start()
        _wait_until(lambda: _states(manager) == {1: State.UNLOADING, 2: State.AVAILABLE},
                    what="v2 available, v1 unloading")
        with manager.handle("tiny") as new:
            assert new.version == 2  # new requests go to version 2 at once
        # The request holding version 1 still runs on it.
        outputs = run_signature(old, "", {"inputs": np.array([b"abc"], dtype=object)})
        assert outputs["score"].tolist() == [3.0]
        assert poll.is_alive()  # the unload waits for it
    poll.join(timeout=30)
    assert not poll.is_alive()
    assert _states(manager) == {1: State.END, 2: State.AVAILABLE}


def test_policies_and_removed_models(tmp_path):
    for version in (1, 2, 3):
        publish(tmp_path / "tiny", version, scale=1.0)
    policies = {VersionPolicy("all"): [1, 2, 3], VersionPolicy("latest", 2): [2, 3],
                VersionPolicy("specific", versions=(1, 3)): [1, 3], VersionPolicy(): [3]}
    for policy, versions in policies.items():
        manager = ModelManager(tmp_path, policy, warmup=False)
        manager.poll()
        assert manager.available_versions("tiny") == versions, policy
    with manager.handle("tiny") as servable:
        assert servable.version == 3
    with pytest.raises(ServingError, match=r"Specific\(tiny, 1\)") as error:
        with manager.handle("tiny", version=1):
            pass
    assert error.value.code == Code.NOT_FOUND
    shutil.rmtree(tmp_path / "tiny")
    manager.poll()
    assert manager.available_versions("tiny") == []
    with pytest.raises(ServingError, match="Servable not found"):
        with manager.handle("tiny"):
            pass
