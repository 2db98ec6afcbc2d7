"""The run directory: everything a training run leaves behind.

    RUN_DIR/
      config.json          resolved configuration (reload with `load_run`)
      labels.txt           class names, one per line, in class-id order
      data_summary.json    source, counts per split and class, skipped files
      splits.csv           file of every example and its split (folder sources)
      history.csv          joined per-epoch history of all phases
      phases.json          per-phase epochs, learning rate, trainable weights, seconds,
                           how the phase ran (mode) and the oneDNN setting
      metrics.json         test accuracy, per-class metrics, confusion matrix
      per_class.csv        precision, recall, F1, support per class
      confusion_matrix.csv counts, rows true, columns predicted
      predictions.csv      input (file path or text), true label and probabilities of
                           every test example, in test-split order
      val_predictions.csv  the same for the validation split (what `tfxfer ensemble`
                           chooses its weights on)
      model.keras          the trained model (takes raw images or strings)

and the report (`tfxfer.reports`): report.html, learning_curves.png,
confusion_matrix.png, prediction_grid.png (images), confused_pairs.csv,
confident_mistakes.csv (text) and tensorboard/ (logs of both phases).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import keras

import tfxfer.audio.layers  # noqa: F401  (registers custom layers for loading)
import tfxfer.image.layers  # noqa: F401  (registers custom layers for loading)
import tfxfer.mixture  # noqa: F401  (registers the ensemble layer for loading)
import tfxfer.tasks.model  # noqa: F401  (registers the task layers and losses for loading)
import tfxfer.text.model  # noqa: F401  (registers the text layers for loading)
import tfxfer.text.transformer  # noqa: F401  (model.py imports it only to build one)
import tfxfer.training.optimizers  # noqa: F401  (registers custom optimizers for loading)
from tfxfer.config import RunConfig, config_from_dict
from tfxfer.data.splits import Splits
from tfxfer.evaluation import Evaluation
from tfxfer.modality import TEXT
from tfxfer.runtime.onednn import onednn_record
from tfxfer.training.trainer import TrainingHistory

logger = logging.getLogger(__name__)

CONFIG = "config.json"
LABELS = "labels.txt"
DATA_SUMMARY = "data_summary.json"
SPLITS = "splits.csv"
HISTORY = "history.csv"
PHASES = "phases.json"
METRICS = "metrics.json"
PER_CLASS = "per_class.csv"
CONFUSION = "confusion_matrix.csv"
PREDICTIONS = "predictions.csv"
VAL_PREDICTIONS = "val_predictions.csv"
MODEL = "model.keras"


def _write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        path.write_text("")
        return
    fields = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def _write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def write_setup(run_dir: Path, config: RunConfig, splits: Splits) -> None:
    """Writes what is known before training: config, labels and data summary."""
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_json(run_dir / CONFIG, config.to_dict())
    (run_dir / LABELS).write_text("".join(f"{name}\n" for name in splits.class_names))
    _write_json(run_dir / DATA_SUMMARY, splits.summary())
    rows = [
        {"split": split, "path": path, "label": splits.class_names[label]}
        for split, paths in splits.files.items()
        for path, label in zip(paths, splits.labels[split])
    ]
    if rows:
        _write_csv(run_dir / SPLITS, rows)


def write_history(run_dir: Path, history: TrainingHistory) -> None:
    _write_csv(run_dir / HISTORY, history.rows)
    onednn = onednn_record()
    _write_json(run_dir / PHASES,
                [{**dataclasses.asdict(p), "onednn": onednn} for p in history.phases])


def split_inputs(splits: Splits, split: str) -> list[str] | None:
    """The input of every example of `split`, in split order, for predictions.csv.

    Returns:
        Absolute file paths (folder sources), the texts (text sources), or None
        (TFDS images have neither).
    """
    if split in splits.files:
        return [os.path.abspath(path) for path in splits.files[split]]
    if splits.modality == TEXT and split in splits.raw:
        return [x.decode("utf-8", "replace")
                for x, _ in splits.raw[split].as_numpy_iterator()]
    return None


def write_evaluation(
    run_dir: Path, evaluation: Evaluation, inputs: Sequence[str] | None = None
) -> None:
    """Writes metrics.json, per_class.csv, confusion_matrix.csv and predictions.csv.

    `inputs` (see `split_inputs`) become the `input` column of predictions.csv
    when there is one per prediction (files dropped while decoding break that).
    """
    if inputs is not None and len(inputs) != len(evaluation.y_true):
        logger.warning("%d inputs for %d predictions: predictions.csv gets no input column",
                       len(inputs), len(evaluation.y_true))
        inputs = None
    _write_json(run_dir / METRICS, evaluation.to_dict())
    _write_csv(run_dir / PER_CLASS, evaluation.per_class())
    names = evaluation.class_names
    _write_csv(run_dir / CONFUSION, [
        {"true": names[i], **{names[j]: int(v) for j, v in enumerate(row)}}
        for i, row in enumerate(evaluation.confusion)
    ])
    write_predictions(run_dir / PREDICTIONS, evaluation, inputs)
    logger.info("Test accuracy %.4f on %d examples", evaluation.accuracy, len(evaluation.y_true))


def write_predictions(
    path: Path, evaluation: Evaluation, inputs: Sequence[str] | None = None
) -> None:
    """One row per example: `input` (when given), `true`, `predicted`, `p_<class>`."""
    if inputs is not None and len(inputs) != len(evaluation.y_true):
        inputs = None
    names = evaluation.class_names
    _write_csv(path, [
        {**({"input": inputs[i]} if inputs is not None else {}),
         "true": names[t], "predicted": names[p],
         **{f"p_{n}": round(float(v), 6) for n, v in zip(names, probs)}}
        for i, (t, p, probs) in enumerate(
            zip(evaluation.y_true, evaluation.y_pred, evaluation.y_prob))
    ])


def save_model(run_dir: Path, model: keras.Model) -> Path:
    path = run_dir / MODEL
    model.save(path)
    return path


def read_labels(run_dir: str | Path) -> list[str]:
    return Path(run_dir, LABELS).read_text().splitlines()


def load_run(run_dir: str | Path) -> tuple[RunConfig, keras.Model, list[str]]:
    """Reloads a finished run: its config, trained model and class names."""
    run_dir = Path(run_dir)
    missing = [n for n in (CONFIG, MODEL, LABELS) if not (run_dir / n).exists()]
    if missing:
        raise FileNotFoundError(
            f"{run_dir} is not a complete tfxfer run directory; missing: {', '.join(missing)}"
        )
    config = config_from_dict(json.loads((run_dir / CONFIG).read_text()))
    model = keras.models.load_model(run_dir / MODEL)
    return config, model, read_labels(run_dir)


def read_json(run_dir: str | Path, name: str):
    return json.loads(Path(run_dir, name).read_text())
