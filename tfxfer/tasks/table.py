"""Tables of inputs and targets -> `TaskSplits`: the data of a task model.

A CSV/TSV file (TSV by suffix) or a pandas DataFrame has one input column, text
(`DataConfig.text_column`), image file paths or WAV file paths relative to the CSV's
folder (`DataConfig.image_column`, `DataConfig.audio_column`), and the target columns
`DataConfig.target` names:

    classification  a class name or integer id per cell
    multilabel      tags separated by `DataConfig.tag_delimiter` (default "|"), "red|round"
    regression      a number per cell

An empty cell is a missing label: the row still trains the other outputs, and
contributes nothing to this one's loss (`tfxfer.tasks.losses`). A row is bad, and
skipped, when its input is empty or its image or WAV file is missing or does not
decode (with `validate_files`), when a regression cell is not a finite number, when a
class or tag of a separate test table is not one the training table has, or when
it has no target at all. Every bad row is logged with its line number in the file
(counting the header as line 1 and the lines inside quoted multi-line cells; a
DataFrame's rows are named by their index), counted by reason in
data_summary.json, and left out; nothing else is.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from tfxfer.config import AudioConfig, DataConfig, OutputConfig, parse_targets
from tfxfer.data.images import check_image
from tfxfer.data.pipeline import image_decoder
from tfxfer.data.splits import SPLITS, Splits, carve_indices, subsample_test
from tfxfer.modality import AUDIO, IMAGE, TEXT
from tfxfer.tasks.losses import CLASSIFICATION, MULTILABEL, REGRESSION
from tfxfer.tasks.outputs import Output, infer_task

logger = logging.getLogger(__name__)

# Bad rows logged one by one; the rest are counted.
_MAX_LOGGED = 20
# Regression targets are stratified by this many quantile bins when no output is a class.
_STRATA = 5
_PER_STRATUM = 20


@dataclass
class Table:
    """The cells of one table, as read.

    Attributes:
        columns: column name -> the cell of every row (strings from a file).
        where: how each row is named in messages ("line 7", "row 3").
        name: the file path or "DataFrame".
        folder: where relative image paths start (the CSV's folder).
    """

    columns: dict[str, list]
    where: list[str]
    name: str
    folder: Path

    def __len__(self) -> int:
        return len(self.where)


@dataclass(frozen=True)
class BadRow:
    """A row left out: the table, the row's line (or index), the kind of problem and why."""

    table: str
    where: str
    kind: str
    reason: str


def read_table(path: str | os.PathLike) -> Table:
    """Reads a CSV (or, by suffix, TSV) file with the line number of every record.

    Records with the wrong number of fields are kept with empty cells filled in only
    when short by trailing cells; a record longer than the header is an error naming
    its line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Table not found: {path}")
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    rows, where = [], []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter=delimiter)
        header = next(reader, None)
        if not header:
            raise ValueError(f"{path} is empty: expected a header and rows.")
        last = reader.line_num
        for record in reader:
            start, last = last + 1, reader.line_num
            if not record:
                continue
            if len(record) > len(header):
                raise ValueError(f"{path}, line {start}: {len(record)} fields, the header has "
                                 f"{len(header)} ({header}).")
            rows.append(record + [""] * (len(header) - len(record)))
            where.append(f"line {start}")
    columns = {name: [row[i] for row in rows] for i, name in enumerate(header)}
    return Table(columns, where, str(path), path.parent)


def table_from_frame(frame: pd.DataFrame, name: str = "DataFrame",
                     folder: str | os.PathLike = ".") -> Table:
    """A DataFrame as a `Table`; its rows are named by their index."""
    columns = {str(c): frame[c].tolist() for c in frame.columns}
    return Table(columns, [f"row {i}" for i in frame.index], name, Path(folder))


def _cell(value) -> str:
    """A cell as stripped text; missing (None, NaN, empty) is ""."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def _require_columns(table: Table, columns: list[str]) -> None:
    absent = [c for c in columns if c not in table.columns]
    if absent:
        raise ValueError(f"{table.name} has no column(s) {absent}; its columns are "
                         f"{list(table.columns)}. Choose them with --target / --text-column / "
                         "--image-column.")


def _sorted_names(values: set[str]) -> list[str]:
    if all(v.lstrip("+-").isdigit() for v in values):
        return sorted(values, key=int)
    return sorted(values)


def resolve_outputs(table: Table, configs: list[OutputConfig], delimiter: str) -> list[Output]:
    """The outputs of `configs` with their tasks and class/tag names from the training table."""
    outputs = []
    for given in configs:
        cells = [c for c in map(_cell, table.columns[given.column]) if c]
        task = infer_task(given, cells, delimiter)
        names: list[str] = []
        if task == CLASSIFICATION:
            names = _sorted_names(set(cells))
            if len(names) < 2:
                raise ValueError(f"Target {given.column!r} of {table.name} needs at least 2 "
                                 f"classes; found {names}.")
        elif task == MULTILABEL:
            names = sorted({t.strip() for c in cells for t in c.split(delimiter) if t.strip()})
            if not names:
                raise ValueError(f"Target {given.column!r} of {table.name} has no tags.")
        outputs.append(Output(given.name, task, given.column, given.loss_weight, names))
    return outputs


def _target(output: Output, cell: str, delimiter: str):
    """(encoded target or None when missing, (kind, reason) when the cell is bad)."""
    if not cell:
        return None, None
    if output.task == REGRESSION:
        try:
            value = float(cell)
        except ValueError:
            return None, ("non-numeric target", f"non-numeric target {output.column}={cell!r}")
        if not math.isfinite(value):
            return None, ("non-numeric target", f"non-finite target {output.column}={cell!r}")
        return value, None
    if output.task == CLASSIFICATION:
        if cell not in output.names:
            return None, ("unknown class",
                          f"unknown class {output.column}={cell!r} (classes {output.names})")
        return output.names.index(cell), None
    tags = [t.strip() for t in cell.split(delimiter) if t.strip()]
    unknown = [t for t in tags if t not in output.names]
    if unknown:
        return None, ("unknown tag",
                      f"unknown tag(s) {unknown} in {output.column} (tags {output.names})")
    return [1.0 if n in tags else 0.0 for n in output.names], None


def _check_input(value: str, modality: str, folder: Path, validate: bool):
    """(the input as the model reads it, (kind, reason) when the row is bad)."""
    if not value:
        return None, ("empty input", "empty input")
    if modality == TEXT:
        return value, None
    path = Path(value) if Path(value).is_absolute() else folder / value
    if not path.is_file():
        return None, ("missing file", f"missing file {value!r} (looked for {path})")
    if validate and modality == AUDIO:
        from tfxfer.audio.folder import check_wav

        reason, _ = check_wav(str(path))
        if reason:
            return None, ("bad audio", f"audio {value!r}: {reason}")
    elif validate:
        reason = check_image(str(path))
        if reason:
            return None, ("bad image", f"image {value!r}: {reason}")
    return str(path.resolve()), None


@dataclass
class Encoded:
    """A table's usable rows: inputs and every output's targets (missing encoded)."""

    inputs: np.ndarray
    targets: dict[str, np.ndarray]
    bad: list[BadRow]


def _empty_target(output: Output, n: int) -> np.ndarray:
    if output.task == CLASSIFICATION:
        return np.full(n, -1, np.int64)
    if output.task == MULTILABEL:
        return np.full((n, len(output.names)), np.nan, np.float32)
    return np.full(n, np.nan, np.float32)


def encode_table(table: Table, input_column: str, modality: str, outputs: list[Output],
                 data: DataConfig) -> Encoded:
    """Checks every row of `table` and encodes the good ones (see the module docstring)."""
    _require_columns(table, [input_column, *(o.column for o in outputs)])
    inputs, kept, bad = [], [], []
    rows = {o.name: [] for o in outputs}
    for i, where in enumerate(table.where):
        value, reason = _check_input(_cell(table.columns[input_column][i]), modality,
                                     table.folder, data.validate_files)
        targets = {}
        for output in outputs:
            if reason:
                break
            targets[output.name], reason = _target(
                output, _cell(table.columns[output.column][i]), data.tag_delimiter)
        if not reason and all(v is None for v in targets.values()):
            reason = ("no target", "no target (every target cell is empty)")
        if reason:
            bad.append(BadRow(table.name, where, *reason))
            continue
        inputs.append(value)
        kept.append(i)
        for name, v in targets.items():
            rows[name].append(v)
    encoded = {}
    for output in outputs:
        array = _empty_target(output, len(kept))
        for j, v in enumerate(rows[output.name]):
            if v is not None:
                array[j] = v
        encoded[output.name] = array
    _log_bad(table, bad)
    return Encoded(np.asarray(inputs, dtype=object), encoded, bad)


def _log_bad(table: Table, bad: list[BadRow]) -> None:
    for row in bad[:_MAX_LOGGED]:
        logger.warning("Skipped %s, %s: %s", table.name, row.where, row.reason)
    if bad:
        counts = Counter(r.kind for r in bad)
        logger.warning("Skipped %d of %d rows of %s (%s)", len(bad), len(table), table.name,
                       ", ".join(f"{k}: {v}" for k, v in counts.most_common()))


def _stratum(encoded: Encoded, outputs: list[Output]) -> np.ndarray:
    """What the split is stratified on: the first class output (missing: its own stratum),
    else the first regression target's quantile bin, else nothing."""
    n = len(encoded.inputs)
    for output in outputs:
        if output.task == CLASSIFICATION:
            return encoded.targets[output.name] + 1
    for output in outputs:
        if output.task == REGRESSION:
            y = encoded.targets[output.name]
            # Small tables get fewer bins, so that every bin reaches every split.
            bins = max(1, min(_STRATA, int(np.isfinite(y).sum()) // _PER_STRATUM))
            edges = (np.nanquantile(y, np.linspace(0, 1, bins + 1)[1:-1])
                     if np.isfinite(y).any() else [])
            return np.where(np.isfinite(y), np.searchsorted(edges, y, side="right") + 1, 0)
    return np.zeros(n, np.int64)


@dataclass
class TaskSplits(Splits):
    """`Splits` whose examples carry a dict of targets, one per output.

    `raw[split]` yields (input, {output name: target}); `labels[split]` holds the
    stratum of every example (used for sizes). `class_names` is empty.

    Attributes:
        outputs: the model's outputs.
        targets: split -> output name -> targets, in split order.
        inputs: split -> the input of every example (texts or image paths).
        bad_rows: the rows left out, with their line and reason.
    """

    outputs: list[Output] = field(default_factory=list)
    targets: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    inputs: dict[str, list[str]] = field(default_factory=dict)
    bad_rows: list[BadRow] = field(default_factory=list)

    def summary(self) -> dict:
        counts = {split: {o.name: _labelled(o, t[o.name]) for o in self.outputs}
                  for split, t in self.targets.items()}
        reasons = Counter(r.kind for r in self.bad_rows)
        return {
            "source": self.source,
            "modality": self.modality,
            "outputs": [o.to_dict() for o in self.outputs],
            "examples": {split: self.size(split) for split in SPLITS if split in self.labels},
            "labelled": counts,
            "bad_rows": len(self.bad_rows),
            "bad_rows_by_reason": dict(reasons),
            "skipped": [dataclasses.asdict(r) for r in self.bad_rows],
        }


def _labelled(output: Output, targets: np.ndarray) -> int:
    if output.task == CLASSIFICATION:
        return int(np.sum(targets >= 0))
    if output.task == MULTILABEL:
        return int(np.sum(np.all(np.isfinite(targets), axis=-1)))
    return int(np.sum(np.isfinite(targets)))


def _fit_scales(outputs: list[Output], train_targets: dict[str, np.ndarray]) -> list[Output]:
    """Regression outputs with the mean, spread and range of their training targets."""
    fitted = []
    for output in outputs:
        if output.task == REGRESSION:
            y = train_targets[output.name]
            y = y[np.isfinite(y)].astype(np.float64)
            if len(y) == 0:
                raise ValueError(f"Target {output.column!r} has no value in the training split.")
            std = float(np.std(y))
            output = dataclasses.replace(output, mean=float(np.mean(y)),
                                         std=std if std > 0 else 1.0, low=float(y.min()),
                                         high=float(y.max()))
        fitted.append(output)
    return fitted


def table_input(data: DataConfig) -> tuple[str, str]:
    """(modality, input column) of a task table: images, WAV files or text."""
    if data.image_column and data.audio_column:
        raise ValueError("A task table has one input column: data.image_column "
                         f"({data.image_column!r}) or data.audio_column "
                         f"({data.audio_column!r}), not both.")
    if data.image_column:
        return IMAGE, data.image_column
    if data.audio_column:
        return AUDIO, data.audio_column
    return TEXT, data.text_column


def _pipeline_args(modality: str, image_size: int | None, audio: AudioConfig | None,
                   data: DataConfig, inputs: np.ndarray) -> dict:
    """How the pipeline reads a table's inputs: the decoder and an example's size."""
    if modality == TEXT:
        sizes = [len(str(v).encode("utf-8")) for v in inputs[:1000]]
        return {"example_bytes": int(np.mean(sizes))}
    if modality == IMAGE:
        decode, example_bytes = image_decoder(image_size, from_paths=True), image_size ** 2 * 3
    else:
        from tfxfer.audio.decode import clip_samples, wav_decoder

        samples = clip_samples(audio.sample_rate, audio.clip_seconds)
        decode, example_bytes = wav_decoder(audio.sample_rate, samples, True), samples * 4
    return {"decode": decode, "from_paths": True, "skip_errors": not data.validate_files,
            "example_bytes": example_bytes}


def task_splits(train: Table, data: DataConfig, image_size: int | None = None,
                test: Table | None = None, source: str | None = None,
                audio: AudioConfig | None = None) -> TaskSplits:
    """Reads, checks, encodes and splits a training table (and a separate test table).

    Args:
        train: the training table; val (and test, without `test`) are carved from it.
        data: the data section: target, columns, delimiter, fractions, seed.
        image_size: the side images are decoded to (image tables).
        test: a separate test table with the same columns.
        source: recorded as the splits' source.
        audio: the model's audio section (WAV tables: rate and clip length; default
            `AudioConfig()`).

    Returns:
        TaskSplits of (input, targets) examples.
    """
    configs = parse_targets(data)
    if not configs:
        raise ValueError("A task table needs data.target (--target), e.g. 'rating'.")
    modality, column = table_input(data)
    if modality == IMAGE and image_size is None:
        raise ValueError("image_size is required for a table of images.")
    _require_columns(train, [column, *(c.column for c in configs)])
    outputs = resolve_outputs(train, configs, data.tag_delimiter)
    encoded = encode_table(train, column, modality, outputs, data)
    if len(encoded.inputs) == 0:
        raise ValueError(f"No usable row in {train.name} (all {len(train)} were bad).")
    stratum = _stratum(encoded, outputs)
    indices = carve_indices(stratum, data, [str(s) for s in np.unique(stratum)],
                            carve_test=test is None)
    tables = {split: (encoded, idx) for split, idx in indices.items()}
    bad = list(encoded.bad)
    if test is not None:
        test_encoded = encode_table(test, column, modality, outputs, data)
        bad += test_encoded.bad
        test_stratum = _stratum(test_encoded, outputs)
        tables["test"] = (test_encoded, subsample_test(test_stratum, data))
    outputs = _fit_scales(outputs, {n: t[indices["train"]] for n, t in encoded.targets.items()})
    raw, labels, targets, inputs = {}, {}, {}, {}
    for split, (enc, idx) in tables.items():
        if not len(idx):
            continue
        targets[split] = {name: t[idx] for name, t in enc.targets.items()}
        inputs[split] = enc.inputs[idx].tolist()
        # Not a fixed-width str array: that pads every text to the longest (IMDB: 1.4 GB).
        x = tf.constant(inputs[split], dtype=tf.string)
        raw[split] = tf.data.Dataset.from_tensor_slices((x, targets[split]))
        labels[split] = (_stratum(enc, outputs) if split == "test" and test is not None
                         else stratum)[idx]
    logger.info("Task splits of %s: %s; outputs %s", source or train.name,
                {k: len(v) for k, v in labels.items()},
                ", ".join(f"{o.name} ({o.task})" for o in outputs))
    return TaskSplits(
        [], modality, raw, labels,
        source or (train.name if test is None else f"{train.name} + {test.name}"),
        **_pipeline_args(modality, image_size, audio or AudioConfig(), data, encoded.inputs),
        outputs=outputs, targets=targets, inputs=inputs, bad_rows=bad,
    )


def load_task_splits(data: DataConfig, image_size: int | None = None,
                     audio: AudioConfig | None = None) -> TaskSplits:
    """`task_splits` of the files `data.source` (and `data.test_source`) name."""
    test = read_table(data.test_source) if data.test_source else None
    return task_splits(read_table(data.source), data, image_size, test, str(data.source),
                       audio)


def load_task_frames(frame: pd.DataFrame, data: DataConfig, test_frame: pd.DataFrame | None = None,
                     image_size: int | None = None, folder: str | os.PathLike = ".",
                     audio: AudioConfig | None = None) -> TaskSplits:
    """`task_splits` of pandas DataFrames (image and WAV paths relative to `folder`).

    Example:
        frame = pd.concat([pd.read_csv("imdb_train.csv"), pd.read_csv("ratings.csv")], axis=1)
        splits = load_task_frames(frame, DataConfig(target="label,rating:regression"))
        tfxfer.train(config, splits=splits)
    """
    test = None if test_frame is None else table_from_frame(test_frame, "test DataFrame", folder)
    return task_splits(table_from_frame(frame, "DataFrame", folder), data, image_size, test,
                       "DataFrame", audio)


def is_task_source(data: DataConfig) -> bool:
    """Whether `data` asks for a task model: it names targets (or an image/audio column)."""
    return bool(parse_targets(data)) or bool(data.image_column) or bool(data.audio_column)
