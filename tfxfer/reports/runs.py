"""`tfxfer runs [--dir runs]`: one line per run directory, read from its files.

    date              when config.json was written (the run's start)
    run               the directory's name
    data              data.source (a folder's name, a CSV file's name, tfds:NAME)
    model             the image backbone or the text encoder
    strategy          train.strategy as resolved
    classes           lines of labels.txt
    test acc          metrics.json accuracy (macro F1 beside it)
    status            done (model.keras), resumable (checkpoints/, see --resume),
                      or incomplete

Only JSON and text files are read (see `tfxfer.rundir` for what a run directory
holds): no TensorFlow, so the table appears at once.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

# File names of `tfxfer.rundir` (which imports Keras) and `tfxfer.training.resume`.
_CONFIG, _LABELS, _METRICS, _MODEL, _CHECKPOINTS = (
    "config.json", "labels.txt", "metrics.json", "model.keras", "checkpoints")


@dataclass(frozen=True)
class RunSummary:
    """What `tfxfer runs` shows of one run directory."""

    path: Path
    started: float
    data: str
    model: str
    strategy: str
    classes: int | None
    accuracy: float | None
    macro_f1: float | None
    status: str


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        logger.warning("Cannot read %s: %s", path, err)
        return None


def _data_name(source: str) -> str:
    return source if source.startswith("tfds:") else Path(source).name or source


def _model_name(model: dict) -> str:
    image, text = model.get("image"), model.get("text")
    if image:
        alpha = (image.get("backbone_kwargs") or {}).get("alpha")
        return image.get("backbone", "?") + (f" a={alpha}" if alpha is not None else "")
    if text:
        return Path(str(text.get("encoder", "?"))).name or "?"
    return "?"


def summarize_run(path: str | Path) -> RunSummary | None:
    """The summary of the run directory `path` (None when it holds no readable config.json)."""
    path = Path(path)
    config = _read_json(path / _CONFIG)
    if config is None:
        return None
    metrics = _read_json(path / _METRICS) if (path / _METRICS).is_file() else None
    labels = path / _LABELS
    if (path / _MODEL).exists():
        status = "done"
    elif (path / _CHECKPOINTS).is_dir():
        status = "resumable"
    else:
        status = "incomplete"
    return RunSummary(
        path=path,
        started=(path / _CONFIG).stat().st_mtime,
        data=_data_name(str(config.get("data", {}).get("source", "?"))),
        model=_model_name(config.get("model", {})),
        strategy=str(config.get("train", {}).get("strategy", "?")),
        classes=len(labels.read_text().splitlines()) if labels.is_file() else None,
        accuracy=(metrics or {}).get("accuracy"),
        macro_f1=(metrics or {}).get("macro_f1"),
        status=status,
    )


def list_runs(root: str | Path = "runs") -> list[RunSummary]:
    """The runs directly under `root` (or `root` itself when it is a run), oldest first.

    Raises:
        FileNotFoundError: `root` is not a directory.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"--dir: no such directory: {root}")
    candidates = [root] if (root / _CONFIG).is_file() else sorted(
        p for p in root.iterdir() if (p / _CONFIG).is_file())
    runs = [s for s in (summarize_run(p) for p in candidates) if s is not None]
    return sorted(runs, key=lambda s: (s.started, s.path.name))


def format_runs(runs: list[RunSummary]) -> str:
    """A plain-text table of `runs` (one header line, one line per run)."""
    header = ("date", "run", "data", "model", "strategy", "classes", "test acc", "F1",
              "status")
    rows = [header] + [(
        time.strftime("%Y-%m-%d %H:%M", time.localtime(s.started)), s.path.name, s.data,
        s.model, s.strategy, "-" if s.classes is None else str(s.classes),
        "-" if s.accuracy is None else f"{s.accuracy:.4f}",
        "-" if s.macro_f1 is None else f"{s.macro_f1:.4f}", s.status,
    ) for s in runs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    right = {5, 6, 7}  # numbers
    return "\n".join(
        "  ".join(cell.rjust(w) if i in right else cell.ljust(w)
                  for i, (cell, w) in enumerate(zip(row, widths))).rstrip()
        for row in rows)


def add_runs_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", default="runs", metavar="DIR",
                        help="the folder holding run directories (default runs)")


def run_runs(args: argparse.Namespace) -> int:
    runs = list_runs(args.dir)
    if not runs:
        print(f"no runs in {args.dir}")
        return 0
    print(format_runs(runs))
    return 0
