"""Class-incremental learning on two splits: how much each arm forgets.

    python bench/forgetting.py --dataset flowers   # 3 flower classes, then 2 more
    python bench/forgetting.py --dataset mnist     # digits 0-4, then 5-9

A parent run learns the first classes (keeping 20 exemplars per class); then each arm
continues it on the new classes only, with `tfxfer train --from PARENT --data NEW`:

    naive          --lwf-weight 0                 (plain fine-tuning on the new data)
    lwf            (LwF, weight 1, T 2)
    rehearsal      --lwf-weight 0 --rehearsal 20
    lwf+rehearsal  --rehearsal 20
    joint          one run on the parent's and the new training data (the upper bound),
                   tested on the same test files as the children (--test-data)

Every arm is tested on the same examples: the new data's test split plus the parent's.
Accuracy on the old and the new classes is read from each run's predictions.csv;
forgetting = the parent's accuracy on the old classes minus the arm's. The table is
printed as Markdown with the load average and written to OUT/forgetting.json.

Flowers: /work/shared/assets/flower_photos (120 per class), MobileNet alpha 0.25 with
the ImageNet weights file of the assets (--weights PATH), 224 px, the head on cached
features (feature_extraction). MNIST: a stratified subsample of digits/mnist.npz
written as PNG folders, the DANN paper's small CNN trained from scratch at 28 px.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np

ASSETS = Path(os.environ.get("TFXFER_ASSETS", "/work/shared/assets"))
FLOWERS_OLD, FLOWERS_NEW = ("daisy", "dandelion", "roses"), ("sunflowers", "tulips")
MOBILENET = ASSETS / "keras" / "models" / "mobilenet_2_5_224_tf_no_top.h5"

DATASETS = {
    "flowers": {
        "common": ["--backbone", "mobilenet", "--backbone-arg", "alpha=0.25",
                   "--weights", str(MOBILENET), "--image-size", "224", "--no-augment",
                   "--strategy", "feature_extraction", "--epochs", "30",
                   "--learning-rate", "0.003"],
        "child": ["--epochs", "30", "--learning-rate", "0.003",
                  "--strategy", "feature_extraction"],
    },
    "mnist": {
        "common": ["--backbone", "dann_mnist_cnn", "--image-size", "28", "--no-augment",
                   "--strategy", "from_scratch", "--epochs", "8", "--fine-tune-epochs", "0"],
        "child": ["--strategy", "from_scratch", "--epochs", "8", "--fine-tune-epochs", "0"],
    },
}
ARMS = {
    "naive": ["--lwf-weight", "0"],
    "lwf": [],
    "rehearsal": ["--lwf-weight", "0", "--rehearsal", "20"],
    "lwf+rehearsal": ["--rehearsal", "20"],
}
SPLIT = ["--val-fraction", "0.15", "--test-fraction", "0.25", "--batch-size", "32",
         "--verbose", "0", "--no-tensorboard"]


def _link_classes(source: Path, names, target: Path) -> Path:
    for name in names:
        (target / name).mkdir(parents=True, exist_ok=True)
        for path in sorted((source / name).glob("*.jpg")):
            link = target / name / path.name
            if not link.exists():
                link.symlink_to(path.resolve())
    return target


def flowers_data(work: Path) -> tuple[Path, Path]:
    photos = ASSETS / "flower_photos"
    return (_link_classes(photos, FLOWERS_OLD, work / "data" / "old"),
            _link_classes(photos, FLOWERS_NEW, work / "data" / "new"))


def mnist_data(work: Path, per_class: int) -> tuple[Path, Path]:
    """The first `per_class` images of each digit (the file is shuffled) as PNG folders."""
    from PIL import Image

    with np.load(ASSETS / "digits" / "mnist.npz") as data:
        x, y = data["x"], data["y"]
    for digit in range(10):
        folder = work / "data" / ("old" if digit < 5 else "new") / str(digit)
        folder.mkdir(parents=True, exist_ok=True)
        for i, index in enumerate(np.flatnonzero(y == digit)[:per_class]):
            Image.fromarray(x[index]).save(folder / f"{digit}_{i}.png")
    return work / "data" / "old", work / "data" / "new"


def _tfxfer(argv: list[str]) -> None:
    from tfxfer.cli import main

    logging.getLogger(__name__).info("tfxfer %s", " ".join(argv))
    began = time.perf_counter()
    if main(argv) != 0:
        raise RuntimeError(f"tfxfer {' '.join(argv)} failed")
    logging.getLogger(__name__).info("%.0f s", time.perf_counter() - began)


def _files(run: Path, splits: tuple[str, ...]) -> list[tuple[str, str]]:
    rows = csv.DictReader((run / "splits.csv").open())
    return [(r["path"], r["label"]) for r in rows if r["split"] in splits]


def joint_data(parent: Path, child: Path, work: Path) -> tuple[Path, Path]:
    """Train+val of the parent and of a child without rehearsal; the child's test files."""
    parts = {"trainval": _files(parent, ("train", "val")) + _files(child, ("train", "val")),
             "test": _files(child, ("test",))}
    for part, files in parts.items():
        for path, label in files:
            link = work / "joint" / part / label / Path(path).name
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(Path(path).resolve())
    return work / "joint" / "trainval", work / "joint" / "test"


def group_accuracy(run: Path, old: set[str]) -> dict:
    """Accuracy on the test examples of the old and of the new classes (predictions.csv)."""
    rows = list(csv.DictReader((run / "predictions.csv").open()))
    result = {}
    for group, keep in (("old", lambda c: c in old), ("new", lambda c: c not in old)):
        hits = [r["true"] == r["predicted"] for r in rows if keep(r["true"])]
        result[group] = float(np.mean(hits)) if hits else float("nan")
        result[f"{group}_examples"] = len(hits)
    result["all"] = float(np.mean([r["true"] == r["predicted"] for r in rows]))
    return result


def run_dataset(name: str, work: Path, mnist_per_class: int, seed: int = 0) -> dict:
    settings = DATASETS[name]
    split = [*SPLIT, "--seed", str(seed)]
    old, new = flowers_data(work) if name == "flowers" else mnist_data(work, mnist_per_class)
    parent = work / "parent"
    started = time.perf_counter()
    _tfxfer(["train", "--data", str(old), "--out", str(parent), "--exemplars", "20",
             *settings["common"], *split])
    old_classes = set((parent / "labels.txt").read_text().split())
    results = {"parent": {"old": group_accuracy(parent, old_classes)["old"]}}
    for arm, flags in ARMS.items():
        out = work / arm
        _tfxfer(["train", "--from", str(parent), "--data", str(new), "--out", str(out),
                 *settings["child"], *flags, *split])
        results[arm] = group_accuracy(out, old_classes)
    trainval, test = joint_data(parent, work / "naive", work)
    _tfxfer(["train", "--data", str(trainval), "--test-data", str(test),
             "--out", str(work / "joint_run"), *settings["common"], *split])
    results["joint"] = group_accuracy(work / "joint_run", old_classes)
    for arm in (*ARMS, "joint"):
        results[arm]["forgetting"] = results["parent"]["old"] - results[arm]["old"]
    best = max(ARMS, key=lambda a: results[a]["all"])
    return {"dataset": name, "seed": seed, "results": results, "best_arm": best,
            "best_gap_to_joint": results["joint"]["all"] - results[best]["all"],
            "seconds": time.perf_counter() - started,
            "load": " ".join(f"{x:.2f}" for x in os.getloadavg())}


def markdown(summary: dict) -> str:
    r = summary["results"]
    lines = [f"{summary['dataset']}, seed {summary['seed']} (parent's old-class accuracy "
             f"{r['parent']['old']:.3f}; "
             f"load average {summary['load']}; {summary['seconds']:.0f} s)", "",
             "| arm | all | old classes | new classes | forgetting |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for arm in ("joint", *ARMS):
        lines.append(f"| {arm} | {r[arm]['all']:.3f} | {r[arm]['old']:.3f} | "
                     f"{r[arm]['new']:.3f} | {r[arm]['forgetting']:+.3f} |")
    lines.append(f"\nbest arm {summary['best_arm']}: {summary['best_gap_to_joint'] * 100:.1f} "
                 "points below joint")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=(*DATASETS, "both"), default="both")
    parser.add_argument("--out", default="/tmp/tfxfer-forgetting")
    parser.add_argument("--seed", type=int, default=0, help="split and shuffle seed")
    parser.add_argument("--mnist-per-class", type=int, default=300,
                        help="MNIST images per digit (before the splits)")
    args = parser.parse_args()
    from tfxfer.cli import start_process

    start_process("INFO")
    names = list(DATASETS) if args.dataset == "both" else [args.dataset]
    summaries = []
    for name in names:
        work = Path(args.out) / name
        shutil.rmtree(work, ignore_errors=True)
        summaries.append(run_dataset(name, work, args.mnist_per_class, args.seed))
        print(markdown(summaries[-1]), flush=True)
    Path(args.out, "forgetting.json").write_text(json.dumps(summaries, indent=2) + "\n")


if __name__ == "__main__":
    main()
