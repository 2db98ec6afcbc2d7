"""Benchmark: self-training on the flowers with 10 labelled photos per class.

The 600 flower photos are split per class (seed 0) into 30 test, 18 validation, 10
labelled training and 62 unlabelled photos (the 360 + 90 + 150 of a 60/15/25 split, of
whose 72 training photos per class 10 keep their label). `tfxfer train` runs with the
labelled folder (28 per class, 18 carved for validation) and the unlabelled folder as
--unlabelled-data (its class subfolders are ignored for training; they only measure
the pseudo-labels' accuracy). Round 0 is the labelled-only baseline; each later round
is a student. MobileNet alpha=0.25 ImageNet at --image-size px, feature extraction
(the head on cached features of --augmented-copies augmented copies per photo).

    KERAS_HOME=/tmp/keras_home python bench/self_training.py --assets /work/shared/assets
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

COUNTS = {"test": 30, "val": 18, "labelled": 10}


def _load() -> str:
    return "load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def make_folders(photos: Path, root: Path, seed: int) -> dict[str, Path]:
    """labelled/ (train + validation), test/, unlabelled/ (class subfolders) under root."""
    folders = {name: root / name for name in ("labelled", "test", "unlabelled")}
    for index, class_dir in enumerate(sorted(p for p in photos.iterdir() if p.is_dir())):
        files = sorted(class_dir.glob("*.jpg"))
        order = np.random.default_rng([seed, index]).permutation(len(files))
        files = [files[i] for i in order]
        test, rest = files[:COUNTS["test"]], files[COUNTS["test"]:]
        keep = COUNTS["val"] + COUNTS["labelled"]
        for name, chosen in (("test", test), ("labelled", rest[:keep]),
                             ("unlabelled", rest[keep:])):
            target = folders[name] / class_dir.name
            target.mkdir(parents=True, exist_ok=True)
            for f in chosen:
                (target / f.name).symlink_to(f)
    return folders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=Path, default=Path(os.environ.get(
        "TFXFER_ASSETS", "/work/shared/assets")))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--augmented-copies", type=int, default=3)
    parser.add_argument("--precision", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("/tmp/self_training_bench"))
    args = parser.parse_args()
    from tfxfer import cli

    if args.out.exists():
        shutil.rmtree(args.out)
    root = Path(tempfile.mkdtemp(prefix="flowers-few-"))
    folders = make_folders(args.assets / "flower_photos", root, args.seed)
    val_fraction = COUNTS["val"] / (COUNTS["val"] + COUNTS["labelled"])
    print(_load(), flush=True)
    start = time.perf_counter()
    code = cli.main([
        "train", "--data", str(folders["labelled"]), "--test-data", str(folders["test"]),
        "--unlabelled-data", str(folders["unlabelled"]), "--val-fraction", f"{val_fraction:.4f}",
        "--seed", str(args.seed), "--backbone", "mobilenet", "--backbone-arg", "alpha=0.25",
        "--weights", "imagenet", "--image-size", str(args.image_size),
        "--strategy", "feature_extraction", "--epochs", str(args.epochs),
        "--augmented-copies", str(args.augmented_copies), "--learning-rate", "0.003",
        "--self-training-rounds", str(args.rounds),
        "--self-training-precision", str(args.precision), "--no-tensorboard",
        "--verbose", "0", "--out", str(args.out)])
    print(f"exit {code} after {time.perf_counter() - start:.0f} s ({_load()})")
    summary = json.loads((args.out / "self_training.json").read_text())
    base = summary["rounds"][0]
    for r in summary["rounds"]:
        print(f"round {r['round']}: val {r['val_accuracy']:.4f} test {r['test_accuracy']:.4f} "
              f"({100 * (r['test_accuracy'] - base['test_accuracy']):+.1f} points) threshold "
              f"{r['threshold']} pseudo-labelled {r['pseudo_labelled']} "
              f"(accuracy {r['pseudo_label_accuracy']})")
    print(f"best round by validation: {summary['best_round']}")
    shutil.rmtree(root)


if __name__ == "__main__":
    main()
