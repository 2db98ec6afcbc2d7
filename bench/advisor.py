"""Benchmark: does `--strategy auto` pick the best strategy, and cheaply?

Tasks in different cells of the size x similarity matrix, all offline:

  flowers        600 tf_flowers photos (5 classes; 360 train, 150 test), MobileNet
                 alpha=0.25 ImageNet at 112 px: little data, similar to ImageNet
  digits-small   colour MNIST at 32 px, 40 digits per class (34 per class train after
                 validation): little data, different
  digits-large   colour MNIST at 32 px, --large-train digits (default 5,000; 450 per
                 class train after validation): lots of data, different

Colour MNIST: every digit is drawn in a random colour on a random background
colour (fixed seed); the digit test set is 2,000 other digits, shared by both
digit tasks. Every task runs every strategy -- feature_extraction, fine_tune,
fine_tune_all, from_scratch, and earlier_layer_cut (feature extraction on the
cut chosen by `--feature-layer auto`) -- and then `--strategy auto`, with the
same epochs (from_scratch, feature extraction and the cut get both phases' epochs
in one, as `--strategy auto` does when it picks them), seed and learning
rate, augmentation off, and a fresh feature cache per run (no reuse between
arms). Sized for a 2-core machine shared with other jobs: small images, few
epochs (--epochs/--fine-tune-epochs, default 8 + 2: phase 1 trains the head on
cached features and is cheap, phase 2 and from_scratch are not), learning rate 3e-3,
phase 2 at 1e-4 (at 3e-4, the default tenth, two fine-tuning epochs on the flowers
lost 15 points to the head alone; at 1e-4 they kept its accuracy).

Results are appended to --results (JSON lines) as runs finish, and finished runs
are skipped when the script is started again, so it can be resumed. The table
printed at the end: test accuracy per task x strategy, auto's pick, whether it
is within 2 points of the best, and the measurement's cost against one full run.
With several --seeds (each seed also draws its own validation split), a task's
cells are the median over the seeds with their range, auto - best compares the
medians, and the seeds on which auto was within 2 points of that seed's best arm
are counted.

    KERAS_HOME=/work/keras_home python bench/advisor.py --assets ../shared/assets
    KERAS_HOME=/work/keras_home python bench/advisor.py --assets ../shared/assets \
        --tasks digits-small --seeds 42,1,2
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

import numpy as np

# "Within 2 points" counts 2.0 itself (3 of flowers' 150 test photos), float error aside.
_WITHIN = 0.02 + 1e-9
ARMS = ("feature_extraction", "fine_tune", "fine_tune_all", "from_scratch",
        "earlier_layer_cut", "auto")


def _load(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _colour_digits(x: np.ndarray, seed: int) -> np.ndarray:
    """Each digit in a random colour on a random background colour."""
    rng = np.random.default_rng(seed)
    fg = rng.integers(0, 256, (len(x), 1, 1, 3))
    bg = rng.integers(0, 256, (len(x), 1, 1, 3))
    too_close = np.abs(fg - bg).sum(-1, keepdims=True) < 150  # keep the digit visible
    fg = np.where(too_close, 255 - bg, fg)
    alpha = x[..., None].astype(np.float32) / 255
    return (bg * (1 - alpha) + fg * alpha).astype(np.uint8)


def _write_folder(root: Path, x: np.ndarray, y: np.ndarray) -> Path:
    from PIL import Image

    if root.is_dir():
        return root
    tmp = root.with_name(root.name + ".tmp")
    for i, (image, label) in enumerate(zip(x, y)):
        folder = tmp / str(int(label))
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:05d}.png")
    tmp.rename(root)
    return root


def make_digits(assets: Path, work: Path, small_per_class: int, large_train: int) -> dict:
    """Colour-MNIST folders: small train, large train, shared test (disjoint digits)."""
    data = np.load(assets / "digits" / "mnist.npz")
    x, y = data["x"], data["y"]
    x = _colour_digits(x, seed=0)
    test = slice(0, 2000)
    small = np.concatenate([np.flatnonzero(y[2000:] == c)[:small_per_class] + 2000
                            for c in range(10)])
    large = slice(2000, 2000 + large_train)
    return {
        "test": _write_folder(work / "digits-test", x[test], y[test]),
        "small": _write_folder(work / f"digits-small-{small_per_class}", x[small], y[small]),
        "large": _write_folder(work / f"digits-large-{large_train}", x[large], y[large]),
    }


def tasks(args) -> dict[str, dict]:
    work = Path(args.work)
    digits = make_digits(Path(args.assets), work, args.small_per_class, args.large_train)
    mobilenet = {"backbone": "mobilenet", "weights": "imagenet",
                 "backbone_kwargs": {"alpha": 0.25}, "augment": False}  # model.image
    return {
        "flowers": {
            "data": {"source": str(Path(args.assets) / "flower_photos"),
                     "val_fraction": 0.15, "test_fraction": 0.25},
            "model": {"image": {**mobilenet, "image_size": 112}},
        },
        "digits-small": {
            "data": {"source": str(digits["small"]), "test_source": str(digits["test"]),
                     "val_fraction": 0.15, "test_fraction": 0.0},
            "model": {"image": {**mobilenet, "image_size": 32}},
        },
        "digits-large": {
            "data": {"source": str(digits["large"]), "test_source": str(digits["test"]),
                     "val_fraction": 0.1, "test_fraction": 0.0},
            "model": {"image": {**mobilenet, "image_size": 32}},
        },
    }


def _overrides(task: dict, arm: str, args, seed: int, out: Path) -> dict:
    strategy = {"earlier_layer_cut": "feature_extraction"}.get(arm, arm)
    model = {"image": dict(task["model"]["image"])}
    if arm == "earlier_layer_cut":
        model["image"]["feature_layer"] = "auto"
    epochs, fine_tune_epochs = args.epochs, args.fine_tune_epochs
    if strategy == "feature_extraction":  # the same epoch budget, all for the head
        epochs, fine_tune_epochs = epochs + fine_tune_epochs, 0
    return {
        "data": {**task["data"], "seed": seed, "batch_size": 32,
                 "cache_dir": str(out / "cache")},
        "model": model,
        "train": {"strategy": strategy, "epochs": epochs, "learning_rate": args.learning_rate,
                  "fine_tune_learning_rate": args.fine_tune_learning_rate,
                  "fine_tune_epochs": fine_tune_epochs, "verbose": 0,
                  "tensorboard": False},
        "out": str(out / "run"),
    }


def run_arm(name: str, task: dict, arm: str, args, seed: int) -> dict:
    import keras

    from tfxfer.config import load_config
    from tfxfer.experiment import train

    out = Path(args.work) / "runs" / f"{name}-{arm}-{seed}-{time.strftime('%H%M%S')}"
    config = load_config(overrides=_overrides(task, arm, args, seed, out))
    keras.backend.clear_session()
    start = time.perf_counter()
    result = train(config)
    seconds = time.perf_counter() - start
    advice_path = result.run_dir / "advice.json"
    advice = json.loads(advice_path.read_text()) if advice_path.is_file() else None
    return {
        "task": name, "arm": arm, "seed": seed, "accuracy": result.evaluation.accuracy,
        "seconds": round(seconds, 1), "strategy": result.config.train.strategy,
        "feature_layer": result.config.model.image.feature_layer,
        "unfreeze_from": result.config.train.unfreeze_from,
        "train_examples": result.splits.size("train"),
        "test_examples": result.splits.size("test"),
        "advice": advice, "load": os.getloadavg(), "run_dir": str(result.run_dir),
    }


def _seed(row: dict) -> int:
    return row.get("seed", 42)  # rows written before --seeds existed ran with seed 42


def _pick(row: dict) -> str:
    advice = row["advice"] or {}
    pick = advice.get("choice", row["strategy"])
    if advice.get("feature_layer"):
        pick += f" @ {advice['feature_layer']}"
    return pick


def _cell(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def _cost(rows: list[dict]) -> str:
    """Median measurement seconds / rest of the auto run, and their median ratio."""
    spent = [(r["advice"] or {}).get("seconds", 0.0) for r in rows]
    rest = [r["seconds"] - s for r, s in zip(rows, spent)]
    ratio = np.median([s / max(f, 1e-9) for s, f in zip(spent, rest)])
    return f"{np.median(spent):.1f} s / {np.median(rest):.0f} s = {ratio:.0%}"


def table(results: list[dict]) -> str:
    """The markdown table: task x strategy accuracy (median over seeds), auto's pick, cost."""
    lines = ["| task | train | seeds | " + " | ".join(ARMS) + " | auto's pick | auto - best "
             "| measurement / rest of the run |",
             "| --- | --- | --- | " + " | ".join("---" for _ in ARMS) + " | --- | --- | --- |"]
    for task in dict.fromkeys(r["task"] for r in results):
        rows = [r for r in results if r["task"] == task]
        seeds = sorted({_seed(r) for r in rows})
        by_arm = {a: {_seed(r): r for r in rows if r["arm"] == a} for a in ARMS}
        cells = [_cell([r["accuracy"] for r in by_arm[a].values()]) if by_arm[a] else ""
                 for a in ARMS]
        pick, gap, cost = "", "", ""
        autos = by_arm["auto"]
        if autos:
            picks = [_pick(r) for r in autos.values()]
            pick = ", ".join(f"{p}" + (f" ({picks.count(p)}/{len(picks)})" if len(picks) > 1
                                       else "") for p in dict.fromkeys(picks))
            medians = [np.median([r["accuracy"] for r in by_arm[a].values()])
                       for a in ARMS[:-1] if by_arm[a]]
            if medians:
                auto = np.median([r["accuracy"] for r in autos.values()])
                gap = f"{100 * (auto - max(medians)):+.1f} pts"
            complete = [seed for seed in autos if all(seed in by_arm[a] for a in ARMS[:-1])]
            within = [seed for seed in complete if autos[seed]["accuracy"] >= max(
                by_arm[a][seed]["accuracy"] for a in ARMS[:-1]) - _WITHIN]
            if len(complete) > 1:
                gap += f"; within 2 pts on {len(within)}/{len(complete)} seeds"
            cost = _cost(list(autos.values()))
        train = rows[0]["train_examples"]
        lines.append(f"| {task} | {train} | {', '.join(map(str, seeds))} | " + " | ".join(cells)
                     + f" | {pick} | {gap} | {cost} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", default="../shared/assets")
    parser.add_argument("--work", default="/tmp/tfxfer-advisor-bench",
                        help="generated digit folders and run directories")
    parser.add_argument("--results", default="bench-advisor.jsonl")
    parser.add_argument("--tasks", default="flowers,digits-small,digits-large")
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--epochs", type=int, default=8, help="phase 1 (cheap: cached)")
    parser.add_argument("--fine-tune-epochs", type=int, default=2)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--fine-tune-learning-rate", type=float, default=1e-4)
    parser.add_argument("--small-per-class", type=int, default=40)
    parser.add_argument("--large-train", type=int, default=5000)
    parser.add_argument("--seeds", default="42",
                        help="comma-separated seeds; several: medians and ranges per arm")
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    results_path = Path(args.results)
    if not args.table_only:
        all_tasks = tasks(args)
        runs = [(name, seed, arm) for name in args.tasks.split(",")
                for seed in map(int, args.seeds.split(",")) for arm in args.arms.split(",")]
        for name, seed, arm in runs:
            if any((r["task"], _seed(r), r["arm"]) == (name, seed, arm)
                   for r in _load(results_path)):
                continue
            row = run_arm(name, all_tasks[name], arm, args, seed)
            with results_path.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"{name:<13} seed {seed:<3} {arm:<19} accuracy {row['accuracy']:.3f} "
                  f"{row['seconds']:.0f} s  load {row['load'][0]:.1f}", flush=True)
    print(table(_load(results_path)))
    print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
