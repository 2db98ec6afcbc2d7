"""Fair comparisons for the benchmarks: every arm in a fresh process, arms alternated.

A benchmark script defines its arms and a worker that runs one arm and prints a JSON
object on its last stdout line. `compare` first warms up (reads every file of the
data folder so that the page cache favours no arm, and imports TensorFlow once so its
libraries are in memory), then runs the arms `repeats` times, rotating the order
(A B, B A, A B, ...), and returns every result with the order it ran in and the load
average when it ended. Fresh processes keep one arm's tracing, caches and oneDNN
setting from helping the other.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def warm_up(data: str | None) -> None:
    """Reads every file under `data` once and imports TensorFlow in a throwaway process."""
    if data:
        for path in Path(data).rglob("*"):
            if path.is_file():
                path.read_bytes()
    subprocess.run([sys.executable, "-c", "import keras, tensorflow"], check=True,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, capture_output=True)


def run_worker(script: str, arm: str, argv: Sequence[str], env: dict[str, str] | None = None,
               ) -> dict:
    """Runs `script --worker ARM argv...` in a fresh process; returns its JSON result."""
    environ = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    proc = subprocess.run([sys.executable, script, "--worker", arm, *argv], env=environ,
                          capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"arm {arm} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fill_decoded_cache(config) -> dict:
    """Iterates every split of `config` once so that its on-disk tf.data cache
    (`data.cache` set to a file prefix) holds the decoded images; run by a worker."""
    from tfxfer.data import load_splits
    from tfxfer.experiment import resolve_config

    config = resolve_config(config)
    splits = load_splits(config.data, config.model.image_input_size)
    for split in ("train", "val", "test"):
        if splits.size(split):
            for _ in splits.batches(split, config.data):
                pass
    return {"decoded": config.data.cache}


def compare(script: str, arms: Sequence[str], argv: Sequence[str], repeats: int,
            data: str | None = None, env: dict[str, dict[str, str]] | None = None,
            decoded_cache: bool = False) -> list[dict]:
    """Runs every arm `repeats` times, alternating the order; prints a line per run.

    With `decoded_cache`, a "warmup" worker first fills the decoded-image cache that
    every arm then reads, so image decoding is charged to no arm.
    """
    warm_up(data)
    if decoded_cache:
        print(json.dumps(run_worker(script, "warmup", argv)), flush=True)
    print(f"warmed up; load average {load()}", flush=True)
    results = []
    for i in range(repeats):
        shift = i % len(arms)
        order = [*arms[shift:], *arms[:shift]]
        for position, arm in enumerate(order):
            result = run_worker(script, arm, argv, (env or {}).get(arm))
            result.update(arm=arm, repeat=i + 1, position=position + 1, load=load())
            results.append(result)
            print(json.dumps(result), flush=True)
    return results


def median(results: list[dict], arm: str, key: str, position: int | None = None) -> float:
    values = [r[key] for r in results
              if r["arm"] == arm and (position is None or r["position"] == position)]
    return statistics.median(values) if values else float("nan")


def ratio_table(results: list[dict], slow: str, fast: str, key: str) -> str:
    """Median ratio slow/fast overall and by which arm ran first (both orders)."""
    lines = [f"{key}: median {slow} {median(results, slow, key):.1f}, "
             f"median {fast} {median(results, fast, key):.1f}, "
             f"ratio {median(results, slow, key) / median(results, fast, key):.2f}x"]
    for first in (slow, fast):
        repeats = {r["repeat"] for r in results if r["arm"] == first and r["position"] == 1}
        pair = [r for r in results if r["repeat"] in repeats and r["arm"] in (slow, fast)]
        if pair:
            ratio = median(pair, slow, key) / median(pair, fast, key)
            lines.append(f"  runs with {first} first ({len(repeats)}): ratio {ratio:.2f}x")
    return "\n".join(lines)


# ------------------------------------------------ flowers image benches (phase1.py, phase2.py)


def add_image_run_args(parser, arms: Sequence[str], backbone: str, alpha: float | None,
                       weights: str) -> None:
    """The flags every flowers image bench shares: data, model, seed, repeats, worker."""
    parser.add_argument("--data", required=True, help="folder of class subfolders")
    parser.add_argument("--backbone", default=backbone)
    parser.add_argument("--alpha", type=float, default=alpha)
    parser.add_argument("--weights", default=weights)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--learning-rate", type=float, default=0.005)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeats", type=int, default=3, help="runs per arm")
    parser.add_argument("--decoded-cache", metavar="PREFIX", help=(
        "decode the images once, before timing, into this tf.data file cache that every "
        "arm reads (default: each run decodes, as a first run would)"))
    parser.add_argument("--worker", choices=[*arms, "warmup"], help=argparse.SUPPRESS)


def worker_argv(args) -> list[str]:
    """The parsed flags as a worker's command line (without --worker and --repeats)."""
    return [f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
            if k not in ("worker", "repeats") and v is not None]


def image_run_config(args, train: dict, tmp: str, augment: bool = False):
    """The RunConfig of one worker run: the flowers split (val 0.1, test 0.3) in `tmp`."""
    from tfxfer.config import load_config

    model = {"backbone": args.backbone, "weights": args.weights,
             "image_size": args.image_size, "augment": augment}
    if args.alpha is not None:
        model["backbone_kwargs"] = {"alpha": args.alpha}
    return load_config(overrides={
        "data": {"source": args.data, "val_fraction": 0.1, "test_fraction": 0.3,
                 "seed": args.seed, "cache_dir": str(Path(tmp, "cache")),
                 "cache": args.decoded_cache or "auto"},
        "model": {"image": model},
        "train": {"learning_rate": args.learning_rate, "verbose": 0, "tensorboard": False,
                  **train},
        "out": str(Path(tmp, "run")),
    })


def image_worker(args, train: dict, report, augment: bool = False) -> None:
    """One worker run of a flowers image bench; prints its JSON result line.

    The "warmup" worker fills the decoded-image cache instead. `report(result, seconds)`
    makes the result from `tfxfer.experiment.train`'s result and the run's wall time.
    """
    from tfxfer.experiment import train as run

    with tempfile.TemporaryDirectory() as tmp:
        config = image_run_config(args, train, tmp, augment=augment)
        if args.worker == "warmup":
            print(json.dumps(fill_decoded_cache(config)))
            return
        start = time.perf_counter()
        result = run(config)
        seconds = time.perf_counter() - start
    print(json.dumps(report(result, seconds)))


def describe_decoding(args) -> str:
    return "decoded before timing" if args.decoded_cache else "decoded in each run"


def accuracy_lines(results: list[dict], arms: Sequence[str], weights: str) -> list[str]:
    """Test accuracy per arm; none with random weights (every arm predicts one class)."""
    if weights.lower() == "none":
        return ["test accuracy not reported: random weights (both arms predict one class)"]
    return [f"test accuracy {arm}: "
            + ", ".join(f"{r['accuracy']:.4f}" for r in results if r["arm"] == arm)
            for arm in arms]
