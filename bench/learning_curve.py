"""Benchmark: the learning curve of transfer learning for text (IMDB).

Trains the IMDB app's architecture (apps/imdb/config.yaml) at several label
budgets, twice per budget:

  - pretrained: the GloVe encoder, two phases (head on frozen vectors, then the
    word vectors fine-tuned at a 10x lower learning rate);
  - random: the same encoder with its embedding re-initialised at random
    (uniform +-0.05, same shape and vocabulary), everything trained from the
    start (`from_scratch`) for the same total number of epochs, at each learning
    rate of --random-lrs; the one with the best *validation* accuracy is kept.

A budget of N labelled reviews is a stratified sample of N training reviews;
10% of them are the validation set, so N counts every label the run sees. The
test set is IMDB's whole test split. Small budgets get more epochs so that each
phase takes at least --min-steps optimizer steps. Prints test accuracies side by
side and their difference.

    python bench/learning_curve.py --train ../shared/assets/imdb/imdb_train.csv \\
        --test ../shared/assets/imdb/imdb_test.csv

Goal: at 500 labels, the pretrained encoder beats random init by >= 10 points.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tfxfer.config import load_config
from tfxfer.data.splits import stratified_subset
from tfxfer.data.text import load_dataframe_splits, read_csv
from tfxfer.experiment import train

APP_CONFIG = Path(__file__).resolve().parents[1] / "apps" / "imdb" / "config.yaml"


def _budget_frame(frame: pd.DataFrame, size: int, seed: int) -> pd.DataFrame:
    labels = pd.factorize(frame["label"], sort=True)[0]
    keep = stratified_subset(np.arange(len(frame)), labels, size, seed)
    return frame.iloc[keep].reset_index(drop=True)


def _epochs(base: int, train_examples: int, batch_size: int, min_steps: int) -> int:
    steps = math.ceil(train_examples / batch_size)
    return max(base, math.ceil(min_steps / steps))


def _run(config, frame, test, out: Path) -> tuple[float, float, float]:
    config = dataclasses.replace(config, out=str(out))
    splits = load_dataframe_splits(frame, config.data, test)
    start = time.perf_counter()
    result = train(config, splits=splits)
    seconds = time.perf_counter() - start
    val = result.history.rows[-1].get("val_accuracy", float("nan"))
    return result.evaluation.accuracy, val, seconds


def _configs(args, budget: int):
    base = load_config(APP_CONFIG, {
        "data": {"seed": args.seed, "cache_dir": args.cache_dir},
        "model": {"text": {"encoder": args.encoder}},
        "train": {"verbose": 0, "tensorboard": False},
    })
    train_examples = budget - round(budget * base.data.val_fraction)
    phase1 = _epochs(base.train.epochs, train_examples, base.data.batch_size, args.min_steps)
    phase2 = _epochs(base.train.fine_tune_epochs, train_examples, base.data.batch_size,
                     args.min_steps)
    pretrained = [
        dataclasses.replace(base, train=dataclasses.replace(
            base.train, epochs=phase1, fine_tune_epochs=phase2, learning_rate=lr,
            fine_tune_learning_rate=lr / 10))
        for lr in args.pretrained_lrs
    ]
    randoms = [
        dataclasses.replace(base, train=dataclasses.replace(
            base.train, strategy="from_scratch", epochs=phase1 + phase2, fine_tune_epochs=0,
            learning_rate=lr, fine_tune_learning_rate=None))
        for lr in args.random_lrs
    ]
    return pretrained, randoms


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",")]


def _best(configs, frame, test, root: Path, name: str) -> tuple:
    """Runs every config: (test acc, val acc, seconds of all, lr, all test accs) of the best."""
    tried = []
    for config in configs:
        lr = config.train.learning_rate
        tried.append((*_run(config, frame, test, root / f"{name}-lr{lr:g}"), lr))
    best = max(tried, key=lambda t: t[1])  # chosen on validation, never on test
    return best[0], best[1], sum(t[2] for t in tried), best[3], [round(t[0], 4) for t in tried]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True, help="IMDB train CSV (text,label)")
    parser.add_argument("--test", required=True, help="IMDB test CSV (text,label)")
    parser.add_argument("--budgets", default="100,500,2000,25000",
                        help="labelled reviews per run, comma-separated")
    parser.add_argument("--encoder", default="glove_6b_50d")
    parser.add_argument("--pretrained-lrs", default="0.01,0.03", type=_floats,
                        help="phase-1 learning rates of the pretrained arm (phase 2: 10x lower)")
    parser.add_argument("--random-lrs", default="0.01,0.001", type=_floats,
                        help="learning rates of the random-init arm")
    parser.add_argument("--min-steps", type=int, default=400,
                        help="fewest optimizer steps per phase (small budgets get more epochs)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", help="keep the run directories here (default: a temp dir)")
    parser.add_argument("--cache-dir", help="feature cache (default: a temp dir)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    frame, test = read_csv(args.train), read_csv(args.test)
    budgets = [int(b) for b in args.budgets.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.out or tmp)
        args.cache_dir = args.cache_dir or str(Path(tmp, "cache"))
        rows = []
        for budget in budgets:
            sample = _budget_frame(frame, budget, args.seed)
            pretrained, randoms = _configs(args, budget)
            ours = _best(pretrained, sample, test, root, f"{budget}-pretrained")
            theirs = _best(randoms, sample, test, root, f"{budget}-random")
            rows.append((budget, ours[0], theirs[0], pretrained[0].train, ours[2] + theirs[2]))
            print(f"{budget:>6} labels: pretrained {ours[0]:.4f} (lr {ours[3]:g} of {ours[4]}), "
                  f"random {theirs[0]:.4f} (lr {theirs[3]:g} of {theirs[4]})", flush=True)

    print(f"\n{'labels':>7} {'pretrained':>11} {'random init':>12} {'difference':>11}  "
          f"{'epochs (1+2)':>12} {'seconds':>8}")
    for budget, acc, rand, schedule, secs in rows:
        print(f"{budget:>7} {acc:>11.4f} {rand:>12.4f} {100 * (acc - rand):>+10.1f}pt  "
              f"{schedule.epochs:>5} + {schedule.fine_tune_epochs:<4} {secs:>8.0f}")


if __name__ == "__main__":
    main()
