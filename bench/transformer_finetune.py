"""Benchmark: MiniLM fine-tuned on 2,000 IMDB labels, an earlier commit's code against this tree.

Runs the IMDB app with the MiniLM recipe (apps/imdb/minilm.yaml: 256 tokens, batch 16,
10 head epochs, then the top 3 of 6 blocks for 2 epochs at 1e-4) on 2,000 training and
2,000 test reviews of the offline CSVs:

    apps/imdb/train.py --encoder minilm --data imdb_train.csv --test-data imdb_test.csv \
        --max-train-examples 2000 --max-test-examples 2000

once with the code of `--baseline` (a git worktree of that commit; default 194a2ac, main
just before the transformer speed work of issue 29: every text padded to 256 tokens, no
phase-2 cache, 2,500 validation reviews) and once with this checkout, each in its own
subprocess with an empty feature cache, arms alternating over `--rounds`. Prints each
run's wall time, CPU time (user + sys of the child), test accuracy with its 95% Wilson
interval, and the median speed-up.

    python bench/transformer_finetune.py --assets ../shared/assets
    python bench/transformer_finetune.py --arms current   # this tree only

Goal (issue 29): >= 3x faster wall time than the baseline, test accuracy within 1 point.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARMS = ("baseline", "current")


def wilson(correct: float, n: int, z: float = 1.96) -> tuple[float, float]:
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    return centre - half, centre + half


def worktree(commit: str, where: Path) -> Path:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(where),
                    commit], check=True, capture_output=True)
    return where


def run_app(tree: Path, assets: Path, scratch: Path, examples: int) -> dict:
    """One run of the app in `tree`: wall and CPU seconds, test accuracy and size."""
    out = scratch / "run"
    env = {**os.environ, "PYTHONPATH": str(tree), "TFXFER_CACHE": str(scratch / "cache"),
           "TFXFER_ASSETS": str(assets)}
    command = [sys.executable, str(tree / "apps" / "imdb" / "train.py"), "--encoder", "minilm",
               "--data", str(assets / "imdb" / "imdb_train.csv"),
               "--test-data", str(assets / "imdb" / "imdb_test.csv"),
               "--max-train-examples", str(examples), "--max-test-examples", str(examples),
               "--cache-dir", str(scratch / "cache"), "--out", str(out)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=tree, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(f"{tree}: the app failed ({done.returncode}):\n{done.stderr[-3000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    n = int(metrics.get("examples") or metrics.get("test_examples") or examples)
    accuracy = float(metrics["accuracy"])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "accuracy": accuracy, "examples": n,
            "interval": wilson(accuracy * n, n), "load": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", default=os.environ.get("TFXFER_ASSETS", "../shared/assets"))
    parser.add_argument("--baseline", default="194a2ac")
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--arms", default=",".join(ARMS), help="baseline,current or one")
    args = parser.parse_args()
    arms = [a for a in ARMS if a in args.arms.split(",")]
    assets = Path(args.assets).resolve()
    results = {arm: [] for arm in arms}
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"current": ROOT}
        if "baseline" in arms:
            trees["baseline"] = worktree(args.baseline, Path(tmp) / "baseline")
        try:
            for r in range(args.rounds):
                for arm in arms if r % 2 == 0 else arms[::-1]:
                    scratch = Path(tmp) / f"{arm}_{r}"
                    result = run_app(trees[arm], assets, scratch, args.examples)
                    results[arm].append(result)
                    low, high = result["interval"]
                    print(f"{arm:>8} round {r}: wall {result['wall']:7.1f} s, CPU "
                          f"{result['cpu']:7.1f} s, test accuracy {result['accuracy']:.4f} "
                          f"[{low:.3f}, {high:.3f}] of {result['examples']}, "
                          f"load {result['load']:.2f}", flush=True)
        finally:
            if "baseline" in trees:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                                str(trees["baseline"])], capture_output=True)
    if len(arms) < 2:
        return
    wall = {arm: statistics.median(r["wall"] for r in results[arm]) for arm in ARMS}
    accuracy = {arm: statistics.median(r["accuracy"] for r in results[arm]) for arm in ARMS}
    print(f"speed-up (median wall, baseline / current): {wall['baseline'] / wall['current']:.2f}x; "
          f"accuracy current - baseline: {100 * (accuracy['current'] - accuracy['baseline']):+.1f}"
          " points")


if __name__ == "__main__":
    main()
