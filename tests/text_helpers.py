"""Tiny text fixtures shared by the text tests: word vectors, an encoder, review tables."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

POSITIVE = ["good", "great", "fine", "love"]
NEGATIVE = ["bad", "awful", "dull", "hate"]
NEUTRAL = ["movie", "film", "the", "plot", "n't", "!"]
WORDS = POSITIVE + NEGATIVE + NEUTRAL
DIM = 4
OOV_BUCKETS = 3


def tiny_vectors() -> tuple[list[str], np.ndarray]:
    """Dim-4 vectors: sentiment in dimension 0, the rest small and distinct."""
    rng = np.random.default_rng(0)
    vectors = rng.normal(0, 0.1, (len(WORDS), DIM)).astype(np.float32)
    vectors[: len(POSITIVE), 0] += 1.0
    vectors[len(POSITIVE): len(POSITIVE) + len(NEGATIVE), 0] -= 1.0
    return list(WORDS), vectors


def build_tiny_encoder(path: Path) -> Path:
    from tfxfer.text.savedmodel_builder import build_text_embedding

    words, vectors = tiny_vectors()
    return build_text_embedding(words, vectors, path, num_oov_buckets=OOV_BUCKETS)


def review_rows(n: int, seed: int = 0, labels=("neg", "pos")) -> list[tuple[str, str]]:
    """`n` short reviews alternating over `labels`, with HTML line breaks and punctuation."""
    rng = np.random.default_rng(seed)
    pools = [NEGATIVE, POSITIVE, ["plot", "film"]]
    rows = []
    for i in range(n):
        label = i % len(labels)
        words = list(rng.choice(pools[label % len(pools)], 2)) + list(rng.choice(NEUTRAL[:4], 2))
        rng.shuffle(words)
        rows.append((" ".join(words).capitalize() + "<br /><br />!", labels[label]))
    return rows


def write_csv(path: Path, rows, header=("text", "label")) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path
