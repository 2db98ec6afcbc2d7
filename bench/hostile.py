"""Hostile clients against a self-started `tfxfer serve`: memory bound and a normal client's p99.

Serves a fresh export of an untrained tiny image model (MobileNet alpha 0.25 at
32 px, as `bench/load_test.py --export tiny`) and, while one normal client sends
one JPEG at a time over REST from another address than the attackers (it comes
from 127.0.0.2, they from 127.0.0.1: all of 127.0.0.0/8 is loopback, so this is
"one attacker, other users"; it runs in its own process, so the attackers' work
in this one does not slow its measurement), runs in turn:

    bomb-png     PNGs whose header declares 20000 x 20000 pixels (4 at once, 5 rounds)
    grpc-bomb    64-byte PredictRequests declaring [1, 10000, 10000, 3] (20)
    slow         2,000 connections that send half a request header and stay
    grpc-slow    2,000 gRPC connections that send half a Predict call and stay
    burst        1,000 clients each sending one good request at once
    flood        1,000 clients sending good requests back to back for --flood-seconds,
                 ignoring refusals (429) and Retry-After

It prints, per attack, what the attackers got, the time it took, the server's
peak RSS during it (from /proc) and the normal client's p50/p99 during it.

    python bench/hostile.py [--read-timeout 5] [--grpc-max-connection-age 10]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import http.client
import io
import json
import multiprocessing
import os
import re
import selectors
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

NORMAL_SOURCE = "127.0.0.2"
PREDICT_PATH = "/v1/models/bench:predict"


def _png_bomb() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", 20000, 20000)
    return bytes(data)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _start(base: Path, args, log: Path):
    command = [sys.executable, "-m", "tfxfer.cli", "serve", str(base), "--rest-port", "0",
               "--grpc-port", "0", "--read-timeout", str(args.read_timeout),
               "--grpc-max-connection-age", str(args.grpc_max_connection_age)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=open(log, "w"),
                               text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    for line in process.stdout:
        match = re.search(r"REST http://(\S+):(\d+) gRPC \S+:(\d+)", line)
        if match:
            return process, int(match[2]), int(match[3])
    raise RuntimeError(f"tfxfer serve did not start; see {log}")


def _post(port: int, body: bytes, timeout: float = 60, source: str | None = None) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout,
                                            source_address=(source, 0) if source else None)
    try:
        connection.request("POST", PREDICT_PATH, body=body,
                           headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def _normal_client(port: int, body: bytes, stop, results) -> None:
    """In its own process: one request at a time from NORMAL_SOURCE until `stop` is set."""
    while not stop.is_set():
        start = time.monotonic()
        try:
            status = _post(port, body, source=NORMAL_SOURCE)
        except OSError as err:
            status = type(err).__name__
        results.put((start, time.monotonic() - start, status))


def _body(data: bytes) -> bytes:
    return json.dumps({"instances": [{"b64": base64.b64encode(data).decode()}]}).encode()


def _parallel(n: int, work) -> list:
    results = [None] * n

    def run(i):
        results[i] = work(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def attack_bomb_png(rest: int, grpc_port: int, args) -> str:
    body = _body(_png_bomb())
    statuses = []
    for _ in range(5):
        statuses += _parallel(4, lambda i: _post(rest, body))
    return f"statuses {sorted(set(statuses))} x{len(statuses)}"


def attack_grpc_bomb(rest: int, grpc_port: int, args) -> str:
    import grpc
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "bench"
    request.model_spec.signature_name = "serving_pixels"
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_UINT8, int_val=[7],
                                   tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[
                                       tensor_shape_pb2.TensorShapeProto.Dim(size=d)
                                       for d in (1, 10000, 10000, 3)]))
    request.inputs["images"].CopyFrom(proto)
    codes = []
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for _ in range(20):
            try:
                stub.Predict(request, timeout=60)
                codes.append("OK")
            except grpc.RpcError as err:
                codes.append(err.code().name)
    return f"{request.ByteSize()}-byte request; codes {sorted(set(codes))} x{len(codes)}"


def attack_slow(rest: int, grpc_port: int, args) -> str:
    def half_sent(sock: socket.socket) -> None:
        sock.sendall(b"POST /v1/models/bench:predict HTTP/1.1\r\nHost: x\r\n")

    return _hold_half_sent(rest, half_sent, args.read_timeout + 20, "half-sent request headers",
                           answer_h2=False)


def _h2_frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return (struct.pack(">I", len(payload))[1:] + bytes([kind, flags])
            + struct.pack(">I", stream) + payload)


def _half_sent_grpc_call(sock: socket.socket) -> None:
    """HTTP/2 preface and SETTINGS, a Predict call's headers, 10 of its message's 100 bytes."""
    def literal(name: bytes, value: bytes) -> bytes:  # HPACK literal, no Huffman
        return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value

    headers = b"".join(literal(n, v) for n, v in [
        (b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"x"),
        (b":path", b"/tensorflow.serving.PredictionService/Predict"),
        (b"content-type", b"application/grpc"), (b"te", b"trailers")])
    sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _h2_frame(4, 0, 0, b"")
                 + _h2_frame(1, 0x4, 1, headers)
                 + _h2_frame(0, 0, 1, b"\x00" + struct.pack(">I", 100) + b"x" * 10))


def attack_grpc_slow(rest: int, grpc_port: int, args) -> str:
    wait = args.grpc_max_connection_age * 1.1 + args.read_timeout + 20
    return _hold_half_sent(grpc_port, _half_sent_grpc_call, wait, "half-sent gRPC calls",
                           answer_h2=True)


def _answer_h2(sock: socket.socket, buffer: bytes) -> bytes:
    """Acknowledges the server's SETTINGS and PINGs, as a live client does (grpcio drops
    one that does not, after 60 s); returns what is left of an incomplete frame."""
    while len(buffer) >= 9 and len(buffer) >= 9 + int.from_bytes(buffer[:3], "big"):
        size, kind, flags = int.from_bytes(buffer[:3], "big"), buffer[3], buffer[4]
        payload, buffer = buffer[9:9 + size], buffer[9 + size:]
        if kind in (4, 6) and not flags & 0x1:
            sock.sendall(_h2_frame(kind, 0x1, 0, payload if kind == 6 else b""))
    return buffer


def _hold_half_sent(port: int, half_send, wait: float, what: str, answer_h2: bool,
                    count: int = 2000) -> str:
    """Opens `count` connections that half-send; counts those the server closes in `wait` s."""
    selector = selectors.DefaultSelector()
    buffers: dict[socket.socket, bytes] = {}
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        half_send(sock)
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
        buffers[sock] = b""
    start = time.monotonic()
    closed, last = 0, 0.0
    while buffers and time.monotonic() - start < wait:
        for key, _ in selector.select(timeout=0.5):
            sock = key.fileobj
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                data = b""
            if not data:
                selector.unregister(sock)
                sock.close()
                del buffers[sock]
                closed, last = closed + 1, time.monotonic() - start
            elif answer_h2:
                buffers[sock] = _answer_h2(sock, buffers[sock] + data)
    for sock in buffers:
        sock.close()
    selector.close()
    return f"{count} {what}; {closed} closed by the server within {last:.1f} s"


async def _session_posts(rest: int, body: bytes, clients: int, deadline: float | None):
    """`clients` concurrent clients; each sends once, or until `deadline` back to back."""
    import aiohttp

    statuses: Counter = Counter()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def client():
            while True:
                try:
                    async with session.post(f"http://127.0.0.1:{rest}{PREDICT_PATH}",
                                            data=body) as response:
                        await response.read()
                        statuses[response.status] += 1
                except aiohttp.ClientError as err:
                    statuses[type(err).__name__] += 1
                if deadline is None or time.monotonic() >= deadline:
                    return

        await asyncio.gather(*[client() for _ in range(clients)])
    return statuses


def _statuses(statuses: Counter) -> str:
    return ", ".join(f"{count} {status}" for status, count in sorted(statuses.items(), key=str))


def attack_burst(rest: int, grpc_port: int, args) -> str:
    statuses = asyncio.run(_session_posts(rest, _body(args.jpeg), 1000, None))
    return f"1000 clients at once: {_statuses(statuses)}"


def attack_flood(rest: int, grpc_port: int, args) -> str:
    deadline = time.monotonic() + args.flood_seconds
    statuses = asyncio.run(_session_posts(rest, _body(args.jpeg), 1000, deadline))
    total = sum(statuses.values())
    return (f"1000 clients for {args.flood_seconds:g} s: {total} requests "
            f"({total / args.flood_seconds:.0f}/s): {_statuses(statuses)}")


ATTACKS = [attack_bomb_png, attack_grpc_bomb, attack_slow, attack_grpc_slow, attack_burst,
           attack_flood]


def _uptime() -> str:
    return "load average " + " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--read-timeout", type=float, default=5.0)
    parser.add_argument("--grpc-max-connection-age", type=float, default=10.0)
    parser.add_argument("--flood-seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).parent))
    from load_test import export_untrained

    with tempfile.TemporaryDirectory(prefix="tfxfer-hostile-") as scratch:
        base = Path(scratch, "models")
        args.jpeg = export_untrained("tiny", base, "bench")
        process, rest, grpc_port = _start(base, args, Path(scratch, "serve.log"))
        spawn = multiprocessing.get_context("spawn")  # no TensorFlow in the client
        stop, results = spawn.Event(), spawn.Queue()
        try:
            normal_body = _body(args.jpeg)
            for _ in range(20):
                _post(rest, normal_body, source=NORMAL_SOURCE)
            idle = _rss_mb(process.pid)
            peaks = {"all": idle, "attack": idle}
            watching = threading.Event()

            def watch():
                while not watching.wait(0.05):
                    rss = _rss_mb(process.pid)
                    peaks["all"], peaks["attack"] = max(peaks["all"], rss), max(peaks["attack"],
                                                                                   rss)

            watcher = threading.Thread(target=watch)
            watcher.start()
            client = spawn.Process(target=_normal_client, args=(rest, normal_body, stop, results))
            client.start()
            print(f"server RSS idle {idle:.0f} MB; {_uptime()}", flush=True)
            latencies: list[tuple] = []
            for attack in ATTACKS:
                time.sleep(1.0)
                peaks["attack"] = _rss_mb(process.pid)
                start = time.monotonic()
                result = attack(rest, grpc_port, args)
                end = time.monotonic()
                while not results.empty():
                    latencies.append(results.get())
                during = np.array([s for t, s, _ in latencies if start <= t <= end]) * 1000
                quantiles = (f"p50 {np.percentile(during, 50):.0f} ms, p99 "
                             f"{np.percentile(during, 99):.0f} ms" if len(during) else "n/a")
                print(f"{attack.__name__[7:]:<10} {end - start:6.1f} s  {result}; normal client "
                      f"{quantiles} ({len(during)} requests); peak RSS {peaks['attack']:.0f} MB "
                      f"(+{peaks['attack'] - idle:.0f}); {_uptime()}", flush=True)
            stop.set()
            client.join(120)
            while not results.empty():
                latencies.append(results.get())
            watching.set()
            watcher.join()
            all_ms = np.array([s for _, s, _ in latencies]) * 1000
            failed = Counter(status for _, _, status in latencies if status != 200)
            print(f"server RSS idle {idle:.0f} MB, peak {peaks['all']:.0f} MB "
                  f"(+{peaks['all'] - idle:.0f} MB); normal client: {len(all_ms)} requests, "
                  f"failed {dict(failed) or 0}, p50 {np.percentile(all_ms, 50):.0f} ms, "
                  f"p99 {np.percentile(all_ms, 99):.0f} ms; {_uptime()}")
        finally:
            stop.set()
            process.terminate()
            process.wait(30)


if __name__ == "__main__":
    main()
