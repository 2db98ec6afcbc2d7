"""Phase 2 of a transformer text classifier on cached activations below its unfrozen blocks.

When phase 2 fine-tunes the top k blocks of a keras-hub transformer, the embeddings
and the blocks below compute the same hidden states for a text in every epoch. The
classifier is cut at the input of the lowest unfrozen block:

    bottom = strings -> cleanup -> tokenizer -> embeddings -> frozen blocks
             -> [hidden states | padding mask], [batch, sequence_length, hidden + 1]
    top    = [hidden states | padding mask] -> cut to the batch's longest text
             -> unfrozen blocks (and whatever the backbone does after them)
             -> pooling -> dropout -> [hidden] -> predictions

The padding mask travels as one extra channel so that the cached value is a single
tensor, stored by the same machinery as image activations (`tfxfer.training.bottleneck`:
same keys plus the boundary block's name, memory-mapped when large). Positions past a
text's end hold zeros. The top shares its layers with the classifier, so the trained
blocks are in the classifier when the phase ends. `tfxfer.training.boundary` checks
the split model against the classifier on a batch (1e-5) and otherwise runs the full
model, as for images.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfxfer.image.model import head_input
from tfxfer.text.model import CLEANUP, TEXT_INPUT
from tfxfer.text.transformer import TransformerTextEncoder, pool
from tfxfer.training.split import NoBoundary, SplitModel, output_in


def is_transformer_classifier(model: keras.Model, backbone: keras.layers.Layer) -> bool:
    return isinstance(backbone, TransformerTextEncoder) and CLEANUP in {
        layer.name for layer in model.layers}


def boundary_block(encoder: TransformerTextEncoder) -> int:
    """Index of the lowest trainable transformer block; everything below must be frozen.

    Raises:
        NoBoundary: nothing is trainable, an embedding layer is, or a frozen block lies
            above a trainable one.
    """
    blocks = list(encoder.transformer.transformer_layers)
    trainable = [i for i, block in enumerate(blocks) if block.trainable_weights]
    if not trainable:
        raise NoBoundary("no transformer block is trainable in this phase")
    below = [unit.name for unit in encoder.unfreeze_units
             if unit.trainable_weights and unit not in blocks]
    if below:
        raise NoBoundary(f"embedding layers train in this phase ({below[:3]}): "
                         "nothing below the unfrozen part stays fixed")
    if trainable[0] == 0:
        raise NoBoundary("every transformer block trains: only the embeddings stay fixed")
    if trainable != list(range(trainable[0], len(blocks))):
        raise NoBoundary("a frozen transformer block lies above a trainable one")
    return trainable[0]


@keras.saving.register_keras_serializable(package="tfxfer")
class TransformerBottom(keras.layers.Layer):
    """Strings -> [hidden states | padding mask] at the input of block `block`."""

    def __init__(self, encoder: TransformerTextEncoder, block: int, **kwargs: Any) -> None:
        super().__init__(trainable=False, **kwargs)
        self.encoder, self.block = encoder, block
        transformer = encoder.transformer
        below = transformer.transformer_layers[block - 1].output
        self.lower = keras.Model(transformer.input, below, name="frozen_blocks")
        self.length, self.width = encoder.sequence_length, encoder.output_dim + 1

    def call(self, texts):
        features = self.encoder.tokenize(texts)  # cut to the batch's longest text
        hidden = self.lower(features, training=False)
        mask = tf.cast(features["padding_mask"], hidden.dtype)[:, :, None]
        packed = tf.concat([hidden * mask, mask], axis=-1)
        pad = self.length - tf.shape(packed)[1]
        packed = tf.pad(packed, [[0, 0], [0, pad], [0, 0]])
        return tf.ensure_shape(packed, [None, self.length, self.width])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.length, self.width)


@keras.saving.register_keras_serializable(package="tfxfer")
class TransformerTop(keras.layers.Layer):
    """[hidden states | padding mask] at block `block` -> sentence vectors."""

    def __init__(self, encoder: TransformerTextEncoder, block: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.encoder = encoder
        transformer = encoder.transformer
        mask_input = transformer.input["padding_mask"]
        hidden_input = transformer.transformer_layers[block - 1].output
        output = transformer.output
        if isinstance(output, dict):
            output = output["sequence_output"]
        self.upper = keras.Model([hidden_input, mask_input], output, name="unfrozen_blocks")

    def call(self, packed, training=None):
        mask = tf.cast(packed[:, :, -1] > 0.5, tf.int32)
        longest = tf.maximum(tf.reduce_max(tf.reduce_sum(mask, axis=1)), 1)
        hidden, mask = packed[:, :longest, :-1], mask[:, :longest]
        sequence = self.upper([hidden, mask], training=bool(training and self.encoder.trainable))
        return pool(sequence, mask, self.encoder.pooling)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.encoder.output_dim)


def split_transformer_classifier(model: keras.Model, encoder: TransformerTextEncoder
                                 ) -> SplitModel:
    """Cuts a transformer text classifier (trainable flags set for the phase).

    Raises:
        NoBoundary: the model cannot be split (the message says why).
    """
    block = boundary_block(encoder)
    name = encoder.transformer.transformer_layers[block].name
    texts = keras.Input(shape=(), dtype="string", name=TEXT_INPUT)
    bottom_out = TransformerBottom(encoder, block, name="bottom_blocks")(
        model.get_layer(CLEANUP)(texts))
    bottom = keras.Model(texts, bottom_out, name="bottom")
    vectors = output_in(model, encoder)
    after = keras.Model(vectors, model.output, name="after_backbone")
    features = head_input(model)
    activations = keras.Input(shape=bottom_out.shape[1:], name="activations")
    sentence = TransformerTop(encoder, block, name="top_blocks")(activations)
    top = keras.Model(activations, after(sentence), name="top")
    if features is not vectors:  # a layer (feature standardisation) before the head
        sentence = keras.Model(vectors, features, name="pooling_part")(sentence)
    top_features = keras.Model(activations, sentence, name="top_features")
    return SplitModel(name, bottom, top, top_features, lengths=text_lengths)


def text_lengths(packed: np.ndarray) -> np.ndarray:
    """Real tokens per text of cached [hidden | mask] activations (read in chunks)."""
    return np.concatenate([packed[i:i + 1024, :, -1].sum(axis=1).astype(np.int64)
                           for i in range(0, len(packed), 1024)])
