"""Everything a report shows, read back from a run directory (no retraining).

The files are the ones `tfxfer.rundir` writes. Only config.json and labels.txt
are required; a run without a test split has no metrics or predictions, and
the report leaves those sections out.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tfxfer import rundir
from tfxfer.modality import IMAGE

INPUT_COLUMN = "input"


@dataclass
class Predictions:
    """The rows of predictions.csv as arrays.

    Attributes:
        y_true: true class id of every test example, in test-split order.
        y_pred: predicted class id (the `predicted` column, not re-derived from
            the rounded probabilities).
        y_prob: probabilities, shape (examples, classes).
        inputs: file path (image folders) or text (text runs) of every example,
            or None when the run did not record them.
    """

    y_true: np.ndarray
    y_pred: np.ndarray
    y_prob: np.ndarray
    inputs: list[str] | None = None

    @property
    def confidence(self) -> np.ndarray:
        """Probability of the predicted class."""
        return self.y_prob[np.arange(len(self.y_pred)), self.y_pred]

    @property
    def correct(self) -> np.ndarray:
        return self.y_pred == self.y_true

    def __len__(self) -> int:
        return len(self.y_true)


@dataclass
class RunData:
    """A finished run as the report sees it.

    Attributes:
        run_dir: the run directory.
        config: config.json as a dict.
        class_names: labels.txt.
        summary: data_summary.json (source, counts per split and class, skipped files).
        history: history.csv rows (epoch, phase, learning_rate and the metrics).
        phases: phases.json (name, first_epoch, epochs_run, learning_rate,
            trainable_weights, trainable_params, seconds per phase).
        metrics: metrics.json, or None without a test split.
        predictions: predictions.csv, or None without a test split.
    """

    run_dir: Path
    config: dict
    class_names: list[str]
    summary: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    phases: list[dict] = field(default_factory=list)
    metrics: dict | None = None
    predictions: Predictions | None = None

    @property
    def modality(self) -> str:
        return self.summary.get("modality", IMAGE)


def _number(value: str):
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            return value


def read_history(path: Path) -> list[dict]:
    """history.csv rows with numbers parsed (an empty file gives no rows)."""
    if not path.exists() or not path.read_text().strip():
        return []
    with path.open(newline="") as f:
        return [{k: _number(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def read_predictions(path: Path, class_names: list[str]) -> Predictions:
    """Parses predictions.csv: `true`, `predicted`, `p_<class>` and an optional `input`.

    Raises:
        ValueError: a row names a class that is not in `class_names`, or a
            probability column is missing.
    """
    index = {name: i for i, name in enumerate(class_names)}
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        prob_columns = [f"p_{name}" for name in class_names]
        missing = [c for c in ("true", "predicted", *prob_columns)
                   if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path} lacks the column(s) {missing}")
        has_inputs = INPUT_COLUMN in reader.fieldnames
        y_true, y_pred, y_prob, inputs = [], [], [], []
        for line, row in enumerate(reader, start=2):
            try:
                y_true.append(index[row["true"]])
                y_pred.append(index[row["predicted"]])
            except KeyError as err:
                raise ValueError(
                    f"{path} line {line}: class {err.args[0]!r} is not in labels.txt"
                ) from None
            y_prob.append([float(row[c]) for c in prob_columns])
            if has_inputs:
                inputs.append(row[INPUT_COLUMN])
    return Predictions(
        np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64),
        np.asarray(y_prob, dtype=np.float64).reshape(-1, len(class_names)),
        inputs if has_inputs else None,
    )


def _optional_json(run_dir: Path, name: str, default):
    path = run_dir / name
    return json.loads(path.read_text()) if path.exists() else default


def load_run_data(run_dir: str | Path) -> RunData:
    """Reads the files of a run directory that a report needs.

    Args:
        run_dir: a directory written by `tfxfer train`.

    Returns:
        The run's RunData.

    Raises:
        FileNotFoundError: config.json or labels.txt is missing.
    """
    run_dir = Path(run_dir)
    missing = [n for n in (rundir.CONFIG, rundir.LABELS) if not (run_dir / n).exists()]
    if missing:
        raise FileNotFoundError(
            f"{run_dir} is not a tfxfer run directory; missing: {', '.join(missing)}"
        )
    class_names = rundir.read_labels(run_dir)
    predictions = None
    if (run_dir / rundir.PREDICTIONS).exists():
        predictions = read_predictions(run_dir / rundir.PREDICTIONS, class_names)
    return RunData(
        run_dir=run_dir,
        config=rundir.read_json(run_dir, rundir.CONFIG),
        class_names=class_names,
        summary=_optional_json(run_dir, rundir.DATA_SUMMARY, {}),
        history=read_history(run_dir / rundir.HISTORY),
        phases=_optional_json(run_dir, rundir.PHASES, []),
        metrics=_optional_json(run_dir, rundir.METRICS, None),
        predictions=predictions,
    )
