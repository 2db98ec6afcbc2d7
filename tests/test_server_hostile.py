"""`tfxfer serve` against hostile clients: shape bombs, bad Unicode, dropped and slow clients.

One server (ephemeral ports, a small tensor budget and a 1 s read timeout) serves
the tiny SavedModel of `server_models`; every attack must be refused cheaply and
the server must keep answering good requests.
"""

import logging
import socket
import struct
import time

import grpc
import numpy as np
import pytest
from server_models import http_request
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tfxfer.serving.server import ModelServer, ServerConfig

MAX_ELEMENTS = 1000
READ_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def server(tiny_base):
    config = ServerConfig(tiny_base, rest_port=0, grpc_port=0, poll_seconds=0.2,
                          max_tensor_elements=MAX_ELEMENTS, read_timeout=READ_TIMEOUT)
    with ModelServer(config) as running:
        yield running


@pytest.fixture(scope="module")
def stub(server):
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        yield prediction_service_pb2_grpc.PredictionServiceStub(channel)


def _assert_serving(server):
    status, body = http_request(server.rest_port, "POST", "/v1/models/tiny:predict",
                                {"instances": ["abc"]})
    assert status == 200, body
    assert body["predictions"][0]["score"] == 3.0


def _proto(dtype, shape, **values) -> tensor_pb2.TensorProto:
    """A TensorProto whose declared shape says what the client wants, not what it sent."""
    proto = tensor_pb2.TensorProto(dtype=dtype, tensor_shape=tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in shape]))
    for field, items in values.items():
        getattr(proto, field).extend(items)
    return proto


def _grpc_predict(stub, name, proto, signature=""):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "tiny"
    request.model_spec.signature_name = signature
    request.inputs[name].CopyFrom(proto)
    return stub.Predict(request, timeout=30)


# ---------------------------------------------------------------- declared shapes (fixes 1, 4)

GRPC_BOMBS = [
    # A few bytes that declare (MAX_ELEMENTS + 2) * 3 floats: make_ndarray would repeat the value.
    ("float-bomb", "x", "floats", _proto(types_pb2.DT_FLOAT, [MAX_ELEMENTS + 2, 3],
                                         float_val=[1.0]), "elements"),
    # [2**40] strings from one value: a MemoryError (UNKNOWN) before the budget.
    ("string-2^40", "inputs", "", _proto(types_pb2.DT_STRING, [1 << 40], string_val=[b"a"]),
     "elements"),
    # numpy reads a negative dimension as -1 (infer): it must be refused, not reshaped.
    ("negative-dim", "inputs", "", _proto(types_pb2.DT_STRING, [-5], string_val=[b"a"] * 5),
     "negative dimension"),
]


@pytest.mark.parametrize("name,signature,proto,message", [b[1:] for b in GRPC_BOMBS],
                         ids=[b[0] for b in GRPC_BOMBS])
def test_grpc_declared_shape_is_checked_before_allocating(server, stub, name, signature, proto,
                                                          message):
    with pytest.raises(grpc.RpcError) as error:
        _grpc_predict(stub, name, proto, signature)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, error.value.details()
    assert message in error.value.details()
    assert "--max-tensor-elements" in error.value.details() or message == "negative dimension"
    ok = _grpc_predict(stub, "inputs", _proto(types_pb2.DT_STRING, [1], string_val=[b"ok"]))
    assert ok.outputs["score"].float_val == [2.0]
    _assert_serving(server)


REST_BOMBS = [
    ("row", {"instances": ["a"] * (MAX_ELEMENTS + 1)}),
    ("columnar", {"signature_name": "floats",
                  "inputs": np.zeros((MAX_ELEMENTS // 3 + 1, 3)).tolist()}),
]


@pytest.mark.parametrize("body", [b[1] for b in REST_BOMBS], ids=[b[0] for b in REST_BOMBS])
def test_rest_tensor_over_the_element_budget_gets_400(server, body):
    status, answer = http_request(server.rest_port, "POST", "/v1/models/tiny:predict", body)
    assert status == 400, answer
    assert "--max-tensor-elements" in answer["error"]
    _assert_serving(server)


# ---------------------------------------------------------------- bad Unicode (fix 3)


@pytest.mark.parametrize("text", ['{"instances":["\\ud83d"]}', '{"inputs":["a\\udc00b"]}'])
def test_lone_surrogate_gets_400(server, text):
    status, answer = http_request(server.rest_port, "POST", "/v1/models/tiny:predict", text)
    assert status == 400, answer
    assert "not valid Unicode" in answer["error"]
    _assert_serving(server)


# ---------------------------------------------------------------- dropped and slow clients


def _connect(server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.rest_port), timeout=10)
    return sock


_HEADERS = (b"POST /v1/models/tiny:predict HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n")


def test_client_disconnecting_mid_body_is_one_line_not_a_traceback(server, caplog):
    caplog.set_level(logging.INFO)
    for _ in range(3):
        sock = _connect(server)
        sock.sendall(_HEADERS + b'{"instances"')
        time.sleep(0.1)
        sock.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and sum(
            "disconnected" in r.getMessage() for r in caplog.records) < 3:
        time.sleep(0.05)
    with_traceback = [r for r in caplog.records if r.exc_info]
    assert not with_traceback, [r.getMessage() for r in with_traceback]
    dropped = [r for r in caplog.records if "Client disconnected" in r.getMessage()]
    assert len(dropped) == 3 and all("\n" not in r.getMessage() for r in dropped)
    _assert_serving(server)


def _wait_closed(sock: socket.socket, timeout: float) -> tuple[float, bytes]:
    """(seconds until the server closed the connection, what it sent before)."""
    start = time.monotonic()
    sock.settimeout(timeout)
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except TimeoutError:
        pytest.fail(f"the server kept a half-sent request open {timeout} s; "
                    f"sent {received[:300]!r}")
    return time.monotonic() - start, received


def test_half_sent_headers_are_dropped_after_the_read_timeout(server):
    sock = _connect(server)
    sock.sendall(b"POST /v1/models/tiny:predict HTTP/1.1\r\nHost: x\r\n")  # no blank line
    elapsed, _ = _wait_closed(sock, READ_TIMEOUT + 9)
    sock.close()
    assert elapsed < READ_TIMEOUT + 5
    _assert_serving(server)


def test_half_sent_body_gets_408_after_the_read_timeout(server):
    sock = _connect(server)
    sock.sendall(_HEADERS + b'{"instances"')
    elapsed, received = _wait_closed(sock, READ_TIMEOUT + 9)
    sock.close()
    assert received.startswith(b"HTTP/1.1 408"), received[:200]
    assert b"--read-timeout" in received
    assert elapsed < READ_TIMEOUT + 5
    _assert_serving(server)


# ---------------------------------------------------------------- slow gRPC clients


def _h2_frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return (struct.pack(">I", len(payload))[1:] + bytes([kind, flags])
            + struct.pack(">I", stream) + payload)


def _literal(name: bytes, value: bytes) -> bytes:  # HPACK literal, not indexed, no Huffman
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _h2_frame(4, 0, 0, b"")  # + SETTINGS
_PREDICT_HEADERS = b"".join(_literal(n, v) for n, v in [
    (b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"x"),
    (b":path", b"/tensorflow.serving.PredictionService/Predict"),
    (b"content-type", b"application/grpc"), (b"te", b"trailers")])
# A Predict call whose message declares 100 bytes and sends 10 (no END_STREAM).
_HALF_SENT_CALL = (_h2_frame(1, 0x4, 1, _PREDICT_HEADERS)
                   + _h2_frame(0, 0, 1, b"\x00" + struct.pack(">I", 100) + b"x" * 10))


def _slow_h2_client(port: int, stage: str) -> socket.socket:
    """A connection that stops after `stage`: "silent" (nothing), "no-call" (the HTTP/2
    preface) or "half-sent-call"."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if stage != "silent":
        sock.sendall(_H2_PREFACE + (_HALF_SENT_CALL if stage == "half-sent-call" else b""))
    return sock


def _h2_seconds_open(sock: socket.socket, timeout: float, answer: bool) -> float:
    """Seconds until the server closes; with `answer`, its SETTINGS and PINGs are answered
    meanwhile, as a live client does (grpcio drops one that leaves PINGs unanswered)."""
    start = time.monotonic()
    sock.settimeout(timeout)

    def read(n: int) -> bytes:
        data = sock.recv(n, socket.MSG_WAITALL) if n else b""
        if len(data) < n:
            raise EOFError
        return data

    try:
        while True:
            header = read(9)
            payload = read(int.from_bytes(header[:3], "big"))
            if answer and header[3] in (4, 6) and not header[4] & 0x1:  # SETTINGS, PING
                sock.sendall(_h2_frame(header[3], 0x1, 0, payload if header[3] == 6 else b""))
    except (EOFError, ConnectionResetError):
        return time.monotonic() - start
    except TimeoutError:
        pytest.fail(f"the server kept the connection open {timeout} s")


@pytest.fixture(scope="module")
def grpc_aged(tiny_base):
    config = ServerConfig(tiny_base, rest_port=0, grpc_port=0, read_timeout=READ_TIMEOUT,
                          grpc_max_connection_age=1.0, warmup=False)
    with ModelServer(config) as running:
        yield running


@pytest.mark.parametrize("stage", ["silent", "no-call", "half-sent-call"])
def test_slow_grpc_clients_are_disconnected(grpc_aged, stage):
    # Silent: the handshake timeout; no call: the idle timeout (both --read-timeout);
    # a half-sent call: the connection's age (GOAWAY) plus --read-timeout of grace.
    # grpcio's defaults keep all three open (120 s, forever, forever).
    sock = _slow_h2_client(grpc_aged.grpc_port, stage)
    try:
        assert _h2_seconds_open(sock, 30, answer=stage != "silent") < 20
    finally:
        sock.close()
    with grpc.insecure_channel(f"127.0.0.1:{grpc_aged.grpc_port}") as channel:
        ok = _grpc_predict(prediction_service_pb2_grpc.PredictionServiceStub(channel), "inputs",
                           _proto(types_pb2.DT_STRING, [1], string_val=[b"ok"]))
    assert ok.outputs["score"].float_val == [2.0]


# ---------------------------------------------------------------- start-up checks (fixes 6, 7)


def test_version_label_for_a_missing_version_is_refused(tiny_base):
    config = ServerConfig(tiny_base, rest_port=0, grpc_port=0,
                          version_labels={"tiny": {"stable": 5}})
    with pytest.raises(ValueError, match=r"tiny:stable=5.*not available.*available: 1"):
        ModelServer(config).start()


def test_a_single_model_directory_is_served_as_that_model(tiny_base):
    with ModelServer(ServerConfig(tiny_base / "tiny", rest_port=0, grpc_port=0)) as running:
        assert running.manager.model_names() == ["tiny"]
        assert running.manager.available_versions("tiny") == [1]
        _assert_serving(running)


def test_a_single_model_directory_without_a_usable_name_says_what_to_pass(tmp_path):
    (tmp_path / "7" / "1").mkdir(parents=True)
    (tmp_path / "7" / "1" / "saved_model.pb").write_bytes(b"")
    with pytest.raises(ValueError, match="Pass its parent directory, or --model-name"):
        ServerConfig(tmp_path / "7", rest_port=0, grpc_port=0)
    config = ServerConfig(tmp_path / "7", rest_port=0, grpc_port=0, model_name="seven")
    assert config.model_name == "seven"
