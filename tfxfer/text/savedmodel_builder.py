"""Word vectors -> a TF2 SavedModel in TF-Hub's text-embedding format.

The SavedModel has the shape of TF-Hub's nnlm / gnews-swivel modules and of
TF-Hub's own `text_embeddings_v2` exporter, so anything that loads those loads
it (`hub.load`, `tfxfer.text.HubTextEmbedding`):

    __call__(strings[batch]) -> float32[batch, dim]
    variables, trainable_variables   [embeddings]
    assets/vocab.txt                 one word per line, row i of the matrix

Inside `__call__`, all in the graph (no Python, so it serves from TF Serving):

    text -> drop HTML line breaks (<br />) -> lower-case (UTF-8)
         -> punctuation split off, English contractions kept as GloVe tokens
            ("don't" -> "do n't", "it's" -> "it 's")
         -> whitespace split -> vocabulary lookup, unknown words hashed into
            `num_oov_buckets` extra rows -> embedding rows
         -> sqrtn combiner: sum of the rows / sqrt(number of tokens)

Text without tokens embeds to zeros. Out-of-vocabulary rows start at zero, so
the frozen encoder ignores unknown words; fine-tuning can learn them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfxfer.text.preprocess import strip_html_line_breaks
from tfxfer.utils import atomic

logger = logging.getLogger(__name__)

VOCAB_FILE = "vocab.txt"
DEFAULT_OOV_BUCKETS = 1000

# Everything that is Unicode punctuation (P) or a symbol (S) becomes its own token.
_PUNCTUATION = r"([\pP\pS])"


def tokenize(text: tf.Tensor) -> tf.RaggedTensor:
    """Splits a batch of strings into GloVe-style lower-case tokens.

    Args:
        text: string tensor of shape [batch].

    Returns:
        A ragged string tensor [batch, (tokens)].
    """
    text = strip_html_line_breaks(text)
    text = tf.strings.lower(text, encoding="utf-8")
    text = tf.strings.regex_replace(text, _PUNCTUATION, r" \1 ")
    # Undo the split for contractions, which GloVe (PTB tokenization) keeps as tokens.
    text = tf.strings.regex_replace(text, r"n ' t\b", " n't")
    text = tf.strings.regex_replace(text, r" ' (s|re|ve|ll|d|m)\b", r" '\1")
    return tf.strings.split(text)


class TextEmbeddingModule(tf.train.Checkpoint):
    """The exported object: strings in, one vector per string out.

    Args:
        vocab_path: the vocabulary file, one word per line (saved as an asset).
        embeddings: float32 [vocabulary size + num_oov_buckets, dim].
        num_oov_buckets: hash buckets for words not in the vocabulary.
    """

    def __init__(self, vocab_path: str, embeddings: np.ndarray, num_oov_buckets: int) -> None:
        super().__init__()
        self._vocabulary_file = tf.saved_model.Asset(vocab_path)
        initializer = tf.lookup.TextFileInitializer(
            self._vocabulary_file, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
            tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER,
        )
        self._table = tf.lookup.StaticVocabularyTable(initializer, num_oov_buckets)
        self.embeddings = tf.Variable(embeddings, name="embeddings")
        # The reusable-SavedModel API (what hub.KerasLayer and tfxfer read).
        self.variables = [self.embeddings]
        self.trainable_variables = [self.embeddings]
        self.regularization_losses = []

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, text: tf.Tensor) -> tf.Tensor:
        tokens = tokenize(text)
        ids = self._table.lookup(tokens.flat_values)
        rows = tf.gather(self.embeddings, ids)
        sums = tf.math.unsorted_segment_sum(rows, tokens.value_rowids(), tokens.nrows())
        counts = tf.cast(tf.maximum(tokens.row_lengths(), 1), sums.dtype)
        return sums / tf.sqrt(counts)[:, None]


def _check_vocabulary(words: Sequence[str], vectors: np.ndarray) -> None:
    if vectors.ndim != 2 or len(words) != vectors.shape[0]:
        raise ValueError(
            f"Expected one vector per word: {len(words)} words, vectors of shape "
            f"{vectors.shape}."
        )
    for i, word in enumerate(words):
        if not word or word != word.strip() or any(c.isspace() for c in word):
            raise ValueError(f"Vocabulary entry {i} ({word!r}) is empty or holds whitespace.")
    if len(set(words)) != len(words):
        raise ValueError("The vocabulary holds duplicate words.")


def build_text_embedding(
    words: Sequence[str],
    vectors: np.ndarray,
    export_dir: str | os.PathLike,
    num_oov_buckets: int = DEFAULT_OOV_BUCKETS,
) -> Path:
    """Writes a TF-Hub-format text-embedding SavedModel.

    The directory is written under a temporary name and renamed at the end, so
    a half-built model is never picked up.

    Args:
        words: the vocabulary; word i has vector `vectors[i]`. Words are matched
            after `tokenize`, so they should be lower-case.
        vectors: float array [len(words), dim].
        export_dir: the SavedModel directory to create (must not exist).
        num_oov_buckets: hash buckets for unknown words (>= 1), zero-initialised.

    Returns:
        `export_dir` as a Path.

    Example:
        build_text_embedding(["good", "bad"], np.eye(2), "/tmp/tiny")
        hub.load("/tmp/tiny")(tf.constant(["Good!"]))  # [[0.7071, 0]]
    """
    export_dir = Path(export_dir)
    if export_dir.exists():
        raise FileExistsError(f"SavedModel directory already exists: {export_dir}")
    if num_oov_buckets < 1:
        raise ValueError(f"num_oov_buckets must be >= 1. Received: {num_oov_buckets}")
    words = list(words)
    vectors = np.asarray(vectors, dtype=np.float32)
    _check_vocabulary(words, vectors)
    table = np.concatenate([vectors, np.zeros((num_oov_buckets, vectors.shape[1]), np.float32)])
    with atomic.atomic_dir(export_dir) as tmp:
        vocab_path = tmp / VOCAB_FILE
        vocab_path.write_text("".join(f"{w}\n" for w in words), encoding="utf-8")
        module = TextEmbeddingModule(str(vocab_path), table, num_oov_buckets)
        tf.saved_model.save(module, str(tmp))
        vocab_path.unlink()  # the SavedModel keeps its own copy under assets/
    logger.info("Wrote a %d-word, %d-dim text embedding (+%d OOV buckets) to %s",
                len(words), vectors.shape[1], num_oov_buckets, export_dir)
    return export_dir
