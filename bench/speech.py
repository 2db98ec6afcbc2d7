"""Benchmark: spoken digits (FSDD), ImageNet transfer vs the same network from scratch.

Every run is the speech app's own config (`apps/speech/config.yaml`) through
`tfxfer.train`, in this process, on class folders staged by `tfxfer.audio.fsdd`:

  - loso:      speaker-independent, leave one speaker out: train on 5 speakers (a tenth
               held out for validation), test on the 6th, each speaker in turn; mean;
  - official:  the dataset's split (indices 0-4 of every digit and speaker test).

Arms: `transfer` (MobileNet alpha=0.25 with the ImageNet weights file, head then the
whole backbone, BatchNorm included) and `scratch` (the same architecture, random
weights, one phase of the same total epochs at the transfer arm's phase-2 learning
rate: `--strategy from_scratch --learning-rate 0.001`). Optionally `small_cnn` (the DANN MNIST CNN
from scratch on a 28x28 picture). Each result line is JSON with the load average.

    python bench/speech.py --splits official --arms transfer
    python bench/speech.py --splits loso --arms transfer,scratch [--speakers theo,george]
    python bench/speech.py --latency RUN_DIR      # export it, then p50/p90 of one WAV

Goals: LOSO mean >= 0.90 and >= +10 points over scratch; official >= 0.97; the app
under 5 minutes; an export answers one WAV in <= 30 ms p50.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
APP_CONFIG = ROOT / "apps" / "speech" / "config.yaml"
WEIGHTS = Path("keras", "models", "mobilenet_2_5_224_tf_no_top.h5")
ARMS = {
    "transfer": {},
    # One phase of the transfer arm's total epochs at its phase-2 learning rate.
    "scratch": {"train": {"strategy": "from_scratch", "learning_rate": 0.001,
                          "fine_tune_learning_rate": 0.0001}},  # (unused by from_scratch)
    "small_cnn": {"train": {"strategy": "from_scratch", "learning_rate": 0.001,
                            "fine_tune_learning_rate": 0.0001},
                  "model": {"image": {"backbone": "dann_mnist_cnn", "backbone_kwargs": {},
                                      "image_size": 28}}},
}


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for key, value in b.items():
        out[key] = _merge(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


def run_one(arm: str, split: str, recordings: Path, weights: str, work: Path,
            overrides: dict) -> dict:
    import tfxfer
    from tfxfer.audio.fsdd import stage_fsdd
    from tfxfer.config import load_config

    train_dir, test_dir = stage_fsdd(recordings, work / "data" / split.replace(":", "-"), split)
    given = _merge({"data": {"source": str(train_dir), "test_source": str(test_dir)},
                    "model": {"image": {"weights": weights}},
                    "train": {"verbose": 0, "tensorboard": False},
                    "out": str(work / "runs" / f"{arm}-{split.replace(':', '-')}")},
                   _merge(ARMS[arm], overrides))
    config = load_config(APP_CONFIG, given)
    start = time.perf_counter()
    result = tfxfer.train(config)
    return {"arm": arm, "split": split, "accuracy": round(result.evaluation.accuracy, 4),
            "seconds": round(time.perf_counter() - start, 1),
            "load_avg_1m": round(os.getloadavg()[0], 2), "run_dir": str(result.run_dir)}


def latency(run_dir: str, recordings: Path, repeats: int) -> dict:
    import numpy as np
    import tensorflow as tf

    from tfxfer.serving.export import export_run

    base = Path(tempfile.mkdtemp(prefix="speech-export-"))
    exported = export_run(run_dir, base, "speech", verify=True)
    serve = tf.saved_model.load(str(exported.path)).signatures["serving_default"]
    files = sorted(recordings.glob("*.wav"))[:50]
    payloads = [tf.constant([f.read_bytes()]) for f in files]
    for payload in payloads[:5]:
        serve(inputs=payload)
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        serve(inputs=payloads[i % len(payloads)])
        times.append((time.perf_counter() - start) * 1000)
    return {"export": str(exported.path), "p50_ms": round(float(np.percentile(times, 50)), 2),
            "p90_ms": round(float(np.percentile(times, 90)), 2), "requests": repeats,
            "max_abs_diff_vs_keras": exported.verification.max_abs_diff,
            "load_avg_1m": round(os.getloadavg()[0], 2)}


def main(argv: list[str] | None = None) -> int:
    assets = Path(os.environ.get("TFXFER_ASSETS", "../shared/assets"))
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recordings", default=str(assets / "audio" / "recordings"))
    parser.add_argument("--weights", default=str(assets / WEIGHTS))
    parser.add_argument("--splits", default="loso,official", help="loso and/or official")
    parser.add_argument("--arms", default="transfer,scratch", help=",".join(ARMS))
    parser.add_argument("--speakers", help="LOSO folds to run (default: all six)")
    parser.add_argument("--epochs", type=int, help="phase 1 epochs (default: the app's)")
    parser.add_argument("--fine-tune-epochs", type=int, help="phase 2 epochs")
    parser.add_argument("--audio", action="append", default=[], metavar="KEY=VALUE",
                        help="a model.audio setting for both arms, e.g. band_norm=true")
    parser.add_argument("--work", help="folder for staged data and runs (default: temp)")
    parser.add_argument("--latency", metavar="RUN_DIR", help="export RUN_DIR and time it")
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args(argv)
    recordings = Path(args.recordings)
    if args.latency:
        print(json.dumps(latency(args.latency, recordings, args.repeats)), flush=True)
        return 0
    from tfxfer.audio.fsdd import speakers

    overrides = {"train": {k: v for k, v in (("epochs", args.epochs),
                                             ("fine_tune_epochs", args.fine_tune_epochs))
                           if v is not None},
                 "model": {"audio": {k: yaml.safe_load(v) for k, v in
                                     (item.split("=", 1) for item in args.audio)}}}
    work = Path(args.work or tempfile.mkdtemp(prefix="speech-bench-"))
    folds = args.speakers.split(",") if args.speakers else speakers(recordings)
    splits = [s for name in args.splits.split(",")
              for s in ([f"speaker:{f}" for f in folds] if name == "loso" else [name])]
    results: dict[str, list] = {}
    for split in splits:
        for arm in args.arms.split(","):
            line = run_one(arm, split, recordings, args.weights, work, overrides)
            results.setdefault(arm, []).append(line)
            print(json.dumps(line), flush=True)
    for arm, lines in results.items():
        loso = [x["accuracy"] for x in lines if x["split"].startswith("speaker:")]
        if loso:
            print(json.dumps({"arm": arm, "loso_mean": round(sum(loso) / len(loso), 4),
                              "folds": len(loso)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
