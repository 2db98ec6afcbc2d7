"""The text classifier: raw strings -> pretrained text encoder -> the shared head.

    text (string) -> html_line_breaks -> backbone (HubTextEmbedding)
        [-> concatenated with ngrams (HashedNgrams, `model.text.ngram_buckets`)]
        -> dropout -> [hidden] -> predictions (softmax)

The encoder is the layer named "backbone", like an image model's backbone, so
strategies, bottleneck caching, discriminative learning rates and exports treat
both modalities alike. A word-vector encoder is one layer, so phase 2 ("top" or
"all") unfreezes it whole; a transformer (`TransformerTextEncoder`, keras-hub)
unfreezes by blocks from the top (see `tfxfer.text.transformer`).
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np

from tfxfer.config import ModelConfig
from tfxfer.image.model import BACKBONE, build_head
from tfxfer.modality import TEXT
from tfxfer.text.encoders import transformer_preset
from tfxfer.text.hub_layer import HubTextEmbedding
from tfxfer.text.ngrams import NGRAMS, TEXT_FEATURES, HashedNgrams
from tfxfer.text.preprocess import HtmlLineBreaks

TEXT_INPUT = "text"
CLEANUP = "html_line_breaks"

# Range of a from-scratch embedding: Keras' own default for `keras.layers.Embedding`.
RANDOM_INIT_LIMIT = 0.05


def randomize_encoder(encoder: HubTextEmbedding, seed: int | None = None) -> int:
    """Re-initialises an encoder's trainable variables, as if it were never pretrained.

    Matrices (embedding tables, kernels) get uniform values in +-0.05, Keras'
    default for a new `Embedding`; vectors (biases) get zeros. The shapes, the
    vocabulary and the tokenization stay those of the pretrained encoder.

    Args:
        encoder: the encoder layer.
        seed: seed of the random values.

    Returns:
        The number of variables re-initialised.
    """
    rng = np.random.default_rng(seed)
    count = 0
    for variable in encoder.module_trainable_weights:
        if not variable.dtype.startswith("float"):
            continue
        shape = tuple(variable.shape)
        if len(shape) >= 2:
            value = rng.uniform(-RANDOM_INIT_LIMIT, RANDOM_INIT_LIMIT, shape)
        else:
            value = np.zeros(shape)
        variable.assign(value.astype(variable.dtype))
        count += 1
    return count


def _build_encoder(config: ModelConfig, from_scratch: bool, seed: int | None):
    text = config.section(TEXT)
    preset = transformer_preset(text.encoder)
    if preset is not None:  # keras-hub transformer; from scratch: same architecture, random
        from tfxfer.text.transformer import TransformerTextEncoder

        return TransformerTextEncoder(
            preset, text.sequence_length, text.text_pooling,
            load_weights=not from_scratch, dynamic_padding=text.dynamic_padding,
            name=BACKBONE,
        )
    encoder = HubTextEmbedding(text.encoder, name=BACKBONE)
    if from_scratch:
        randomize_encoder(encoder, seed)
    return encoder


def _check_ngrams(config: ModelConfig) -> None:
    section = config.section(TEXT)
    if section.ngram_buckets and transformer_preset(section.encoder) is not None:
        raise ValueError(
            f"model.text.ngram_buckets={section.ngram_buckets} adds word order to a "
            f"word-vector encoder; the transformer {section.encoder!r} sees word order "
            "itself. Set ngram_buckets to 0.")


def _with_ngrams(features, text, config: ModelConfig):
    """The encoder's vector, concatenated with a hashed n-gram bag when one is configured."""
    section = config.section(TEXT)
    if not section.ngram_buckets:
        return features
    grams = HashedNgrams(section.ngram_buckets, section.ngram_dim, section.ngram_order,
                         name=NGRAMS)(text)
    return keras.layers.Concatenate(name=TEXT_FEATURES)([features, grams])


def build_text_classifier(
    config: ModelConfig, num_classes: int, *, from_scratch: bool = False, seed: int | None = None,
    head: Callable | None = None,
) -> keras.Model:
    """Builds a classifier on a pretrained text encoder (`config.text.encoder`).

    Args:
        config: the model section: the head and `config.text` (the encoder handle).
        num_classes: number of classes.
        from_scratch: re-initialise the encoder's variables randomly (same shapes
            and vocabulary), for the `from_scratch` strategy and learning curves.
        seed: seed of that random initialisation.
        head: builds the outputs from the sentence vector instead of `build_head`
            (task heads, `tfxfer.tasks.model`); `num_classes` is then not used.

    Returns:
        An uncompiled `keras.Model` from a batch of strings to class probabilities,
        with the encoder frozen.
    """
    _check_ngrams(config)
    inputs = keras.Input(shape=(), dtype="string", name=TEXT_INPUT)
    text = HtmlLineBreaks(name=CLEANUP)(inputs)
    encoder = _build_encoder(config, from_scratch, seed)
    features = _with_ngrams(encoder(text), text, config)
    outputs = head(features) if head is not None else build_head(features, num_classes, config)
    return keras.Model(inputs, outputs, name="text_classifier")
