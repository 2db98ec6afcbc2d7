"""Benchmark: phase 1 on cached bottleneck features vs the Keras-guide recipe.

Trains the same head for the same epochs on the same split twice:
  - recipe: the frozen backbone runs on every batch of every epoch (keras-io guide);
  - cached: backbone features are computed once (time included), the head trains on them.
Prints both phase-1 times, their ratio and both test accuracies.

    python bench/phase1.py --data ../shared/assets/flower_photos
    python bench/phase1.py --data ../shared/assets/flower_photos \\
        --backbone mobilenet --alpha 0.25 --weights imagenet   # needs the weights in KERAS_HOME

Augmentation is off in both runs, so both see the same inputs. Goal: cached >= 8x faster,
accuracy within 1 point.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from tfxfer.config import load_config
from tfxfer.experiment import train


def _run(args, out: Path, cache: str, cache_dir: str) -> tuple[float, float, float]:
    model = {"backbone": args.backbone, "weights": args.weights, "image_size": args.image_size,
             "augment": False}
    if args.alpha is not None:
        model["backbone_kwargs"] = {"alpha": args.alpha}
    config = load_config(overrides={
        "data": {"source": args.data, "val_fraction": 0.1, "test_fraction": 0.3,
                 "seed": args.seed, "cache_dir": cache_dir},
        "model": model,
        "train": {"strategy": "feature_extraction", "epochs": args.epochs,
                  "learning_rate": args.learning_rate, "bottleneck_cache": cache, "verbose": 0},
        "out": str(out),
    })
    start = time.perf_counter()
    result = train(config)
    total = time.perf_counter() - start
    return result.history.phases[0].seconds, total, result.evaluation.accuracy


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
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        recipe = _run(args, tmp / "recipe", "off", str(tmp / "cache"))
        cached = _run(args, tmp / "cached", "on", str(tmp / "cache"))
    print(f"backbone {args.backbone} alpha={args.alpha} weights={args.weights} "
          f"{args.image_size}px, {args.epochs} epochs of phase 1")
    print(f"{'':<8} {'phase 1 s':>10} {'run s':>8} {'test acc':>9}")
    for name, (phase, total, acc) in (("recipe", recipe), ("cached", cached)):
        print(f"{name:<8} {phase:>10.1f} {total:>8.1f} {acc:>9.4f}")
    print(f"speed-up of phase 1: {recipe[0] / cached[0]:.1f}x "
          f"(goal >= 8x); accuracy difference {100 * (cached[2] - recipe[2]):+.1f} points "
          "(goal within 1)")


if __name__ == "__main__":
    main()
