"""Hostile clients against a self-started `tfxfer serve`: memory bound and a normal client's p99.

Serves a fresh export of an untrained tiny image model (MobileNet alpha 0.25 at
32 px, as `bench/load_test.py --export tiny`) and, while one normal client sends
one JPEG at a time, runs in turn:

    bomb-png     PNGs whose header declares 20000 x 20000 pixels (4 at once, 5 rounds)
    grpc-bomb    64-byte PredictRequests declaring [1, 10000, 10000, 3] (20)
    slow         2,000 connections that send half a request header and stay
    concurrent   1,000 clients each sending one good request at once

It prints, per attack, what the attackers got and the time it took, the server's
RSS (idle and peak, from /proc) and the normal client's p50/p99 during the attacks.

    python bench/hostile.py [--read-timeout 5]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np


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


def _start(base: Path, read_timeout: float, log: Path):
    command = [sys.executable, "-m", "tfxfer.cli", "serve", str(base), "--rest-port", "0",
               "--grpc-port", "0", "--read-timeout", str(read_timeout)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=open(log, "w"),
                               text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    for line in process.stdout:
        match = re.search(r"REST http://(\S+):(\d+) gRPC \S+:(\d+)", line)
        if match:
            return process, int(match[2]), int(match[3])
    raise RuntimeError(f"tfxfer serve did not start; see {log}")


def _post(port: int, body: bytes, timeout: float = 60) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/models/bench:predict",
                                     data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


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
    sockets = []
    for _ in range(2000):
        sock = socket.create_connection(("127.0.0.1", rest), timeout=30)
        sock.sendall(b"POST /v1/models/bench:predict HTTP/1.1\r\nHost: x\r\n")
        sockets.append(sock)
    start = time.monotonic()
    closed = 0
    for sock in sockets:
        sock.settimeout(max(0.1, args.read_timeout + 20 - (time.monotonic() - start)))
        try:
            if sock.recv(1) == b"":
                closed += 1
        except OSError:
            pass
        sock.close()
    return (f"2000 half-sent requests; {closed} closed by the server within "
            f"{time.monotonic() - start:.1f} s")


def attack_concurrent(rest: int, grpc_port: int, args) -> str:
    import aiohttp

    body = _body(args.jpeg)

    async def main():
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            async def one():
                async with session.post(f"http://127.0.0.1:{rest}/v1/models/bench:predict",
                                        data=body) as response:
                    await response.read()
                    return response.status
            return await asyncio.gather(*[one() for _ in range(1000)], return_exceptions=True)

    results = asyncio.run(main())
    ok = sum(r == 200 for r in results)
    other = sorted({r if isinstance(r, int) else type(r).__name__ for r in results} - {200},
                   key=str)
    return f"1000 concurrent clients; {ok} answered 200, {1000 - ok} other {other}"


ATTACKS = [attack_bomb_png, attack_grpc_bomb, attack_slow, attack_concurrent]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--read-timeout", type=float, default=5.0)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).parent))
    from load_test import export_untrained

    with tempfile.TemporaryDirectory(prefix="tfxfer-hostile-") as scratch:
        base = Path(scratch, "models")
        args.jpeg = export_untrained("tiny", base, "bench")
        process, rest, grpc_port = _start(base, args.read_timeout, Path(scratch, "serve.log"))
        try:
            normal_body = _body(args.jpeg)
            for _ in range(20):
                _post(rest, normal_body)
            idle = _rss_mb(process.pid)
            peak = [idle]
            latencies: list[float] = []
            failures = [0]
            stop = threading.Event()

            def watch():
                while not stop.wait(0.05):
                    peak[0] = max(peak[0], _rss_mb(process.pid))

            def normal_client():
                while not stop.is_set():
                    start = time.monotonic()
                    if _post(rest, normal_body) != 200:
                        failures[0] += 1
                    latencies.append(time.monotonic() - start)

            threads = [threading.Thread(target=watch), threading.Thread(target=normal_client)]
            for t in threads:
                t.start()
            for attack in ATTACKS:
                start = time.monotonic()
                before = len(latencies)
                result = attack(rest, grpc_port, args)
                during = np.array(latencies[before:]) * 1000
                p99 = f"{np.percentile(during, 99):.0f} ms" if len(during) else "n/a"
                print(f"{attack.__name__[7:]:<11} {time.monotonic() - start:6.1f} s  {result}; "
                      f"normal client p99 {p99} ({len(during)} requests); peak RSS so far "
                      f"{peak[0]:.0f} MB", flush=True)
            stop.set()
            for t in threads:
                t.join()
            all_ms = np.array(latencies) * 1000
            print(f"server RSS idle {idle:.0f} MB, peak {peak[0]:.0f} MB "
                  f"(+{peak[0] - idle:.0f} MB); normal client: {len(all_ms)} requests, "
                  f"{failures[0]} failed, p50 {np.percentile(all_ms, 50):.0f} ms, "
                  f"p99 {np.percentile(all_ms, 99):.0f} ms")
        finally:
            process.terminate()
            process.wait(30)


if __name__ == "__main__":
    main()
