"""A bag of hashed word n-grams learned from scratch beside a word-vector encoder.

An averaged word-vector encoder (GloVe) does not see word order: "not good" and "good,
not" embed alike. fastText's remedy (Joulin et al. 2017, "Bag of Tricks for Efficient
Text Classification") is a bag of word n-grams, each hashed into one of `buckets` rows of
an embedding table, averaged. `HashedNgrams` is that bag as a Keras layer; with
`model.text.ngram_buckets > 0` the text model concatenates it to the encoder's vector:

    text -> backbone (pretrained word vectors)           -> concat -> head
         -> ngrams (HashedNgrams, from scratch, training) ->

The table starts random and trains in every phase (it is part of the head, not the
pretrained backbone), so phase 1 cannot train on cached encoder vectors: the bottleneck
cache is off for such a model. The tokens are the GloVe encoder's
(`savedmodel_builder.tokenize`); the hashing is `tf.strings.to_hash_bucket_fast`, so an
exported model computes the same rows in TF Serving.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from tfxfer.text.savedmodel_builder import tokenize

NGRAMS = "ngrams"
TEXT_FEATURES = "text_features"
MAX_ORDER = 3


def ngram_tokens(text: tf.Tensor, order: int) -> tf.RaggedTensor:
    """The words of each text followed by its 2..`order`-grams (space-joined), [batch, (n)]."""
    words = tokenize(tf.reshape(tf.convert_to_tensor(text, tf.string), [-1]))
    grams = [words] + [tf.strings.ngrams(words, n, separator=" ") for n in range(2, order + 1)]
    return tf.concat(grams, axis=1) if len(grams) > 1 else words


@keras.saving.register_keras_serializable(package="tfxfer")
class HashedNgrams(keras.layers.Layer):
    """The mean of the embedding rows of a text's hashed word 1..`order`-grams.

    Args:
        buckets: rows of the table (the hash range); collisions share a row.
        dim: width of each row and of the output.
        order: longest n-gram (1: words only; at most 3).
        **kwargs: Layer arguments (name, dtype).

    Input: string tensor [batch]. Output: [batch, dim]; a text without tokens gives zeros.

    Example:
        vectors = HashedNgrams(buckets=2**18, dim=16, order=2)(keras.Input((), dtype="string"))
    """

    def __init__(self, buckets: int = 2**18, dim: int = 16, order: int = 2, **kwargs: Any):
        super().__init__(**kwargs)
        if buckets < 1 or dim < 1 or not 1 <= order <= MAX_ORDER:
            raise ValueError(f"HashedNgrams needs buckets >= 1, dim >= 1 and 1 <= order <= "
                             f"{MAX_ORDER}. Received: buckets={buckets}, dim={dim}, "
                             f"order={order}")
        self.buckets, self.dim, self.order = int(buckets), int(dim), int(order)

    def build(self, input_shape) -> None:
        # fastText's initialisation of its input vectors: uniform in +-1/dim.
        limit = 1.0 / self.dim
        self.embeddings = self.add_weight(
            shape=(self.buckets, self.dim), name="embeddings",
            initializer=keras.initializers.RandomUniform(-limit, limit))

    def call(self, text):
        tokens = ngram_tokens(text, self.order)
        ids = tf.strings.to_hash_bucket_fast(tokens.flat_values, self.buckets)
        rows = tf.gather(tf.convert_to_tensor(self.embeddings), ids)
        rows_of = tokens.value_rowids()
        count = tokens.nrows()
        sums = tf.math.unsorted_segment_sum(rows, rows_of, count)
        lengths = tf.cast(tf.maximum(tokens.row_lengths(), 1), sums.dtype)
        return sums / lengths[:, None]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.dim)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "buckets": self.buckets, "dim": self.dim,
                "order": self.order}
