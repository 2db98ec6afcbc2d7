"""Benchmark: MobileNetV2 inference with oneDNN on vs off (TF_ENABLE_ONEDNN_OPTS=1/0).

A third arm leaves the variable unset: TensorFlow's own default for this CPU (on with
AVX-512 or AMX, off on AVX2-only CPUs). oneDNN is chosen when TensorFlow is imported, so
every measurement runs in its own fresh process; the arms rotate so that a change of
machine load hits both, and each process warms up before it is timed. Prints the
images per second of every run, the medians and their ratio, and the load average.

    python bench/onednn.py --repeats 3
    python bench/onednn.py --worker 1   # one measurement (what the driver runs)

Goal: oneDNN on >= 1.5x off.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

SETTINGS = ("0", "1", "unset")


def _worker(args: argparse.Namespace) -> None:
    import keras
    import numpy as np

    model = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3),
                                           include_top=False, pooling="avg")
    import tensorflow as tf

    forward = tf.function(lambda x: model(x, training=False))
    images = np.random.default_rng(0).uniform(-1, 1, (args.batch, 224, 224, 3)).astype("f4")
    for _ in range(3):  # warm-up: tracing and oneDNN primitive creation
        forward(images).numpy()
    start = time.perf_counter()
    for _ in range(args.batches):
        forward(images).numpy()
    print(args.batch * args.batches / (time.perf_counter() - start))


def _measure(setting: str, args: argparse.Namespace) -> float:
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    if setting != "unset":  # unset: TensorFlow's own default for this CPU
        env["TF_ENABLE_ONEDNN_OPTS"] = setting
    out = subprocess.run(
        [sys.executable, __file__, "--worker", setting, "--batch", str(args.batch),
         "--batches", str(args.batches)],
        env=env, check=True, capture_output=True, text=True,
    ).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per arm")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=10, help="timed batches per run")
    parser.add_argument("--worker", choices=SETTINGS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        _worker(args)
        return
    rates: dict[str, list[float]] = {setting: [] for setting in SETTINGS}
    for i in range(args.repeats):
        shift = i % len(SETTINGS)
        for setting in (*SETTINGS[shift:], *SETTINGS[:shift]):
            rate = _measure(setting, args)
            rates[setting].append(rate)
            print(f"run {i + 1} TF_ENABLE_ONEDNN_OPTS={setting}: {rate:6.1f} img/s  "
                  f"(load {' '.join(f'{x:.2f}' for x in os.getloadavg())})", flush=True)
    off, on = statistics.median(rates["0"]), statistics.median(rates["1"])
    default = statistics.median(rates["unset"])
    print(f"MobileNetV2 224px batch {args.batch}, median of {args.repeats} per arm: "
          f"off {off:.1f} img/s, on {on:.1f} img/s, ratio {on / off:.2f}x (goal >= 1.5x); "
          f"unset (TensorFlow's default here) {default:.1f} img/s")


if __name__ == "__main__":
    main()
