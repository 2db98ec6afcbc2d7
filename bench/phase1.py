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
import logging

from arms import (
    accuracy_lines,
    add_image_run_args,
    compare,
    describe_decoding,
    image_worker,
    load,
    ratio_table,
    worker_argv,
)

ARMS = ("recipe", "cached")


def _worker(args: argparse.Namespace) -> None:
    train = {"strategy": "feature_extraction", "epochs": args.epochs,
             "bottleneck_cache": "off" if args.worker == "recipe" else "on"}
    image_worker(args, train, lambda result, seconds: {
        "phase1_s": result.history.phases[0].seconds, "run_s": seconds,
        "accuracy": result.evaluation.accuracy})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_image_run_args(parser, ARMS, backbone="mobilenet_v2", alpha=None, weights="none")
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.worker:
        _worker(args)
        return

    results = compare(__file__, ARMS, worker_argv(args), args.repeats, data=args.data,
                      decoded_cache=bool(args.decoded_cache))
    print(f"\nbackbone {args.backbone} alpha={args.alpha} weights={args.weights} "
          f"{args.image_size}px, {args.epochs} epochs of phase 1, {args.repeats} runs per arm, "
          f"images {describe_decoding(args)}, load average at the end {load()} (shared machine)")
    print(ratio_table(results, "recipe", "cached", "phase1_s"))
    print(ratio_table(results, "recipe", "cached", "run_s"))
    print("\n".join(accuracy_lines(results, ARMS, args.weights)))
    print("goal: phase 1 cached >= 8x (MobileNetV2, random weights) / >= 6x (MobileNet "
          "alpha=0.25 ImageNet), accuracy within 1 point")


if __name__ == "__main__":
    main()
