"""Benchmark: the learning curve of transfer learning for text (IMDB), four arms.

At each label budget N (a stratified sample of N training reviews, 10% of them the
validation set, so N counts every label a run sees), trains:

  - scratch:       a bag of words from random init (the GloVe app's architecture with its
                   embedding re-initialised, uniform +-0.05), everything trained from the
                   start, at each learning rate of --random-lrs;
  - glove:         the GloVe encoder in two phases (head on frozen vectors, then the word
                   vectors fine-tuned 10x lower), at each rate of --pretrained-lrs;
  - minilm-frozen: all-MiniLM-L6-v2 frozen, the head trained on cached sentence vectors
                   (apps/imdb/minilm.yaml, strategy feature_extraction), at each rate of
                   --frozen-lrs;
  - minilm-ft:     the same, then the top transformer blocks fine-tuned (phase 2 of
                   apps/imdb/minilm.yaml: top 3 of 6 blocks, AdamW at 1e-4).

Where an arm tries several settings, the one with the best *validation* accuracy is kept
(never test). Every arm is tested on the same fixed, stratified sample of --test-size
test reviews. Small budgets get more epochs so that each phase takes at least
--min-steps optimizer steps (phase 2 of minilm-ft: --ft-min-steps, since a transformer
step is costly). Each result line is printed as soon as it is known, with its wall time
and the load average, so a partial run still reports.

    TFXFER_ASSETS=../shared/assets python bench/learning_curve.py \\
        --train ../shared/assets/imdb/imdb_train.csv --test ../shared/assets/imdb/imdb_test.csv

Goal: at 100, 500 and 2,000 labels minilm-ft beats the best from-scratch arm; at 500 by
>= 5 points and reaching >= 0.82.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from tfxfer.config import load_config
from tfxfer.data.splits import stratified_subset
from tfxfer.data.text import load_dataframe_splits, read_csv
from tfxfer.experiment import train
from tfxfer.training.bottleneck import cached_split, head_model

APPS = Path(__file__).resolve().parents[1] / "apps" / "imdb"
GLOVE_CONFIG = APPS / "config.yaml"
MINILM_CONFIG = APPS / "minilm.yaml"
ARMS = ("scratch", "glove", "minilm-frozen", "minilm-ft")


def _sample(frame: pd.DataFrame, size: int, seed: int) -> pd.DataFrame:
    labels = pd.factorize(frame["label"], sort=True)[0]
    keep = stratified_subset(np.arange(len(frame)), labels, size, seed)
    return frame.iloc[keep].reset_index(drop=True)


def _epochs(base: int, train_examples: int, batch_size: int, min_steps: int) -> int:
    steps = math.ceil(train_examples / batch_size)
    return max(base, math.ceil(min_steps / steps))


def _frozen_test_accuracy(result, config, frame, test) -> float:
    """Test accuracy of a frozen-encoder model: its head on cached test features.

    The features of the fixed test sample do not depend on the budget, so they are
    computed once (the feature cache) instead of once per budget.
    """
    splits = load_dataframe_splits(frame, config.data, test)
    x, y = cached_split(result.model, config, splits, "test")
    probabilities = head_model(result.model).predict(x, batch_size=256, verbose=0)
    return float(np.mean(np.argmax(probabilities, axis=-1) == y))


def _run(config, frame, test, out: Path) -> tuple[float, float, float]:
    config = dataclasses.replace(config, out=str(out))
    frozen = config.train.strategy == "feature_extraction"
    start = time.perf_counter()
    if frozen:  # no test split in the run: evaluated below on cached features
        config = dataclasses.replace(config, data=dataclasses.replace(
            config.data, test_fraction=0.0))
        result = train(config, splits=load_dataframe_splits(frame, config.data))
        accuracy = _frozen_test_accuracy(result, result.config, frame, test)
    else:
        result = train(config, splits=load_dataframe_splits(frame, config.data, test))
        accuracy = result.evaluation.accuracy
    seconds = time.perf_counter() - start
    vals = result.history.column("val_accuracy")
    val = max(vals) if config.train.restore_best else vals[-1]
    keras.backend.clear_session()
    return accuracy, val, seconds


def _base(path: Path, args, **train):
    return load_config(path, {
        "data": {"seed": args.seed, "cache_dir": args.cache_dir},
        "train": {"verbose": 0, "tensorboard": False, **train},
    })


def _with(config, **train):
    return dataclasses.replace(config, train=dataclasses.replace(config.train, **train))


def _train_examples(config, budget: int) -> int:
    return budget - round(budget * config.data.val_fraction)


def _arm_configs(arm: str, args, budget: int) -> list:
    """The settings an arm tries at `budget` (the best on validation is kept)."""
    if arm in ("scratch", "glove"):
        base = _base(GLOVE_CONFIG, args)
        n, batch = _train_examples(base, budget), base.data.batch_size
        phase1 = _epochs(base.train.epochs, n, batch, args.min_steps)
        phase2 = _epochs(base.train.fine_tune_epochs, n, batch, args.min_steps)
        if arm == "glove":
            return [_with(base, epochs=phase1, fine_tune_epochs=phase2, learning_rate=lr,
                          fine_tune_learning_rate=lr / 10) for lr in args.pretrained_lrs]
        return [_with(base, strategy="from_scratch", epochs=phase1 + phase2, fine_tune_epochs=0,
                      learning_rate=lr, fine_tune_learning_rate=None) for lr in args.random_lrs]
    base = _base(MINILM_CONFIG, args)
    base.model.text.sequence_length = args.sequence_length
    n, batch = _train_examples(base, budget), base.data.batch_size
    phase1 = _epochs(base.train.epochs, n, batch, args.min_steps)
    if arm == "minilm-frozen":
        return [_with(base, strategy="feature_extraction", epochs=phase1, fine_tune_epochs=0,
                      learning_rate=lr) for lr in args.frozen_lrs]
    phase2 = _epochs(base.train.fine_tune_epochs, n, batch, args.ft_min_steps)
    return [_with(base, epochs=phase1, fine_tune_epochs=phase2, fine_tune_learning_rate=lr,
                  unfreeze_layers=args.unfreeze_blocks) for lr in args.ft_lrs]


def _best(configs, frame, test, root: Path, name: str) -> dict:
    tried = []
    for i, config in enumerate(configs):
        tried.append((*_run(config, frame, test, root / f"{name}-{i}"), config.train))
    best = max(tried, key=lambda t: t[1])  # chosen on validation, never on test
    return {"test": best[0], "val": best[1], "seconds": sum(t[2] for t in tried),
            "train": best[3], "tried": [round(t[0], 4) for t in tried]}


def _describe(arm: str, t) -> str:
    if arm == "minilm-ft":
        return (f"lr {t.learning_rate:g}/{t.fine_tune_learning_rate:g}, "
                f"{t.epochs}+{t.fine_tune_epochs} ep, top {t.unfreeze_layers} blocks")
    if arm == "scratch":
        return f"lr {t.learning_rate:g}, {t.epochs} ep"
    return f"lr {t.learning_rate:g}, {t.epochs}+{t.fine_tune_epochs} ep"


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",")]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True, help="IMDB train CSV (text,label)")
    parser.add_argument("--test", required=True, help="IMDB test CSV (text,label)")
    parser.add_argument("--budgets", default="500,100,2000",
                        help="labelled reviews per run, comma-separated (run in this order)")
    parser.add_argument("--arms", default=",".join(ARMS), help=f"subset of {', '.join(ARMS)}")
    parser.add_argument("--test-size", type=int, default=2000,
                        help="fixed stratified sample of test reviews, the same for every arm")
    parser.add_argument("--pretrained-lrs", default="0.01,0.03", type=_floats,
                        help="glove: phase-1 learning rates (phase 2: 10x lower)")
    parser.add_argument("--random-lrs", default="0.01,0.001", type=_floats,
                        help="scratch: learning rates")
    parser.add_argument("--frozen-lrs", default="0.001,0.01", type=_floats,
                        help="minilm-frozen: learning rates of the head (cheap: cached features)")
    parser.add_argument("--ft-lrs", default="1e-4", type=_floats,
                        help="minilm-ft: phase-2 learning rates")
    parser.add_argument("--unfreeze-blocks", type=int, default=3,
                        help="minilm-ft: transformer blocks unfrozen in phase 2, from the top")
    parser.add_argument("--sequence-length", type=int, default=256,
                        help="minilm arms: tokens per review (256 chosen on validation)")
    parser.add_argument("--min-steps", type=int, default=400,
                        help="fewest optimizer steps per phase (small budgets get more epochs)")
    parser.add_argument("--ft-min-steps", type=int, default=60,
                        help="fewest optimizer steps of minilm-ft's phase 2")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", help="keep the run directories here (default: a temp dir)")
    parser.add_argument("--cache-dir", help="feature cache (default: a temp dir)")
    return parser


def main() -> None:
    args = _parser().parse_args()
    logging.basicConfig(level=logging.WARNING)
    arms = [a for a in args.arms.split(",") if a]
    unknown = sorted(set(arms) - set(ARMS))
    if unknown:
        raise SystemExit(f"Unknown arms {unknown}; valid: {', '.join(ARMS)}")
    frame = read_csv(args.train)
    test = _sample(read_csv(args.test), args.test_size, args.seed)
    budgets = [int(b) for b in args.budgets.split(",")]
    print(f"test: {len(test)} reviews (fixed stratified sample, seed {args.seed})", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.out or tmp)
        args.cache_dir = args.cache_dir or str(Path(tmp, "cache"))
        rows = []
        for budget in budgets:
            sample = _sample(frame, budget, args.seed)
            for arm in arms:
                result = _best(_arm_configs(arm, args, budget), sample, test, root,
                               f"{budget}-{arm}")
                load = "/".join(f"{v:.1f}" for v in os.getloadavg())
                rows.append((budget, arm, result))
                print(f"{budget:>6} labels  {arm:<14} test {result['test']:.4f}  "
                      f"val {result['val']:.4f}  {result['seconds']:>6.0f} s  "
                      f"({_describe(arm, result['train'])}; tried {result['tried']}; "
                      f"load {load})", flush=True)
    _table(rows, arms, budgets)


def _table(rows, arms, budgets) -> None:
    results = {(b, a): r for b, a, r in rows}
    print("\n| labels | " + " | ".join(arms) + " | best transfer - best scratch |")
    print("| --- " * (len(arms) + 2) + "|")
    for budget in budgets:
        cells = []
        for arm in arms:
            r = results.get((budget, arm))
            cells.append(f"{r['test']:.4f} ({r['seconds']:.0f} s)" if r else "-")
        transfer = [results[(budget, a)]["test"] for a in arms
                    if a != "scratch" and (budget, a) in results]
        scratch = results.get((budget, "scratch"))
        gap = f"{100 * (max(transfer) - scratch['test']):+.1f} pt" if transfer and scratch else "-"
        print(f"| {budget:,} | " + " | ".join(cells) + f" | {gap} |")


if __name__ == "__main__":
    main()
