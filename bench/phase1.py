"""Benchmark: phase 1 on cached bottleneck features vs the Keras-guide recipe.

Trains the same head for the same epochs on the same split in two arms:
  - recipe: the frozen backbone runs on every batch of every epoch (keras-io guide);
  - cached: backbone features are computed once (time included), the head trains on them.
Each run is a fresh process with a fresh feature cache; the arms alternate (recipe first,
then cached first, ...) after a warm-up (see bench/arms.py), so one-time costs are
charged to neither. Prints every run, the medians, the ratio overall and for each order,
and the load average.

    python bench/phase1.py --data ../shared/assets/flower_photos --repeats 3
    KERAS_HOME=/work/keras_home python bench/phase1.py --data ../shared/assets/flower_photos \\
        --backbone mobilenet --alpha 0.25 --weights imagenet --repeats 3

Augmentation is off in both arms, so both see the same inputs. Test accuracy is reported
only with real (pretrained) weights: with random weights both arms predict one class and
their "equal accuracy" means nothing. Goals: cached >= 8x faster with MobileNetV2
(weights=None), >= 6x with MobileNet alpha=0.25 ImageNet weights, accuracy within 1 point.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

from arms import compare, fill_decoded_cache, load, ratio_table

ARMS = ("recipe", "cached")


def _worker(args: argparse.Namespace) -> None:
    from tfxfer.config import load_config
    from tfxfer.experiment import train

    model = {"backbone": args.backbone, "weights": args.weights, "image_size": args.image_size,
             "augment": False}
    if args.alpha is not None:
        model["backbone_kwargs"] = {"alpha": args.alpha}
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(overrides={
            "data": {"source": args.data, "val_fraction": 0.1, "test_fraction": 0.3,
                     "seed": args.seed, "cache_dir": str(Path(tmp, "cache")),
                     "cache": args.decoded_cache or "auto"},
            "model": {"image": model},
            "train": {"strategy": "feature_extraction", "epochs": args.epochs,
                      "learning_rate": args.learning_rate, "verbose": 0, "tensorboard": False,
                      "bottleneck_cache": "off" if args.worker == "recipe" else "on"},
            "out": str(Path(tmp, "run")),
        })
        if args.worker == "warmup":
            print(json.dumps(fill_decoded_cache(config)))
            return
        start = time.perf_counter()
        result = train(config)
        total = time.perf_counter() - start
    print(json.dumps({"phase1_s": result.history.phases[0].seconds, "run_s": total,
                      "accuracy": result.evaluation.accuracy}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder of class subfolders")
    parser.add_argument("--backbone", default="mobilenet_v2")
    parser.add_argument("--alpha", type=float, default=None)
    parser.add_argument("--weights", default="none")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--learning-rate", type=float, default=0.005)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeats", type=int, default=3, help="runs per arm")
    parser.add_argument("--decoded-cache", metavar="PREFIX", help=(
        "decode the images once, before timing, into this tf.data file cache that every "
        "arm reads (default: each run decodes, as a first run would)"))
    parser.add_argument("--worker", choices=[*ARMS, "warmup"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.worker:
        _worker(args)
        return

    argv = ["--data", args.data, "--backbone", args.backbone, "--weights", args.weights,
            "--image-size", str(args.image_size), "--epochs", str(args.epochs),
            "--learning-rate", str(args.learning_rate), "--seed", str(args.seed)]
    if args.alpha is not None:
        argv += ["--alpha", str(args.alpha)]
    if args.decoded_cache:
        argv += ["--decoded-cache", args.decoded_cache]
    results = compare(__file__, ARMS, argv, args.repeats, data=args.data,
                      decoded_cache=bool(args.decoded_cache))
    print(f"\nbackbone {args.backbone} alpha={args.alpha} weights={args.weights} "
          f"{args.image_size}px, {args.epochs} epochs of phase 1, {args.repeats} runs per arm, "
          f"images {'decoded before timing' if args.decoded_cache else 'decoded in each run'}, "
          f"load average at the end {load()} (shared machine)")
    print(ratio_table(results, "recipe", "cached", "phase1_s"))
    print(ratio_table(results, "recipe", "cached", "run_s"))
    if args.weights.lower() != "none":
        for arm in ARMS:
            accs = [r["accuracy"] for r in results if r["arm"] == arm]
            print(f"test accuracy {arm}: {', '.join(f'{a:.4f}' for a in accs)}")
    else:
        print("test accuracy not reported: random weights (both arms predict one class)")
    print("goal: phase 1 cached >= 8x (MobileNetV2, random weights) / >= 6x (MobileNet "
          "alpha=0.25 ImageNet), accuracy within 1 point")


if __name__ == "__main__":
    main()
