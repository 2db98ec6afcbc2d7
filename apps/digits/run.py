"""Digits: unsupervised domain adaptation (DANN) reproducing Ganin & Lempitsky's table.

Three arms with one architecture (the paper's small CNN, `dann_mnist_cnn`), for
two domain pairs, every accuracy on the target's test split:

    source only       train on labelled MNIST                       (lower bound)
    DANN              + unlabelled target images, domain-adversarial (λ -> 1, or
                      chosen by reverse validation with --adaptation-lambda auto)
    train on target   train on the labelled target train split      (upper bound)

    MNIST -> MNIST-M  MNIST-M made here from digits the source does not use,
                      blended with crops of ../shared/assets/flower_photos
    MNIST -> USPS     ../shared/assets/digits/usps.npz (16x16), resized to 28x28
                      (--usps-frame mnist: put into MNIST's frame instead, box 20x20,
                      centre of mass at the centre of 28x28)

Run (7 minutes on 2 quiet CPU cores with the defaults; see bench/README.md):

    python apps/digits/run.py --assets ../shared/assets --out runs/digits

`--pairs usps` (or `mnist_m`) runs one pair's three arms.

Data: 10,000 MNIST digits for the source (9,000 train / 1,000 validation), and
MNIST-M made from 20,000 other digits (train: unlabelled for DANN, labelled for
the upper bound) and 10,000 more (test); USPS split 2,500 / 2,500. Every arm runs
the same number of training steps (20 epochs of the source).

DANN's settings per pair (PAIR_SETTINGS): MNIST-M uses the paper's (λ ceiling 1, the
domain head on the pooled features). For USPS the paper gives none, so they are chosen
as the paper chooses hyper-parameters, by reverse validation (Ganin et al., JMLR 2016):
every pair of a features choice (pooled features, the head's hidden layer) and a λ of
`--adaptation-lambdas` is scored before the DANN arm trains, by a short forward DANN
(MNIST -> target) and a short reverse DANN (pseudo-labelled target -> MNIST, MNIST
labels hidden), 15% of the arm's steps each, scored by the reverse classifier's accuracy
on the MNIST validation split; OUT/<pair>/dann/reverse_validation.json holds the scores.
`--adaptation-features` and `--adaptation-lambda` set both pairs alike (a value or auto);
`--adaptation-features bound` trains the DANN arm once per features choice
(OUT/<pair>/dann_pooling, dann_hidden) and keeps the run with the lower bound score
(`tfxfer.adaptation.bound`: source validation error plus half the proxy A-distance
between MNIST and unlabelled target representations). The table shows what each DANN
arm used and how it was chosen.

The table is printed and written to OUT/table.md and OUT/table.json; every arm is
an ordinary run directory under OUT/<pair>/<arm> (report.html, model.keras, ...),
and OUT/<pair>_features.png shows PCA of source vs target features of the
source-only and the DANN model. `--backbone NAME --weights imagenet --image-size N`
puts a registry backbone under the same three arms instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from tfxfer.adaptation.arms import BOUND, ArmSettings, DomainPair, arms_table, compare_arms
from tfxfer.adaptation.digits import USPS_FRAMES, digit_pairs
from tfxfer.config import ADAPTATION_FEATURES, AUTO

CONFIG = Path(__file__).with_name("config.yaml")
PAIRS = {"mnist_m": "MNIST -> MNIST-M", "usps": "MNIST -> USPS"}
# DANN's settings where --adaptation-features / --adaptation-lambda are not given: the
# paper's for MNIST-M; chosen by reverse validation for USPS (no published setting).
PAIR_SETTINGS = {"mnist_m": {"adaptation_features": "pooling", "adaptation_lambda": 1.0},
                 "usps": {"adaptation_features": AUTO, "adaptation_lambda": AUTO}}
PAPER = {"mnist_m": {"source_only": 0.5225, "dann": 0.7666, "train_on_target": 0.9596}}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", default="../shared/assets", help="offline assets folder")
    parser.add_argument("--out", default="runs/digits", help="output folder")
    parser.add_argument("--pairs", default="mnist_m,usps", help="comma-separated: mnist_m,usps")
    parser.add_argument("--source-digits", type=int, default=10_000)
    parser.add_argument("--target-digits", type=int, default=20_000,
                        help="MNIST-M train digits (unlabelled for DANN)")
    parser.add_argument("--test-digits", type=int, default=10_000, help="MNIST-M test digits")
    parser.add_argument("--epochs", type=int, default=20,
                        help="epochs of the source arms; train-on-target runs as many steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--usps-frame", choices=USPS_FRAMES, default="resize",
                        help="resize (default): the 16x16 digits stretched to the input "
                             "size; mnist: USPS digits scaled into a 20x20 box and centred "
                             "by centre of mass in 28x28, as MNIST was made")
    parser.add_argument("--adaptation-lambda", type=lambda v: v if v == AUTO else float(v),
                        help="DANN's λ ceiling for every pair, or auto: reverse validation "
                             "picks it among --adaptation-lambdas without target labels "
                             "(default: 1, the paper's, for MNIST-M; auto for USPS)")
    parser.add_argument("--adaptation-lambdas", default="0,0.1,0.3,1",
                        help="the candidates of --adaptation-lambda auto")
    parser.add_argument("--adaptation-features", choices=(*ADAPTATION_FEATURES, AUTO, BOUND),
                        help="what DANN's domain classifier reads, for every pair: pooling "
                             "(the paper's split after the convolutions), hidden (the head's "
                             "hidden layer), auto (reverse validation, with the λ when that "
                             "is auto) or bound (a DANN run with each, the one with the lower "
                             "bound score kept); default: pooling for MNIST-M, auto for USPS")
    parser.add_argument("--backbone", help="a registry backbone instead of dann_mnist_cnn")
    parser.add_argument("--weights", help="weights of --backbone (imagenet, none, a file)")
    parser.add_argument("--image-size", type=int)
    return parser.parse_args(argv)


def dann_setting(pair: str, name: str, args: argparse.Namespace):
    """`args.<name>` when given, else the pair's PAIR_SETTINGS."""
    value = getattr(args, name)
    return PAIR_SETTINGS[pair][name] if value is None else value


def settings(pair: str, args: argparse.Namespace) -> ArmSettings:
    """The arms' settings of one pair: the flags, DANN's per-pair defaults."""
    return ArmSettings(
        epochs=args.epochs, seed=args.seed,
        features=dann_setting(pair, "adaptation_features", args),
        lambda_max=dann_setting(pair, "adaptation_lambda", args),
        lambda_grid=[float(v) for v in args.adaptation_lambdas.split(",")],
        backbone=args.backbone, weights=args.weights, image_size=args.image_size)


def main(argv: list[str]) -> int:
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse(argv)
    start = time.perf_counter()
    out = Path(args.out)
    try:  # MNIST, MNIST-M and USPS folders, built once under OUT/data
        folders = digit_pairs(args.assets, out / "data", source=args.source_digits,
                              target_train=args.target_digits, target_test=args.test_digits,
                              seed=args.seed, usps_frame=args.usps_frame)
    except FileExistsError as err:
        raise SystemExit(str(err)) from err
    rows = [compare_arms(pair, DomainPair(**folders[pair]), settings(pair, args), CONFIG, out,
                         domains=("MNIST", PAIRS[pair].split()[-1]))
            for pair in args.pairs.split(",")]
    total = time.perf_counter() - start
    table = arms_table(rows, PAIRS, PAPER)
    (out / "table.md").write_text(table + f"\n\nwall time: {total:.0f} s\n")
    (out / "table.json").write_text(json.dumps(
        {"rows": rows, "seconds": total, "args": vars(args)}, indent=2))
    print(table)
    print(f"wall time: {total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
