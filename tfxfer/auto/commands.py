"""`tfxfer advise` and `tfxfer lr-find`: the advisor and the LR finder without training.

Both take the same flags as `tfxfer train` (data, backbone, image size, ...): `tfxfer.cli`
adds those and passes their overrides to the run functions.
"""

from __future__ import annotations

import argparse
import functools
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tfxfer.auto.advisor import AdvisorSettings


def add_advise_arguments(parser: argparse.ArgumentParser) -> None:
    # Defaults are left to `AdvisorSettings`: importing it here would import TensorFlow
    # while the parser is built, before `tfxfer.cli` has chosen the oneDNN setting.
    parser.add_argument("--lots-per-class", type=int,
                        help="examples per class from which data counts as lots (default 300)")
    parser.add_argument("--similar-above", type=float,
                        help="top/best probe ratio from which data counts as similar "
                             "(default 0.9)")
    parser.add_argument("--cut-above", type=float,
                        help="lots of different data: the head on the best depth when its "
                             "probe scores at least this, else from scratch (default 0.5)")
    parser.add_argument("--gain-above", type=float,
                        help="and only when pretrained probes beat random ones by this much "
                             "(default: off, random weights are not probed)")
    parser.add_argument("--bn-shift", action="store_true", default=None,
                        help="also measure the BatchNorm-statistics shift (reported only)")


def _settings(args: argparse.Namespace) -> AdvisorSettings:
    from tfxfer.auto.advisor import AdvisorSettings

    given = {name: getattr(args, name) for name in ("lots_per_class", "similar_above",
                                                    "cut_above", "gain_above", "bn_shift")}
    return AdvisorSettings(**{k: v for k, v in given.items() if v is not None})


def _config_and_splits(args: argparse.Namespace, overrides: dict, **train_overrides):
    from tfxfer.config import load_config
    from tfxfer.data.sources import load_splits
    from tfxfer.experiment import resolve_config

    overrides.setdefault("train", {}).update(train_overrides)
    config = resolve_config(load_config(args.config, overrides))
    return config, load_splits(config.data, config.model.image_input_size, config.model.audio)


def run_advise(args: argparse.Namespace, overrides: dict) -> int:
    from tfxfer.auto.advisor import advise, format_advice, write_advice

    config, splits = _config_and_splits(args, overrides, strategy="auto")
    settings = _settings(args)
    advice = advise(config, splits, settings)
    print(format_advice(advice))
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        print(f"written: {write_advice(args.out, advice)}")
    return 0


def add_lr_find_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=int, default=100, help="batches in the sweep")


def run_lr_find(args: argparse.Namespace, overrides: dict) -> int:
    from tfxfer.auto.lr_finder import write_lr_find
    from tfxfer.auto.resolve import find_learning_rate, resolve_auto
    from tfxfer.experiment import build_classifier

    fixed = {"learning_rate": 1e-3} if args.learning_rate == "auto" else {}  # swept below
    config, splits = _config_and_splits(args, overrides, **fixed)
    out = Path(args.out or Path("runs", time.strftime("lr-find-%Y%m%d-%H%M%S")))
    out.mkdir(parents=True, exist_ok=True)
    build = functools.partial(build_classifier, modality=splits.modality,
                              num_classes=len(splits.class_names))
    config = resolve_auto(config, splits, out, build)  # a strategy or feature layer "auto" first
    result = find_learning_rate(config, splits, build, steps=args.steps)
    plot = write_lr_find(out, result, f"phase 1 ({config.train.strategy})")
    print(f"suggested phase-1 learning rate: {result.suggestion:.3g} "
          f"({len(result.learning_rates)} steps, {result.seconds:.1f} s)")
    print(f"plot: {plot}")
    return 0
