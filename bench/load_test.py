"""Load test of a TF-Serving-compatible REST endpoint, with an optional version swap mid-run.

N concurrent clients send a bounded number of predict requests (row format,
one input each) and the script prints throughput, p50/p99 latency and the
error count. With --swap, when half the requests are done the newest version
directory of the model is copied to the next version number the way an
exporter publishes (temporary name, then one rename), so the server loads it,
switches traffic and unloads the old version while the clients keep going.

Against a server that is already running (tfxfer serve, or TF Serving itself):

    python bench/load_test.py --url http://127.0.0.1:8501 --model flowers --input photo.jpg

Self-started `tfxfer serve` on a base directory (needed for --swap):

    python bench/load_test.py --base saved_models --model flowers --input photo.jpg --swap

Self-started on a fresh export of an untrained tfxfer image classifier
("tiny": MobileNet alpha 0.25 at 32 px; "mobilenet_v2": MobileNetV2 at 224 px):

    python bench/load_test.py --export tiny --swap
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np

EXPORTS = {
    "tiny": {"backbone": "mobilenet", "image_size": 32, "backbone_kwargs": {"alpha": 0.25}},
    "mobilenet_v2": {"backbone": "mobilenet_v2", "image_size": 224},
}


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wall: float = 0.0
    swap: dict = field(default_factory=dict)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--url", help="REST endpoint of a running server, http://HOST:PORT")
    target.add_argument("--export", choices=sorted(EXPORTS),
                        help="export an untrained tfxfer image model and serve it (default tiny)")
    parser.add_argument("--base", help="base directory of the served models (for --swap; "
                                       "without --url, tfxfer serve is started on it)")
    parser.add_argument("--model", default="bench", help="model name (default bench)")
    parser.add_argument("--input", help="file sent as the input ({'b64': ...})")
    parser.add_argument("--text", help="text sent as the input (text models)")
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--swap", action="store_true",
                        help="publish a new version when half the requests are done")
    parser.add_argument("--warmup-requests", type=int, default=32,
                        help="untimed requests before the run (default 32)")
    parser.add_argument("--rest-threads", type=int, default=4,
                        help="--rest-threads of a self-started tfxfer serve")
    parser.add_argument("--poll-seconds", type=float, default=0.5,
                        help="--poll-seconds of a self-started tfxfer serve")
    parser.add_argument("--serve-arg", action="append", default=[], metavar="ARG",
                        help="extra argument of a self-started tfxfer serve, e.g. "
                             "--serve-arg=--enable-batching (repeatable)")
    args = parser.parse_args(argv)
    if not args.url and not args.base and not args.export:
        args.export = "tiny"
    if args.swap and not (args.base or args.export):
        parser.error("--swap needs the base directory: give --base (or --export)")
    return args


# ---------------------------------------------------------------- model and server


def export_untrained(kind: str, base: Path, name: str) -> bytes:
    """Exports an untrained classifier to BASE/NAME/1; returns a JPEG to send."""
    from tfxfer.config import ImageConfig, ModelConfig
    from tfxfer.image.model import build_image_classifier
    from tfxfer.serving.export import export_model
    from tfxfer.serving.export.samples import synthetic_images

    config = ModelConfig(image=ImageConfig(weights="none", **EXPORTS[kind]))
    model = build_image_classifier(config, num_classes=5)
    images = synthetic_images(count=2, size=(240, 320))
    export_model(model, [f"class_{i}" for i in range(5)], base, name, samples=images)
    return images[0]


def start_server(base: Path, args: argparse.Namespace, log_path: Path) -> tuple:
    """Starts `tfxfer serve BASE` on free ports; returns (process, REST url)."""
    command = [sys.executable, "-m", "tfxfer.cli", "serve", str(base), "--rest-port", "0",
               "--grpc-port", "0", "--rest-threads", str(args.rest_threads),
               "--poll-seconds", str(args.poll_seconds), *args.serve_arg]
    log = open(log_path, "w")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    for line in process.stdout:
        match = re.search(r"REST (http://\S+)", line)
        if match:
            return process, match.group(1)
    process.wait()
    raise RuntimeError(f"tfxfer serve exited with {process.returncode}; see {log_path}")


def publish_next_version(model_dir: Path) -> int:
    """Publishes a copy of the newest version as the next one, as an export does."""
    from tfxfer.serving.contract import list_versions
    from tfxfer.serving.export.layout import publish_copy

    newest = list_versions(model_dir)[-1]
    return int(publish_copy(model_dir / str(newest), model_dir).name)


# ---------------------------------------------------------------- load


async def _post(session, url, body) -> str | None:
    """None on success, else the error."""
    try:
        async with session.post(url, data=body,
                                headers={"Content-Type": "application/json"}) as response:
            payload = await response.read()
    except (aiohttp.ClientError, asyncio.TimeoutError) as err:
        return repr(err)
    if response.status != 200 or not payload.lstrip().startswith(b'{"predictions"'):
        return f"HTTP {response.status}: {payload[:200]!r}"
    return None


async def _watch_swap(session, status_url, new_version, stats, done) -> None:
    """Records when the new version becomes AVAILABLE and the old one END."""
    start = time.perf_counter()
    while not done.is_set():
        async with session.get(status_url) as response:
            body = await response.json()
        states = {int(v["version"]): v["state"] for v in body["model_version_status"]}
        if states.get(new_version) == "AVAILABLE" and "available_s" not in stats.swap:
            stats.swap["available_s"] = time.perf_counter() - start
        if states.get(new_version - 1) == "END" and "old_unloaded_s" not in stats.swap:
            stats.swap["old_unloaded_s"] = time.perf_counter() - start
        if "available_s" in stats.swap and "old_unloaded_s" in stats.swap:
            return
        await asyncio.sleep(0.05)


async def run_load(url: str, model: str, body: bytes, args, model_dir: Path | None) -> Stats:
    predict_url = f"{url}/v1/models/{model}:predict"
    stats, counter = Stats(), itertools.count()
    swap_at = args.requests // 2 if args.swap else -1
    watchers, done = [], asyncio.Event()
    connector = aiohttp.TCPConnector(limit=args.concurrency + 2)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        for _ in range(args.warmup_requests):
            await _post(session, predict_url, body)

        async def swap():
            new = await asyncio.get_running_loop().run_in_executor(
                None, publish_next_version, model_dir)
            stats.swap.update(version=new, at_request=swap_at)
            await _watch_swap(session, f"{url}/v1/models/{model}", new, stats, done)

        async def client():
            while (i := next(counter)) < args.requests:
                if i == swap_at:
                    watchers.append(asyncio.ensure_future(swap()))
                start = time.perf_counter()
                error = await _post(session, predict_url, body)
                stats.latencies.append(time.perf_counter() - start)
                if error is not None:
                    stats.errors.append(error)

        start = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(args.concurrency)))
        stats.wall = time.perf_counter() - start
        if watchers:
            try:
                await asyncio.wait_for(watchers[0], timeout=120)
            finally:
                done.set()
    return stats


def report(stats: Stats, args) -> None:
    latencies = np.array(stats.latencies) * 1000
    print(f"requests: {len(latencies)}  concurrency: {args.concurrency}  "
          f"errors: {len(stats.errors)}")
    print(f"throughput: {len(latencies) / stats.wall:.1f} requests/s  "
          f"({stats.wall:.1f} s wall)")
    print(f"latency ms: p50 {np.percentile(latencies, 50):.1f}  "
          f"p99 {np.percentile(latencies, 99):.1f}  max {latencies.max():.1f}")
    if stats.swap:
        print(f"swap: version {stats.swap['version']} published at request "
              f"{stats.swap['at_request']}; available after "
              f"{stats.swap.get('available_s', float('nan')):.2f} s, previous version "
              f"unloaded after {stats.swap.get('old_unloaded_s', float('nan')):.2f} s")
    for error in stats.errors[:5]:
        print(f"error: {error}")


def _input_body(args, default: bytes | None) -> bytes:
    if args.text is not None:
        value = args.text
    elif args.input:
        value = {"b64": base64.b64encode(Path(args.input).read_bytes()).decode("ascii")}
    elif default is not None:
        value = {"b64": base64.b64encode(default).decode("ascii")}
    else:
        raise SystemExit("Give --input FILE or --text TEXT")
    return json.dumps({"instances": [value]}).encode("utf-8")


def main(argv=None) -> int:
    args = parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="tfxfer-load-test-"))
    process = None
    try:
        default_input = None
        base = Path(args.base) if args.base else None
        if args.export:
            base = scratch / "models"
            print(f"exporting an untrained {args.export} model to {base}/{args.model}/1 ...")
            default_input = export_untrained(args.export, base, args.model)
        url = args.url
        if url is None:
            process, url = start_server(base, args, scratch / "serve.log")
            print(f"started tfxfer serve at {url} (log {scratch / 'serve.log'})")
        body = _input_body(args, default_input)
        model_dir = base / args.model if base is not None else None
        stats = asyncio.run(run_load(url.rstrip("/"), args.model, body, args, model_dir))
        report(stats, args)
        return 1 if stats.errors else 0
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=60)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
