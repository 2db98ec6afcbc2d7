"""Text data: CSV/TSV files and pandas DataFrames -> `Splits` of (string, label).

A table has a text column and a label column (`DataConfig.text_column`,
`label_column`; default "text" and "label"). Labels may be strings or integers,
two classes or more:

    strings   class names are the sorted distinct labels
    integers  class names are the sorted distinct values as strings ("0", "1", ...);
              a CSV column whose every value is an integer counts as integers

The class id is the index in the class names. Train, validation and (unless
`DataConfig.test_source` names a separate table) test are carved from the table
with the shared stratified split; a separate test table must use only labels the
training table has.

Problems are errors that name the file and the rows: empty or missing text,
missing labels, labels the training data does not have, missing columns, and
malformed CSV. Row numbers are 1-based data rows (the header is not counted, so
row 1 is the first example); pandas' own parse errors name CSV *line* numbers,
which count the header and the lines inside quoted multi-line texts.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tfxfer.config import DataConfig
from tfxfer.data.splits import (
    Splits,
    apply_label_names,
    carve_indices,
    subsample_test,
    tensor_splits,
)
from tfxfer.modality import modality_of_source

logger = logging.getLogger(__name__)

_INTEGER = re.compile(r"[+-]?\d+")
# Rows listed in an error message; the count is always given.
_MAX_ROWS_SHOWN = 10


@dataclass
class TextTable:
    """The usable content of one table.

    Attributes:
        texts: the text of every row (Python strings).
        labels: the raw label of every row, as int (integer labels) or str.
        name: the file path, or "DataFrame", for messages.
    """

    texts: np.ndarray
    labels: list
    name: str


def _rows(mask: np.ndarray) -> str:
    rows = np.flatnonzero(mask) + 1
    shown = ", ".join(str(r) for r in rows[:_MAX_ROWS_SHOWN])
    more = f" and {len(rows) - _MAX_ROWS_SHOWN} more" if len(rows) > _MAX_ROWS_SHOWN else ""
    return f"{len(rows)} row(s): {shown}{more} (1-based data rows, header not counted)"


def read_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Reads a CSV (or, by suffix, TSV) file with every cell as a string.

    Empty cells stay empty strings (no "NA" guessing), so a review that reads
    "NA" or "null" is kept as text.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not valid CSV or not UTF-8, naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Text file not found: {path}")
    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError as err:
        raise ValueError(f"{path} is empty: expected a header and rows.") from err
    except pd.errors.ParserError as err:
        raise ValueError(f"{path} is not valid CSV: {err}".strip()) from err
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text: {err}") from err


def _missing(values: pd.Series) -> np.ndarray:
    return values.isna().to_numpy()


def _text_values(frame: pd.DataFrame, column: str, name: str) -> np.ndarray:
    values = frame[column]
    missing = _missing(values)
    texts = np.array([("" if m else str(v)) for v, m in zip(values, missing)], dtype=object)
    empty = np.array([not t.strip() for t in texts], dtype=bool)
    if empty.any():
        raise ValueError(f"Empty or missing text in column {column!r} of {name}, {_rows(empty)}.")
    return texts


def _label_values(frame: pd.DataFrame, column: str, name: str) -> list:
    values = frame[column]
    missing = _missing(values) | np.array(
        [isinstance(v, str) and not v.strip() for v in values], dtype=bool
    )
    if missing.any():
        raise ValueError(f"Missing label in column {column!r} of {name}, {_rows(missing)}.")
    if pd.api.types.is_bool_dtype(values):
        return [str(v) for v in values]
    if pd.api.types.is_integer_dtype(values):
        return [int(v) for v in values]
    if pd.api.types.is_float_dtype(values):
        if not np.all(np.equal(np.mod(values, 1), 0)):
            raise ValueError(
                f"Labels in column {column!r} of {name} are fractional numbers; labels must "
                "be class names or integer class ids."
            )
        return [int(v) for v in values]
    labels = [str(v).strip() for v in values]
    if all(_INTEGER.fullmatch(v) for v in labels):
        return [int(v) for v in labels]
    return labels


def table_from_frame(
    frame: pd.DataFrame, text_column: str, label_column: str, name: str = "DataFrame"
) -> TextTable:
    """Checks a DataFrame's text and label columns and returns their values.

    Raises:
        ValueError: a column is missing, a text is empty or missing, a label is missing.
    """
    absent = [c for c in (text_column, label_column) if c not in frame.columns]
    if absent:
        raise ValueError(
            f"{name} has no column(s) {absent}; its columns are {list(map(str, frame.columns))}. "
            "Choose them with --text-column / --label-column."
        )
    if len(frame) == 0:
        raise ValueError(f"{name} has no rows.")
    return TextTable(
        _text_values(frame, text_column, name), _label_values(frame, label_column, name), name
    )


def class_names_of(labels: list, name: str) -> list[str]:
    """Sorted distinct labels as strings (integers sorted numerically)."""
    names = [str(v) for v in sorted(set(labels))]
    if len(names) < 2:
        raise ValueError(f"{name} needs at least 2 classes to train on; found {names}.")
    return names


def encode_labels(labels: list, class_names: list[str], name: str) -> np.ndarray:
    """Class ids of `labels`; an error names the rows whose label is not a known class."""
    index = {n: i for i, n in enumerate(class_names)}
    keys = [str(v) for v in labels]
    unknown = np.array([k not in index for k in keys], dtype=bool)
    if unknown.any():
        found = sorted({k for k, u in zip(keys, unknown) if u})
        raise ValueError(
            f"Unknown label(s) {found[:_MAX_ROWS_SHOWN]} in {name}, {_rows(unknown)}; the "
            f"training data has the classes {class_names}."
        )
    return np.asarray([index[k] for k in keys], dtype=np.int64)


def text_splits(
    train: TextTable, data: DataConfig, test: TextTable | None = None, source: str | None = None
) -> Splits:
    """Splits a table of texts (and an optional separate test table) into `Splits`.

    Args:
        train: the labelled table; val (and test, without `test`) are carved from it.
        data: the data section: fractions, seed, max_train_examples/max_test_examples.
        test: a separate test table (e.g. IMDB's official test reviews).
        source: recorded as the Splits' source (default: the tables' names).

    Returns:
        Splits with modality "text": unbatched (string, label) datasets.
    """
    class_names = class_names_of(train.labels, train.name)
    labels = encode_labels(train.labels, class_names, train.name)
    indices = carve_indices(labels, data, class_names, carve_test=test is None)
    tables = {split: (train.texts, labels, idx) for split, idx in indices.items()}
    if test is not None:
        test_labels = encode_labels(test.labels, class_names, test.name)
        tables["test"] = (test.texts, test_labels, subsample_test(test_labels, data))
    raw, split_labels = tensor_splits(tables)
    logger.info("Text splits of %s: %s", source or train.name,
                {k: len(v) for k, v in split_labels.items()})
    return Splits(
        class_names, modality_of_source("csv"), raw, split_labels,
        source or (train.name if test is None else f"{train.name} + {test.name}"),
        example_bytes=int(np.mean([len(t.encode("utf-8")) for t in train.texts])),
    )


def load_csv_splits(data: DataConfig) -> Splits:
    """Reads `data.source` (and `data.test_source`) as CSV/TSV text tables and splits them."""
    train = table_from_frame(read_csv(data.source), data.text_column, data.label_column,
                             str(data.source))
    test = None
    if data.test_source:
        test = table_from_frame(read_csv(data.test_source), data.text_column,
                                data.label_column, str(data.test_source))
    return text_splits(train, data, test, source=str(data.source))


def load_dataframe_splits(
    frame: pd.DataFrame, data: DataConfig, test_frame: pd.DataFrame | None = None
) -> Splits:
    """Splits pandas DataFrames of text, with `data`'s columns, fractions and seed.

    Example:
        splits = load_dataframe_splits(df, DataConfig(text_column="review", label_column="y"))
        tfxfer.train(config, splits=splits)
    """
    train = table_from_frame(frame, data.text_column, data.label_column, "DataFrame")
    test = None
    if test_frame is not None:
        test = table_from_frame(test_frame, data.text_column, data.label_column,
                                "test DataFrame")
    splits = text_splits(train, data, test, source="DataFrame")
    return apply_label_names(splits, data.label_names)
