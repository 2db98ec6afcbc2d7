"""Self-training with pseudo-labels: a few labels plus unlabelled data (`--unlabelled-data`).

    teacher  = `tfxfer train` on the labelled data, as usual           OUT/round_0
    round r  = the teacher predicts the unlabelled examples; those whose top
               probability reaches the threshold get that class as their label;
               a student is trained, with the run's augmentation and dropout, on
               labelled + pseudo-labelled training examples            OUT/round_r
               and teaches round r + 1
    result   = the round with the best validation accuracy             OUT/self_training.json

The threshold is chosen on the validation split only: the smallest candidate at which
the teacher's predictions on validation with at least that confidence are correct at
least `train.self_training_precision` of the time (the largest candidate when none
is). The test split is only evaluated, never used for a choice.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfxfer.config import RunConfig
from tfxfer.data.splits import Splits
from tfxfer.evaluation import predict_dataset
from tfxfer.unsupervised.sources import read_items

logger = logging.getLogger(__name__)

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
SUMMARY = "self_training.json"


@dataclass
class Round:
    """One round: its run directory, threshold, pseudo-labels and accuracies."""

    round: int
    run_dir: str
    val_accuracy: float
    test_accuracy: float | None
    threshold: float | None = None
    pseudo_labelled: int = 0
    pseudo_label_accuracy: float | None = None


@dataclass
class SelfTrainingResult:
    rounds: list[Round] = field(default_factory=list)
    best: int = 0
    unlabelled: int = 0

    def as_dict(self) -> dict:
        return {"best_round": self.best, "unlabelled": self.unlabelled,
                "rounds": [dataclasses.asdict(r) for r in self.rounds]}


def choose_threshold(probs: np.ndarray, labels: np.ndarray, precision: float,
                     thresholds=THRESHOLDS) -> tuple[float, list[dict]]:
    """The smallest threshold whose confident validation predictions are `precision`-correct.

    Returns:
        (threshold, rows of threshold, coverage and precision on validation).
    """
    confidence, predicted = probs.max(1), probs.argmax(1)
    rows = []
    for t in thresholds:
        kept = confidence >= t
        rows.append({"threshold": t, "coverage": round(float(kept.mean()), 4),
                     "precision": round(float((predicted[kept] == labels[kept]).mean()), 4)
                     if kept.any() else None})
    good = [r["threshold"] for r in rows if r["precision"] is not None
            and r["precision"] >= precision]
    return (min(good) if good else max(thresholds)), rows


def _unlabelled_batches(splits: Splits, raw: list[str], batch_size: int) -> tf.data.Dataset:
    ds = tf.data.Dataset.from_tensor_slices((raw, np.zeros(len(raw), np.int64)))
    if splits.decode is not None:
        ds = ds.map(splits.decode, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(2)


def with_pseudo_labels(splits: Splits, raw: list[str], labels: np.ndarray) -> Splits:
    """`splits` whose train split also holds `raw` examples with the given labels."""
    labels = np.asarray(labels, np.int64)
    extra = tf.data.Dataset.from_tensor_slices((raw, labels))
    train = splits.raw["train"].concatenate(extra) if len(raw) else splits.raw["train"]
    files = dict(splits.files)
    if "train" in files:
        files["train"] = list(files["train"]) + list(raw)
    return dataclasses.replace(
        splits, raw={**splits.raw, "train": train},
        labels={**splits.labels, "train": np.concatenate([splits.labels["train"], labels])},
        files=files)


def _accuracy(model, splits: Splits, split: str, config: RunConfig) -> float | None:
    if not splits.size(split):
        return None
    y, probs = predict_dataset(model, splits.batches(split, config.data))
    return float((probs.argmax(1) == y).mean())


def _round_config(config: RunConfig, out: Path, r: int) -> RunConfig:
    return dataclasses.replace(config, out=str(out / f"round_{r}"))


def self_train(config: RunConfig) -> SelfTrainingResult:
    """The teacher, then `train.self_training_rounds` students (see the module docstring).

    Args:
        config: a run config with `data.unlabelled_source` set; `out` is the folder of
            the rounds' run directories.

    Returns:
        The rounds and the best one (by validation accuracy); also in
        OUT/self_training.json.
    """
    from tfxfer.experiment import Experiment

    out = Path(config.out or "runs/self_training")
    if (out / SUMMARY).exists():
        raise FileExistsError(f"{out} already holds a self-training run; choose another --out.")
    run = _fit(Experiment(_round_config(config, out, 0)))
    splits = run.splits
    items = read_items(config.data.unlabelled_source, config.data.text_column, None)
    if items.modality != splits.modality:
        raise ValueError(f"--unlabelled-data {items.source} holds {items.modality} data; the "
                         f"labelled data {splits.source} are {splits.modality}.")
    truth = _reference_labels(items, splits)
    result = SelfTrainingResult(unlabelled=len(items))
    result.rounds.append(Round(0, str(run.run_dir), _accuracy(run.model, splits, "val", config),
                               _accuracy(run.model, splits, "test", config)))
    teacher = run.model
    for r in range(1, config.train.self_training_rounds + 1):
        y_val, p_val = predict_dataset(teacher, splits.batches("val", config.data))
        threshold, table = choose_threshold(p_val, y_val, config.train.self_training_precision)
        _, probs = predict_dataset(teacher, _unlabelled_batches(
            splits, items.items, config.data.batch_size))
        kept = np.flatnonzero(probs.max(1) >= threshold)
        pseudo = probs.argmax(1)[kept]
        logger.info("Round %d: threshold %.2f (validation %s): %d of %d unlabelled examples "
                    "pseudo-labelled", r, threshold, table, len(kept), len(items))
        student = Experiment(_round_config(config, out, r))
        _fit(student, with_pseudo_labels(splits, [items.items[i] for i in kept], pseudo))
        accuracy = None if truth is None or not len(kept) else float(
            (truth[kept] == pseudo).mean())
        result.rounds.append(Round(
            r, str(student.run_dir), _accuracy(student.model, splits, "val", config),
            _accuracy(student.model, splits, "test", config), threshold, len(kept), accuracy))
        teacher = student.model
    result.best = max(result.rounds, key=lambda x: (x.val_accuracy, -x.round)).round
    (out / SUMMARY).write_text(json.dumps(result.as_dict(), indent=2))
    logger.info("Self-training: best round %d by validation accuracy", result.best)
    return result


def _fit(run, splits: Splits | None = None):
    run.load_data(splits)
    run.build_model()
    for phase in run.phases:
        run.fit(phase)
    run.evaluate()
    run.save()
    return run


def _reference_labels(items, splits: Splits) -> np.ndarray | None:
    """The unlabelled examples' own labels when their folder names match the classes
    (only to report how accurate the pseudo-labels were; never used to train or choose)."""
    if items.labels is None or items.class_names != splits.class_names:
        return None
    return items.labels
