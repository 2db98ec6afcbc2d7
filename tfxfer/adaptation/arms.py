"""Three arms of one architecture on one domain pair, every accuracy on the target's test split.

    source_only       train on the labelled source                  (lower bound)
    dann              + unlabelled target images, domain-adversarial
    train_on_target   train on the labelled target train split      (upper bound)

Every arm is an ordinary run (`tfxfer.experiment.train`) over one config file, and
all three run the same number of training steps. DANN's features choice may be
"bound": one DANN run per choice of `ADAPTATION_FEATURES`, the one with the lower
label-free bound score kept (`tfxfer.adaptation.bound`). `compare_arms` runs a pair's
arms and returns the row `arms_table` prints; `apps/digits/run.py` is a recipe over it.

Example:
    pair = DomainPair(Path("mnist"), Path("mnist_m/train"), Path("mnist_m/test"))
    row = compare_arms("mnist_m", pair, ArmSettings(epochs=20), "config.yaml", Path("out"))
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from tfxfer.adaptation.bound import bound_score
from tfxfer.adaptation.data import (
    decoded_images,
    image_batches,
    image_files,
    scan_target_images,
    seeded_sample,
)
from tfxfer.config import ADAPTATION_FEATURES, load_config
from tfxfer.experiment import RunResult, train
from tfxfer.image.model import POOLING
from tfxfer.reports.adaptation import REVERSE_VALIDATION, projection_figure
from tfxfer.reports.plotting import save_figure

logger = logging.getLogger(__name__)

ARMS = ("source_only", "dann", "train_on_target")
# DANN's features setting that trains one run per choice and keeps the lower bound score.
BOUND = "bound"
# Examples per domain in the bound score.
BOUND_EXAMPLES = 1000
# Examples per domain in the feature projection figure.
FIGURE_EXAMPLES = 500


@dataclass(frozen=True)
class DomainPair:
    """The folders of one pair: labelled source, target train (unlabelled for DANN), test."""

    source: Path
    target_train: Path
    target_test: Path


@dataclass(frozen=True)
class ArmSettings:
    """What the arms share, and DANN's (`adaptation.features`, `.lambda_max`, `.lambda_grid`:
    a value or "auto"; features also "bound").

    `backbone` (with `weights`, `image_size`) replaces the config file's network; with
    pretrained weights the non-DANN arms fine-tune instead of training from scratch.
    """

    epochs: int = 20
    seed: int = 0
    features: str = "pooling"
    lambda_max: float | str = 1.0
    lambda_grid: list[float] = field(default_factory=lambda: [0.0, 0.1, 0.3, 1.0])
    backbone: str | None = None
    weights: str | None = None
    image_size: int | None = None


def _count(folder: Path) -> int:
    return len(image_files(folder))


def arm_overrides(arm: str, pair: DomainPair, settings: ArmSettings) -> dict[str, Any]:
    """The config overrides of one arm (over the arms' config file)."""
    if arm not in ARMS:
        raise ValueError(f"Unknown arm {arm!r}. Valid arms: {', '.join(ARMS)}")
    data = {"test_source": str(pair.target_test), "seed": settings.seed,
            "source": str(pair.target_train if arm == "train_on_target" else pair.source)}
    train_section: dict[str, Any] = {"strategy": "from_scratch", "epochs": settings.epochs}
    adaptation: dict[str, Any] = {}
    if arm == "train_on_target":
        # The same number of training steps as the source arms, on more or fewer examples.
        ratio = _count(pair.source) / _count(pair.target_train)
        train_section["epochs"] = max(1, round(settings.epochs * ratio))
    if arm == "dann":
        train_section["strategy"] = "domain_adaptation"
        adaptation = {"target_source": str(pair.target_train),
                      "target_test_source": str(pair.target_test),
                      "lambda_max": settings.lambda_max,
                      "lambda_grid": list(settings.lambda_grid),
                      "features": settings.features}
    model = {}
    if settings.backbone:
        model = {"image": {"backbone": settings.backbone,
                           "weights": settings.weights or "imagenet",
                           "image_size": settings.image_size}}
        if train_section["strategy"] == "from_scratch" and model["image"]["weights"] != "none":
            train_section["strategy"] = "fine_tune"
    return {"data": data, "model": model, "train": train_section, "adaptation": adaptation}


def train_arm(arm: str, pair: DomainPair, settings: ArmSettings, config_file: str | Path,
              out: Path) -> tuple[RunResult, float]:
    """Trains one arm into run directory `out`; returns the run and its seconds."""
    config = load_config(config_file, {**arm_overrides(arm, pair, settings), "out": str(out)})
    start = time.perf_counter()
    result = train(config)
    seconds = time.perf_counter() - start
    logger.info("%s: target test accuracy %.4f (%.0f s)", out, result.evaluation.accuracy,
                seconds)
    return result, seconds


def train_dann(pair: DomainPair, settings: ArmSettings, config_file: str | Path,
               out: Path) -> tuple[RunResult, float, dict[str, dict]]:
    """The DANN arm in OUT/dann; with features "bound", one run per features choice.

    With "bound", DANN runs once per choice of ADAPTATION_FEATURES (OUT/dann_<choice>)
    and the run whose bound score (source validation error + PAD/2 on the representation
    the label layer reads, against unlabelled target training images) is lowest is kept.

    Returns:
        (result, seconds of all its runs, {choice: score dict}; empty unless "bound").
    """
    if settings.features != BOUND:
        result, seconds = train_arm("dann", pair, settings, config_file, out / "dann")
        return result, seconds, {}
    sample = seeded_sample(scan_target_images(pair.target_train).paths, BOUND_EXAMPLES,
                           settings.seed)
    runs, scores, total = {}, {}, 0.0
    for choice in ADAPTATION_FEATURES:
        fixed = dataclasses.replace(settings, features=choice)
        runs[choice], seconds = train_arm("dann", pair, fixed, config_file,
                                          out / f"dann_{choice}")
        total += seconds
        result = runs[choice]
        size = result.config.model.image_input_size
        scores[choice] = bound_score(
            result.model, result.splits.batches("val", result.config.data),
            image_batches(sample, size, 256), limit=BOUND_EXAMPLES,
            seed=settings.seed).to_dict()
        logger.info("DANN on %s: bound score %.4f (%s)", choice, scores[choice]["score"],
                    scores[choice])
    best = min(ADAPTATION_FEATURES, key=lambda c: scores[c]["score"])
    return runs[best], total, scores


def pooled_features(model: keras.Model, folder: Path, size: int,
                    limit: int = FIGURE_EXAMPLES) -> np.ndarray:
    """The pooled backbone features of at most `limit` images of `folder`, evenly spaced."""
    paths = [str(p) for p in image_files(folder)]
    picked = np.linspace(0, len(paths) - 1, min(limit, len(paths))).astype(int)
    images = np.stack(list(decoded_images([paths[i] for i in picked], size)
                           .as_numpy_iterator()))
    extractor = keras.Model(model.inputs, model.get_layer(POOLING).output)
    return extractor.predict(images, verbose=0)


def feature_figure(results: Mapping[str, RunResult], pair: DomainPair,
                   domains: tuple[str, str], path: Path) -> Path:
    """PCA of source vs target test features: the source-only model vs the DANN model."""
    panels = {}
    for arm, title in (("source_only", "source only (no adaptation)"), ("dann", "DANN")):
        model, size = results[arm].model, results[arm].config.model.image_input_size
        panels[title] = (pooled_features(model, pair.source, size),
                         pooled_features(model, pair.target_test, size))
    return save_figure(projection_figure(panels, domains), path)


def dann_lambda(result: RunResult) -> dict[str, Any]:
    """The DANN run's λ ceiling, and the reverse-validation scores when they chose it."""
    path = Path(result.run_dir, REVERSE_VALIDATION)
    chosen: dict[str, Any] = {"lambda": result.config.adaptation.lambda_max}
    if path.is_file():
        scores = json.loads(path.read_text())
        chosen["reverse_validation"] = {
            "scores": {f"{c['features']} λ {c['lambda_max']:g}": c["reverse_accuracy"]
                       for c in scores["candidates"]},
            "features_searched": len({c["features"] for c in scores["candidates"]}) > 1,
            "steps": scores["steps"], "seconds": scores["seconds"]}
    return chosen


def compare_arms(name: str, pair: DomainPair, settings: ArmSettings,
                 config_file: str | Path, out: Path,
                 domains: tuple[str, str] = ("source", "target")) -> dict[str, Any]:
    """Trains the three arms of a pair under OUT/<name>/ and draws OUT/<name>_features.png.

    Returns:
        The pair's row: pair, seconds and accuracy per arm, dann_lambda (`dann_lambda`),
        dann_features (what DANN's domain head read) and bound_scores.
    """
    results, seconds, bound = {}, {}, {}
    for arm in ARMS:
        if arm == "dann":
            results[arm], seconds[arm], bound = train_dann(pair, settings, config_file,
                                                           out / name)
        else:
            results[arm], seconds[arm] = train_arm(arm, pair, settings, config_file,
                                                   out / name / arm)
    feature_figure(results, pair, domains, out / f"{name}_features.png")
    return {"pair": name, "seconds": seconds,
            "accuracy": {a: results[a].evaluation.accuracy for a in ARMS},
            "dann_lambda": dann_lambda(results["dann"]),
            "dann_features": results["dann"].config.adaptation.features,
            "bound_scores": bound}


def arms_table(rows: Sequence[dict], titles: Mapping[str, str],
               paper: Mapping[str, dict] | None = None) -> str:
    """Markdown: one line per row of `compare_arms` (and per published `paper` result),
    then the bound and reverse-validation scores behind each choice."""
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
        lines.append(f"| {titles[row['pair']]} | {a['source_only']:.4f} | {a['dann']:.4f} | "
                     f"{chosen['lambda']:g}{how} | {reads} | {a['train_on_target']:.4f} | "
                     f"{a['dann'] - a['source_only']:+.4f} |")
    for pair, p in (paper or {}).items():
        lines.append(f"| {titles[pair]} (paper) | {p['source_only']:.4f} | {p['dann']:.4f} | "
                     f"1 | pooling | {p['train_on_target']:.4f} | "
                     f"{p['dann'] - p['source_only']:+.4f} |")
    for row in rows:
        if row["bound_scores"]:
            scores = "; ".join(
                f"{c}: {v['score']:.4f} (source error {v['source_error']:.4f} + PAD "
                f"{v['pad']:.3f}/2)" for c, v in row["bound_scores"].items())
            lines.append(f"\n{titles[row['pair']]}: bound scores of the DANN runs (no target "
                         f"label; lower is kept): {scores}")
    for row in rows:
        if reverse := row["dann_lambda"].get("reverse_validation"):
            scores = ", ".join(f"{k}: {v:.4f}" for k, v in reverse["scores"].items())
            lines.append(f"\n{titles[row['pair']]}: reverse-validation scores (reverse "
                         f"classifier on source validation; {reverse['steps']} steps per run, "
                         f"{reverse['seconds']:.0f} s): {scores}")
    return "\n".join(lines)
