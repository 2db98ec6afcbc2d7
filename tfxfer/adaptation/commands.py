"""The `tfxfer build-mnist-m` command: MNIST and MNIST-M image folders from disjoint digits.

An (add_arguments, run) pair listed in `tfxfer.cli.COMMANDS`; the work is imported
inside `run_build_mnist_m`, so `tfxfer --help` stays fast.
"""

from __future__ import annotations

import argparse


def add_build_mnist_m_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("mnist", help="pooled MNIST .npz (arrays x [N, 28, 28] and y)")
    parser.add_argument("photos", help="folder of colour photos to crop backgrounds from")
    parser.add_argument("--out", required=True, help="folder to write mnist/ and mnist_m/ into")
    parser.add_argument("--source", type=int, default=30_000, help="labelled MNIST digits")
    parser.add_argument("--target-train", type=int, default=30_000,
                        help="digits MNIST-M's train split is made from")
    parser.add_argument("--target-test", type=int, default=10_000,
                        help="digits MNIST-M's test split is made from")
    parser.add_argument("--seed", type=int, default=0)


def run_build_mnist_m(args: argparse.Namespace) -> int:
    from tfxfer.adaptation.digits import build_mnist_m

    folders = build_mnist_m(args.mnist, args.photos, args.out, source=args.source,
                            target_train=args.target_train, target_test=args.target_test,
                            seed=args.seed)
    for name, folder in folders.items():
        print(f"{name}: {folder}")
    print(f"train with: tfxfer train --data {folders['source']} --strategy domain_adaptation "
          f"--target-data {folders['target_train']} --test-data {folders['target_test']} ...")
    return 0
