"""Tiny SavedModels in TF Serving's layout, and small HTTP helpers, for the server tests.

The models are plain `tf.Module`s (not tfxfer exports), so the server is tested
on any SavedModel with signatures:

    serving_default  inputs [None] string -> score [None] float32 (len * scale),
                                             echo_bytes [None] string, upper [None] string,
                                             calls [None] int64 (requests seen, warmup included)
    floats           x [None, 3] float32  -> sum [None] float32 (row sum * scale)
    decode           images [None] string -> mean [None] float32 (mean pixel; decodes images)
"""

from __future__ import annotations

import contextlib
import http.client
import json
import shutil
import socket
import tempfile
import threading
from pathlib import Path

import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from tfxfer.serving.contract import warmup_path
from tfxfer.serving.export.layout import publish_copy

_BUILT: dict[float, Path] = {}


class _Tiny(tf.Module):
    def __init__(self, scale: float):
        super().__init__()
        self.scale = tf.Variable(float(scale))
        self.calls = tf.Variable(0, dtype=tf.int64)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def serve(self, inputs):
        calls = self.calls.assign_add(1)
        length = tf.cast(tf.strings.length(inputs), tf.float32)
        return {"score": length * self.scale, "echo_bytes": inputs,
                "upper": tf.strings.upper(inputs),
                "calls": tf.fill(tf.shape(inputs), calls)}

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    def floats(self, x):
        return {"sum": tf.reduce_sum(x, axis=1) * self.scale}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
    def decode(self, images):
        def mean(data):
            image = tf.io.decode_image(data, channels=3, expand_animations=False)
            return tf.reduce_mean(tf.cast(image, tf.float32))

        return {"mean": tf.map_fn(mean, images, fn_output_signature=tf.float32)}


def _warmup_request(texts: list[str]) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "tiny"
    request.inputs["inputs"].CopyFrom(tf.make_tensor_proto([t.encode() for t in texts]))
    return request


WARMUP_RECORDS = 3


def _write_warmup(path: Path) -> None:
    warmup_path(path).parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(warmup_path(path))) as w:
        for texts in (["a"], ["bb"], ["a", "bb"]):
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=_warmup_request(texts)))
            w.write(log.SerializeToString())


def tiny_model(scale: float) -> Path:
    """A SavedModel (with a warmup file) of the given scale, built once per session."""
    if scale not in _BUILT:
        module = _Tiny(scale)
        path = Path(tempfile.mkdtemp(prefix="tfxfer-tiny-")) / "model"
        tf.saved_model.save(module, str(path), signatures={
            "serving_default": module.serve, "floats": module.floats, "decode": module.decode})
        _write_warmup(path)
        _BUILT[scale] = path
    return _BUILT[scale]


def publish(model_dir: Path, version: int, scale: float) -> Path:
    """Publishes a tiny model as MODEL_DIR/VERSION with the exporter's own atomic publish."""
    return publish_copy(tiny_model(scale), model_dir, version)


def cleanup_built() -> None:
    for path in _BUILT.values():
        shutil.rmtree(path.parent, ignore_errors=True)
    _BUILT.clear()


def http_request(port: int, method: str, path: str, body=None, timeout: float = 30.0,
                 source: str | None = None, headers_out: dict | None = None):
    """(status, parsed JSON body) of one request to 127.0.0.1:port.

    Args:
        source: the client's address (any of 127.0.0.0/8), e.g. "127.0.0.2".
        headers_out: if given, receives the response headers.
    """
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=timeout, source_address=(source, 0) if source else None)
    try:
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        headers = {"Content-Type": "application/json"} if body is not None else {}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        if headers_out is not None:
            headers_out.update(response.getheaders())
        return response.status, json.loads(response.read())
    finally:
        connection.close()


class Relay:
    """A TCP relay on 127.0.0.1 whose connections to `target_port` come from `source`.

    The whole of 127.0.0.0/8 is loopback, so through the relay the server sees a
    second client address; grpcio's client cannot choose its source address itself.

        with Relay(server.grpc_port, "127.0.0.2") as relay:
            grpc.insecure_channel(f"127.0.0.1:{relay.port}")
    """

    def __init__(self, target_port: int, source: str = "127.0.0.2"):
        self.target_port = target_port
        self.source = source
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> Relay:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._listener.close()
        for sock in self._sockets:
            sock.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                inbound, _ = self._listener.accept()
            except TimeoutError:
                continue
            outbound = socket.create_connection(("127.0.0.1", self.target_port),
                                                source_address=(self.source, 0))
            self._sockets += [inbound, outbound]
            for src, dst in ((inbound, outbound), (outbound, inbound)):
                threading.Thread(target=_pump, args=(src, dst), daemon=True).start()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)
