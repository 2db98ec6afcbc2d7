"""Benchmark: phase 2 on cached boundary activations vs plain phase 2.

Both arms run the same fine_tune schedule on the same split: phase 1 on cached
bottleneck features (not compared), then phase 2 with the top of the backbone
unfrozen for the same epochs, either
  - plain: the full model on every batch (--phase2-cache off), or
  - cached: the frozen bottom's activations computed once (time included), the top
    trained on them (--phase2-cache auto).
Each run is a fresh process with a fresh cache; the arms alternate after a warm-up
(see bench/arms.py). Prints every run, the medians of the phase-2 seconds, the ratio
overall and for each order, the test accuracies and the load average.

    KERAS_HOME=/work/keras_home python bench/phase2.py \\
        --data ../shared/assets/flower_photos --repeats 3

Default: MobileNet alpha=0.25 with ImageNet weights, 224 px, augmentation off (both arms
see the same inputs; --augmented-copies N turns augmentation on with N cached copies in
the cached arm and live augmentation in the plain arm). Goal: >= 2x, test accuracy
within 1 point.
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

ARMS = ("plain", "cached")


def _worker(args: argparse.Namespace) -> None:
    train = {"strategy": "fine_tune", "epochs": args.head_epochs,
             "fine_tune_epochs": args.epochs,
             "fine_tune_learning_rate": args.fine_tune_learning_rate,
             "unfreeze_fraction": args.unfreeze_fraction,
             "augmented_copies": args.augmented_copies, "bottleneck_cache": "on",
             "phase2_cache": "off" if args.worker == "plain" else "auto"}
    image_worker(args, train, lambda result, seconds: {
        "phase2_s": result.history.phases[1].seconds, "run_s": seconds,
        "mode": result.history.phases[1].mode, "accuracy": result.evaluation.accuracy},
        augment=args.augmented_copies > 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_image_run_args(parser, ARMS, backbone="mobilenet", alpha=0.25, weights="imagenet")
    parser.add_argument("--head-epochs", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=10, help="phase 2 epochs")
    parser.add_argument("--fine-tune-learning-rate", type=float, default=1e-4)
    parser.add_argument("--unfreeze-fraction", type=float, default=0.3)
    parser.add_argument("--augmented-copies", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.worker:
        _worker(args)
        return

    results = compare(__file__, ARMS, worker_argv(args), args.repeats, data=args.data,
                      decoded_cache=bool(args.decoded_cache))
    print(f"\nbackbone {args.backbone} alpha={args.alpha} weights={args.weights} "
          f"{args.image_size}px, unfreeze {args.unfreeze_fraction}, {args.epochs} epochs of "
          f"phase 2, {args.augmented_copies} augmented copies, {args.repeats} runs per arm, "
          f"images {describe_decoding(args)}, load average at the end {load()} (shared machine)")
    print(f"cached arm ran as: {sorted({r['mode'] for r in results if r['arm'] == 'cached'})}")
    print(ratio_table(results, "plain", "cached", "phase2_s"))
    print(ratio_table(results, "plain", "cached", "run_s"))
    print("\n".join(accuracy_lines(results, ARMS, args.weights)))
    print("goal: phase 2 cached >= 2x, test accuracy within 1 point")


if __name__ == "__main__":
    main()
