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

import keras
import numpy as np

from tfxfer.adaptation.bound import bound_score
from tfxfer.adaptation.data import image_batches, scan_target_images, seeded_sample
from tfxfer.adaptation.digits import USPS_FRAMES, build_mnist_m, build_usps
from tfxfer.adaptation.reverse_validation import REVERSE_VALIDATION
from tfxfer.config import ADAPTATION_FEATURES, AUTO, load_config
from tfxfer.experiment import train
from tfxfer.image.model import POOLING
from tfxfer.reports.adaptation import projection_figure
from tfxfer.reports.plotting import save_figure

CONFIG = Path(__file__).with_name("config.yaml")
ARMS = ("source_only", "dann", "train_on_target")
PAIRS = {"mnist_m": "MNIST -> MNIST-M", "usps": "MNIST -> USPS"}
# Examples per domain in the bound score of `--adaptation-features bound`.
BOUND_EXAMPLES = 1000
BOUND = "bound"
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
    parser.add_argument("--adaptation-lambda", type=_lambda_or_auto,
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


def _lambda_or_auto(text: str) -> float | str:
    return text if text == AUTO else float(text)


def prepare_data(args: argparse.Namespace) -> dict[str, dict[str, Path]]:
    """Builds (once) the MNIST, MNIST-M and USPS folders under OUT/data."""
    root = Path(args.out, "data")
    assets = Path(args.assets)
    stamp = root / "digits.json"
    wanted = {"source": args.source_digits, "target_train": args.target_digits,
              "target_test": args.test_digits, "seed": args.seed}
    if stamp.is_file() and json.loads(stamp.read_text()) != wanted:
        raise SystemExit(f"{root} was built with {stamp.read_text()}; choose another --out.")
    mnist_m = {"source": root / "mnist", "target_train": root / "mnist_m" / "train",
               "target_test": root / "mnist_m" / "test"}
    if not stamp.is_file():
        build_mnist_m(assets / "digits" / "mnist.npz", assets / "flower_photos", root,
                      source=args.source_digits, target_train=args.target_digits,
                      target_test=args.test_digits, seed=args.seed)
        stamp.write_text(json.dumps(wanted))
    # One USPS folder per framing, so both can live under one OUT.
    usps_root = root / f"usps_{args.usps_frame}"
    if not (usps_root / "usps").is_dir():
        build_usps(assets / "digits" / "usps.npz", usps_root, seed=args.seed,
                   frame=args.usps_frame)
    usps = {"source": mnist_m["source"], "target_train": usps_root / "usps" / "train",
            "target_test": usps_root / "usps" / "test"}
    return {"mnist_m": mnist_m, "usps": usps}


def dann_setting(pair: str, name: str, args: argparse.Namespace):
    """`args.<name>` when given, else the pair's PAIR_SETTINGS."""
    value = getattr(args, name)
    return PAIR_SETTINGS[pair][name] if value is None else value


def arm_overrides(pair: str, arm: str, folders: dict[str, Path],
                  args: argparse.Namespace) -> dict:
    """The config of one arm: source only, DANN or train on target."""
    data = {"test_source": str(folders["target_test"]), "seed": args.seed}
    train_section = {"strategy": "from_scratch"}
    if arm == "train_on_target":
        data["source"] = str(folders["target_train"])
        # The same number of training steps as the source arms, on more or fewer examples.
        ratio = _count(folders["source"]) / _count(folders["target_train"])
        train_section["epochs"] = max(1, round(args.epochs * ratio))
    else:
        data["source"] = str(folders["source"])
    if arm == "dann":
        data["target_source"] = str(folders["target_train"])
        data["target_test_source"] = str(folders["target_test"])
        train_section["strategy"] = "domain_adaptation"
        train_section["adaptation_lambda"] = dann_setting(pair, "adaptation_lambda", args)
        train_section["adaptation_lambdas"] = [float(v) for v in args.adaptation_lambdas.split(",")]
        train_section["adaptation_features"] = dann_setting(pair, "adaptation_features", args)
    train_section.setdefault("epochs", args.epochs)
    model = {}
    if args.backbone:
        model = {"image": {"backbone": args.backbone, "weights": args.weights or "imagenet",
                           "image_size": args.image_size}}
        if train_section["strategy"] == "from_scratch" and model["image"]["weights"] != "none":
            train_section["strategy"] = "fine_tune"
    return {"data": data, "model": model, "train": train_section}


def _count(folder: Path) -> int:
    return sum(1 for _ in folder.rglob("*.png"))


def run_arm(pair: str, arm: str, folders: dict[str, Path], args: argparse.Namespace,
            name: str | None = None):
    out = Path(args.out, pair, name or arm)
    config = load_config(CONFIG, {**arm_overrides(pair, arm, folders, args), "out": str(out)})
    start = time.perf_counter()
    result = train(config)
    seconds = time.perf_counter() - start
    logging.info("%s %s: target test accuracy %.4f (%.0f s)", pair, arm,
                 result.evaluation.accuracy, seconds)
    return result, seconds


def adapted_by_bound(pair: str, folders: dict[str, Path], args: argparse.Namespace):
    """The DANN arm, its features chosen by the bound's label-free score when "bound".

    Runs DANN once per choice of ADAPTATION_FEATURES (OUT/<pair>/dann_<choice>) and keeps
    the run whose bound score (source validation error + PAD/2 on the representation the
    label layer reads, against unlabelled target training images) is lowest. Returns
    (result, seconds, {choice: score dict}); the scores are empty for a fixed choice.
    """
    if args.adaptation_features != BOUND:
        result, seconds = run_arm(pair, "dann", folders, args)
        return result, seconds, {}
    target = scan_target_images(folders["target_train"]).paths
    sample = seeded_sample(target, BOUND_EXAMPLES, args.seed)
    runs, scores, total = {}, {}, 0.0
    for choice in ADAPTATION_FEATURES:
        fixed = argparse.Namespace(**{**vars(args), "adaptation_features": choice})
        runs[choice], seconds = run_arm(pair, "dann", folders, fixed, name=f"dann_{choice}")
        total += seconds
        result = runs[choice]
        size = result.config.model.image_input_size
        scores[choice] = bound_score(
            result.model, result.splits.batches("val", result.config.data),
            image_batches(sample, size, 256), limit=BOUND_EXAMPLES, seed=args.seed).to_dict()
        logging.info("%s DANN on %s: bound score %.4f (%s)", pair, choice,
                     scores[choice]["score"], scores[choice])
    best = min(ADAPTATION_FEATURES, key=lambda c: scores[c]["score"])
    return runs[best], total, scores


def _features(model: keras.Model, folder: Path, size: int, limit: int = 500) -> np.ndarray:
    paths = sorted(folder.rglob("*.png"))
    paths = [paths[i] for i in np.linspace(0, len(paths) - 1, min(limit, len(paths))).astype(int)]
    images = np.stack([
        keras.utils.img_to_array(keras.utils.load_img(p, color_mode="rgb",
                                                      target_size=(size, size)))
        for p in paths
    ]).astype("uint8")
    extractor = keras.Model(model.inputs, model.get_layer(POOLING).output)
    return extractor.predict(images, verbose=0)


def feature_figure(pair: str, results: dict, folders: dict[str, Path], out: Path) -> Path:
    """PCA of source vs target test features: source-only model vs DANN model."""
    panels = {}
    for arm, title in (("source_only", "source only (no adaptation)"), ("dann", "DANN")):
        model = results[arm].model
        size = results[arm].config.model.image_input_size
        panels[title] = (_features(model, folders["source"], size),
                         _features(model, folders["target_test"], size))
    return save_figure(projection_figure(panels, ("MNIST", PAIRS[pair].split()[-1])),
                       out / f"{pair}_features.png")


def dann_lambda(result) -> dict:
    """The DANN arm's λ ceiling, and the reverse-validation scores when it was chosen."""
    path = Path(result.run_dir, REVERSE_VALIDATION)
    chosen = {"lambda": result.config.train.adaptation_lambda}
    if path.is_file():
        scores = json.loads(path.read_text())
        chosen["reverse_validation"] = {
            "scores": {f"{c['features']} λ {c['lambda_max']:g}": c["reverse_accuracy"]
                       for c in scores["candidates"]},
            "features_searched": len({c["features"] for c in scores["candidates"]}) > 1,
            "steps": scores["steps"], "seconds": scores["seconds"]}
    return chosen


def table_markdown(rows: list[dict]) -> str:
    lines = ["| pair | source only | DANN | λ | domain head reads | train on target "
             "| DANN - source only |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        a, chosen = row["accuracy"], row["dann_lambda"]
        reverse = chosen.get("reverse_validation", {})
        how = " (reverse validation)" if reverse else ""
        reads = row["dann_features"] + (" (bound score)" if row["bound_scores"] else "")
        if reverse.get("features_searched"):
            reads += " (reverse validation)"
        lines.append(f"| {PAIRS[row['pair']]} | {a['source_only']:.4f} | {a['dann']:.4f} | "
                     f"{chosen['lambda']:g}{how} | {reads} | {a['train_on_target']:.4f} | "
                     f"{a['dann'] - a['source_only']:+.4f} |")
    for pair, paper in PAPER.items():
        lines.append(f"| {PAIRS[pair]} (paper) | {paper['source_only']:.4f} | "
                     f"{paper['dann']:.4f} | 1 | pooling | {paper['train_on_target']:.4f} | "
                     f"{paper['dann'] - paper['source_only']:+.4f} |")
    for row in rows:
        if row["bound_scores"]:
            scores = "; ".join(
                f"{c}: {v['score']:.4f} (source error {v['source_error']:.4f} + PAD "
                f"{v['pad']:.3f}/2)" for c, v in row["bound_scores"].items())
            lines.append(f"\n{PAIRS[row['pair']]}: bound scores of the DANN runs (no target "
                         f"label; lower is kept): {scores}")
    for row in rows:
        if reverse := row["dann_lambda"].get("reverse_validation"):
            scores = ", ".join(f"{k}: {v:.4f}" for k, v in reverse["scores"].items())
            lines.append(f"\n{PAIRS[row['pair']]}: reverse-validation scores (reverse "
                         f"classifier on source validation; {reverse['steps']} steps per run, "
                         f"{reverse['seconds']:.0f} s): {scores}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse(argv)
    start = time.perf_counter()
    folders = prepare_data(args)
    rows = []
    for pair in args.pairs.split(","):
        results, seconds, bound = {}, {}, {}
        for arm in ARMS:
            if arm == "dann":
                results[arm], seconds[arm], bound = adapted_by_bound(pair, folders[pair], args)
            else:
                results[arm], seconds[arm] = run_arm(pair, arm, folders[pair], args)
        feature_figure(pair, results, folders[pair], Path(args.out))
        rows.append({"pair": pair, "seconds": seconds,
                     "accuracy": {a: results[a].evaluation.accuracy for a in ARMS},
                     "dann_lambda": dann_lambda(results["dann"]),
                     "dann_features": results["dann"].config.train.adaptation_features,
                     "bound_scores": bound})
    total = time.perf_counter() - start
    table = table_markdown(rows)
    Path(args.out, "table.md").write_text(table + f"\n\nwall time: {total:.0f} s\n")
    Path(args.out, "table.json").write_text(json.dumps(
        {"rows": rows, "seconds": total, "args": vars(args)}, indent=2))
    print(table)
    print(f"wall time: {total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
