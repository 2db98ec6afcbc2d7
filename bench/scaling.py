"""Benchmark: 1 vs 2 workers (MultiWorkerMirroredStrategy on 127.0.0.1) and --deterministic.

Arms, alternated over `--repeats` rounds, each a fresh `tfxfer` process (or job):
  - 1 process:          tfxfer train --distribute none
  - 1 process, determ.: the same with --deterministic
  - 2 workers:          tfxfer launch --workers 2 -- train --distribute multi_worker
All train the whole backbone (fine_tune_all, no head phase) on the same synthetic
images with the same global batch. The time of an epoch is read from Keras' per-epoch
line (`--verbose 2`: steps x time per step, in ms); the first epoch (tracing) is dropped and the
median of the others is reported with examples/s = training examples / epoch time.

    python bench/scaling.py --repeats 2
    python bench/scaling.py --repeats 5 --no-workers   # only the cost of --deterministic

The figures depend on the load of the machine: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

EPOCH_LINE = re.compile(r"^(?:\[worker 0\] )?(\d+)/\d+ - \S+ - (\d+)(ms|s)/step")


def _images(root: Path, per_class: int, size: int) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, colour in enumerate([(220, 40, 40), (40, 200, 60), (50, 70, 230)]):
        folder = root / f"class{c}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(np.asarray(colour) + rng.normal(0, 25, (size, size, 3)), 0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i}.jpg")
    return root


def _train_args(args, data: Path, out: Path) -> list[str]:
    return [
        "train", "--data", str(data), "--out", str(out), "--batch-size", str(args.batch_size),
        "--val-fraction", "0.1", "--test-fraction", "0.1", "--backbone", "mobilenet",
        "--backbone-arg", "alpha=0.25", "--weights", "none", "--image-size",
        str(args.image_size), "--strategy", "fine_tune_all", "--epochs", "0",
        "--fine-tune-epochs", str(args.epochs), "--learning-rate", "0.01", "--no-augment",
        "--no-tensorboard", "--verbose", "2",
    ]


def _run(arm: str, args, data: Path, out: Path) -> tuple[float, int]:
    train = _train_args(args, data, out)
    cli = [sys.executable, "-m", "tfxfer.cli", "--log-level", "WARNING"]
    if arm == "2 workers":
        command = [*cli, "launch", "--workers", "2", "--", *train, "--distribute", "multi_worker"]
    else:
        command = [*cli, *train, "--distribute", "none"]
        if arm.endswith("determ."):
            command.append("--deterministic")
    proc = subprocess.run(command, capture_output=True, text=True, check=False,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    if proc.returncode:
        raise RuntimeError(f"{arm} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    seconds = [int(m.group(1)) * int(m.group(2)) / (1000 if m.group(3) == "ms" else 1)
               for line in proc.stdout.splitlines() if (m := EPOCH_LINE.match(line))]
    summary = json.loads((out / "data_summary.json").read_text())
    examples = sum(summary["counts"]["train"].values()) if "counts" in summary else None
    return statistics.median(seconds[1:]), examples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--per-class", type=int, default=80)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--no-workers", action="store_true",
                        help="only the 1-process arms (the --deterministic cost)")
    args = parser.parse_args()
    arms = ["1 process", "1 process, determ.", *([] if args.no_workers else ["2 workers"])]
    times: dict[str, list[float]] = {arm: [] for arm in arms}
    with tempfile.TemporaryDirectory() as tmp:
        data = _images(Path(tmp, "images"), args.per_class, args.image_size)
        examples = None
        for repeat in range(args.repeats):
            for arm in arms:
                out = Path(tmp, f"{arm.replace(' ', '_')}-{repeat}")
                seconds, examples = _run(arm, args, data, out)
                times[arm].append(seconds)
                print(f"round {repeat + 1} {arm:<20} {seconds:.2f} s/epoch", flush=True)
    print(f"\nload average (1, 5, 15 min): {os.getloadavg()}")
    print(f"{'arm':<20} {'s/epoch':>8} {'examples/s':>11}   ({examples} training examples, "
          f"global batch {args.batch_size}, {args.image_size}px)")
    base = statistics.median(times["1 process"])
    for arm in arms:
        median = statistics.median(times[arm])
        print(f"{arm:<20} {median:>8.2f} {examples / median:>11.1f}   x{base / median:.2f} "
              "vs 1 process")


if __name__ == "__main__":
    main()
