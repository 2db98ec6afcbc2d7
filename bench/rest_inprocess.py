"""In-process rates of `tfxfer serve`'s REST handler, without sockets or an event loop.

Exports an untrained tfxfer image classifier (as `bench/load_test.py --export`),
loads it with the server's own `ModelManager`, and times three arms on one
320x240 JPEG per request:

    signature    the servable's `serving_default` called directly (decode, resize,
                 network, top-k), one thread
    handler x1   `RestApi.answer` on a row-format predict body (JSON parse, base64,
                 input checks, inference, JSON write), one thread
    handler xN   the same on a pool of --threads threads (the server's default is 4)

Each arm is warmed up first; then the arms alternate for --rounds rounds and the
median rate of each is printed, with the load average (the machine may be shared).

    python bench/rest_inprocess.py                  # tiny: MobileNet alpha 0.25, 32 px
    python bench/rest_inprocess.py --export mobilenet_v2
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from load_test import EXPORTS, export_untrained

MODEL = "bench"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--export", choices=sorted(EXPORTS), default="tiny")
    parser.add_argument("--requests", type=int, default=200, help="requests per arm and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=4)
    return parser.parse_args(argv)


def _rate(run, count: int) -> float:
    start = time.perf_counter()
    run(count)
    return count / (time.perf_counter() - start)


def main(argv=None) -> int:
    args = parse_args(argv)
    import tensorflow as tf

    from tfxfer.serving.server.admission import AdmissionConfig, FairScheduler
    from tfxfer.serving.server.manager import ModelManager
    from tfxfer.serving.server.rest import RestApi, parse_route

    scratch = Path(tempfile.mkdtemp(prefix="tfxfer-rest-bench-"))
    manager = ModelManager(scratch, warmup=True)
    pool = ThreadPoolExecutor(args.threads)
    try:
        jpeg = export_untrained(args.export, scratch, MODEL)
        manager.poll()
        api = RestApi(manager, FairScheduler(pool, args.threads, AdmissionConfig()),
                      max_request_bytes=16 * 1024 * 1024)
        route = parse_route("POST", f"/v1/models/{MODEL}:predict")
        body = json.dumps({"instances": [{"b64": base64.b64encode(jpeg).decode()}]}).encode()
        batch = tf.constant([jpeg])

        def signature(count):
            with manager.handle(MODEL) as servable:
                function = servable.functions["serving_default"]
                for _ in range(count):
                    function(inputs=batch)

        def handler(count):
            for _ in range(count):
                api.answer(route, body)

        def handler_pool(count):
            for future in [pool.submit(api.answer, route, body) for _ in range(count)]:
                future.result()

        arms = {"signature": signature, "handler x1": handler,
                f"handler x{args.threads}": handler_pool}
        for run in arms.values():
            run(max(10, args.requests // 10))
        rates = {name: [] for name in arms}
        for _ in range(args.rounds):
            for name, run in arms.items():
                rates[name].append(_rate(run, args.requests))
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"{args.export}: {args.requests} requests x {args.rounds} rounds per arm, "
              f"alternating; load average {load} (shared machine)")
        for name, values in rates.items():
            print(f"  {name:<12} median {statistics.median(values):7.1f} /s "
                  f"(rounds: {', '.join(f'{v:.0f}' for v in values)})")
    finally:
        pool.shutdown()
        manager.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
