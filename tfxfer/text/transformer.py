"""Transformer text encoders through keras-hub (BERT, MiniLM, DistilBERT, RoBERTa, ...).

`--encoder` accepts, for this kind of encoder:

    a keras-hub preset name   `bert_tiny_en_uncased`, ... (downloaded by keras-hub)
    a hub handle              `hf://sentence-transformers/all-MiniLM-L6-v2`, `kaggle://...`
    a local model folder      a Hugging Face folder (`config.json` + weights + vocabulary,
                              e.g. the offline all-MiniLM-L6-v2) or a keras-hub preset
                              folder (`metadata.json`, `config.json`, ...)

`TransformerTextEncoder` keeps the tokenizer inside the model, so the classifier
takes raw strings:

    strings -> keras-hub preprocessor (WordPiece/BPE tokens, [CLS] ... [SEP], padding
        to `sequence_length`) -> cut to the batch's longest text -> keras-hub backbone
        -> pooling -> [batch, hidden]

Dynamic padding: the preprocessor pads every text to `sequence_length`, but a batch
only needs the positions of its longest text. Padding positions are masked out of
attention and pooling, so cutting them changes no output (to float rounding, 1e-5)
and the transformer's cost follows the batch's real length: one-sentence reviews
(~25 tokens) instead of 256 positions. `dynamic_padding=False` keeps the fixed
length (static shapes, e.g. for XLA).

Two details of Hugging Face BERT checkpoints that keras-hub's conversion does not
carry over are restored: the exact (erf) GELU when `config.json` says `gelu`, and
accent stripping when the tokenizer lower-cases (see `uses_exact_gelu`,
`match_checkpoint_tokenizer`). tests/test_minilm_assets.py checks the result against
an independent numpy BERT.

Pooling is "mean" (over real tokens, as sentence-transformers models are trained)
or "cls" (the first token's hidden state); the default is what the folder's
sentence-transformers `1_Pooling/config.json` says, else "mean". Vectors are not
L2-normalised (a linear head learns its own scale).

Phase 2 unfreezes *units* from the top: the transformer blocks and, below them,
the embedding layers (token, position, segment, embedding LayerNorm), so
`unfreeze_layers=2` trains the top two blocks. LayerNorm layers have no moving
statistics, so unlike BatchNorm they train together with their block. Dropout
inside the transformer is active while it trains (phase 2) and off while it is
frozen (phase 1 and inference).

Example:
    encoder = TransformerTextEncoder("../shared/assets/text/all-MiniLM-L6-v2",
                                     sequence_length=128)
    vectors = encoder(tf.constant(["a fine film"]))   # [1, 384]
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from tfxfer.utils import keras_compat

logger = logging.getLogger(__name__)

POOLINGS = ("mean", "cls")
HUB_SCHEMES = ("hf://", "kaggle://", "modelscope://", "gs://")
# Layers of a keras-hub backbone that the sequence output does not use (BERT's
# pooler): they stay frozen, since no gradient reaches them.
_UNUSED_LAYERS = ("pooled_dense",)


class TransformerEncoderError(ValueError):
    """An `--encoder` handle that cannot be a keras-hub transformer encoder."""


def _is_hf_folder(path: Path) -> bool:
    config = path / "config.json"
    if not config.is_file():
        return False
    try:
        data = json.loads(config.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return "model_type" in data or "architectures" in data


def _is_keras_hub_folder(path: Path) -> bool:
    return (path / "metadata.json").is_file() and (path / "config.json").is_file()


def is_model_folder(path: str | os.PathLike) -> bool:
    """Whether `path` is a Hugging Face or keras-hub model folder."""
    path = Path(path)
    return path.is_dir() and (_is_hf_folder(path) or _is_keras_hub_folder(path))


def keras_hub_presets() -> list[str]:
    """Names of the presets the installed keras-hub knows (its backbones)."""
    import keras_hub

    return sorted(keras_hub.models.Backbone.presets)


def is_transformer_handle(handle: str) -> bool:
    """Whether `--encoder handle` names a keras-hub transformer (see the module docstring)."""
    if handle.startswith(HUB_SCHEMES[:3]):
        return True
    if os.path.isdir(handle):
        return is_model_folder(handle)
    if "/" in handle or os.path.exists(handle):
        return False
    import keras_hub

    return handle in keras_hub.models.Backbone.presets


def validate_preset(preset: str) -> str:
    """The preset or folder `preset`, checked before keras-hub touches it.

    Raises:
        TransformerEncoderError: a folder that is not a model folder, or a name that
            is not a keras-hub preset (keras-hub would otherwise try the network).
    """
    if preset.startswith(HUB_SCHEMES):
        return preset
    if os.path.exists(preset):
        if not is_model_folder(preset):
            raise TransformerEncoderError(
                f"Text encoder folder {preset!r} is not a model folder: expected a Hugging "
                "Face folder (config.json with model_type, weights, vocabulary) or a "
                "keras-hub preset folder (metadata.json, config.json)."
            )
        return os.path.abspath(preset)
    import keras_hub

    if preset not in keras_hub.models.Backbone.presets:
        raise TransformerEncoderError(
            f"Unknown keras-hub preset {preset!r}: not a local folder, not a hf:// or "
            "kaggle:// handle, and not one of the installed keras-hub's "
            f"{len(keras_hub.models.Backbone.presets)} presets (e.g. bert_tiny_en_uncased)."
        )
    return preset


def default_pooling(preset: str) -> str:
    """The checkpoint's own sentence pooling: its sentence-transformers config, else mean."""
    config = Path(preset) / "1_Pooling" / "config.json"
    if config.is_file():
        data = json.loads(config.read_text())
        if data.get("pooling_mode_cls_token"):
            return "cls"
    return "mean"


@keras.saving.register_keras_serializable(package="tfxfer")
def exact_gelu(x):
    """GELU with erf, as Hugging Face's `hidden_act: gelu`."""
    return keras.activations.gelu(x, approximate=False)


def uses_exact_gelu(preset: str) -> bool:
    """Whether `preset` is a Hugging Face folder whose config asks for the exact GELU.

    keras-hub builds every BERT with the tanh approximation of GELU (as Google's BERT
    was trained), but a Hugging Face BERT whose config says `hidden_act: gelu` (such
    as all-MiniLM-L6-v2) was trained with the exact, erf-based one: left approximate,
    its sentence vectors are off by up to ~1e-3.
    """
    if not _is_hf_folder(Path(preset)):
        return False
    return json.loads((Path(preset) / "config.json").read_text()).get("hidden_act") == "gelu"


def set_exact_gelu(transformer: keras.Model) -> int:
    """Gives the feedforward layers of keras-hub's BERT blocks the exact GELU; returns how many."""
    count = 0
    for block in getattr(transformer, "transformer_layers", []):
        dense = keras_compat.bert_feedforward_dense(block)
        if dense is not None and getattr(block.activation, "__name__", "") == "gelu_approximate":
            block.activation = dense.activation = exact_gelu
            count += 1
    return count


def match_checkpoint_tokenizer(tokenizer: keras.layers.Layer, preset: str) -> bool:
    """Strips accents as a lower-casing Hugging Face BERT tokenizer does; True if changed.

    Hugging Face's BertTokenizer strips accents whenever it lower-cases, unless its
    `strip_accents` says false ("Café" -> "cafe"); keras-hub's conversion keeps them,
    so accented words would become [UNK].
    """
    config = Path(preset) / "tokenizer_config.json"
    if not config.is_file() or not hasattr(tokenizer, "strip_accents"):
        return False
    data = json.loads(config.read_text())
    strip = data.get("do_lower_case", False) and data.get("strip_accents") in (None, True)
    if strip and not tokenizer.strip_accents:
        tokenizer.strip_accents = True
        return True
    return False


def _validate_sequence_length(preset: str, sequence_length: int, maximum: int | None) -> None:
    if sequence_length < 2:
        raise TransformerEncoderError(
            f"sequence_length must be >= 2 (room for [CLS] and [SEP]). "
            f"Received: sequence_length={sequence_length}"
        )
    if maximum is not None and sequence_length > maximum:
        raise TransformerEncoderError(
            f"sequence_length={sequence_length} is over the maximum of text encoder "
            f"{preset!r} ({maximum} positions)."
        )


def trim_padding(features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """Cuts every [batch, positions] input to the batch's longest text (at least 1).

    keras-hub's packers pad on the right, so the first `longest` positions hold every
    real token of every text.
    """
    mask = tf.cast(features["padding_mask"], tf.int32)
    longest = tf.maximum(tf.reduce_max(tf.reduce_sum(mask, axis=1)), 1)
    return {name: value[:, :longest] for name, value in features.items()}


def pool(hidden: tf.Tensor, padding_mask: tf.Tensor, pooling: str) -> tf.Tensor:
    """Sentence vectors [batch, hidden] of hidden states [batch, positions, hidden]:
    the first token's ("cls") or the mean over real tokens ("mean")."""
    if pooling == "cls":
        return hidden[:, 0, :]
    mask = tf.cast(padding_mask, hidden.dtype)[:, :, None]
    total = tf.reduce_sum(hidden * mask, axis=1)
    return total / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)


@keras.saving.register_keras_serializable(package="tfxfer")
class TransformerTextEncoder(keras.layers.Layer):
    """Embeds a batch of strings with a keras-hub transformer (tokenizer inside).

    Args:
        preset: a keras-hub preset name, hf:// or kaggle:// handle, or local folder.
        sequence_length: tokens per text after truncation/padding ([CLS]/[SEP] included).
        pooling: "mean", "cls", or None for the checkpoint's own (see `default_pooling`).
        load_weights: False builds the same architecture with random weights.
        dynamic_padding: cut each batch to its longest text (see the module docstring).
        trainable: whether the transformer's weights train (False: frozen).
        **kwargs: Layer arguments (name, dtype).

    Input: string tensor [batch]. Output: float32 [batch, hidden_dim].
    """

    def __init__(
        self, preset: str, sequence_length: int = 128, pooling: str | None = None,
        load_weights: bool = True, trainable: bool = False, exact_gelu: bool | None = None,
        transformer: keras.Model | None = None,
        preprocessor: keras.layers.Layer | None = None, dynamic_padding: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(trainable=trainable, **kwargs)
        self.sequence_length = int(sequence_length)
        self.dynamic_padding = bool(dynamic_padding)
        self.load_weights = bool(load_weights)
        if pooling is not None and pooling not in POOLINGS:
            raise TransformerEncoderError(
                f"Text pooling must be one of {', '.join(POOLINGS)}. Received: {pooling!r}"
            )
        if transformer is None:  # new, from the preset
            self.preset = validate_preset(preset)
            transformer, preprocessor = self._from_preset()
            exact_gelu = uses_exact_gelu(self.preset)
        else:  # from a .keras file: its config, weights and vocabulary, not the preset's
            self.preset = preset
        self.exact_gelu = bool(exact_gelu)
        if self.exact_gelu:
            set_exact_gelu(transformer)
        self.pooling = pooling or default_pooling(self.preset)
        self.transformer, self.preprocessor = transformer, preprocessor
        self.output_dim = int(self.transformer.hidden_dim)
        self._input_names = set(self.transformer.input)
        # Through the setter itself: Keras skips assignments of an unchanged value.
        type(self).trainable.fset(self, trainable)
        self.built = True

    def _from_preset(self) -> tuple[keras.Model, keras.layers.Layer]:
        import keras_hub

        transformer = keras_hub.models.Backbone.from_preset(
            self.preset, load_weights=self.load_weights
        )
        maximum = getattr(transformer, "max_sequence_length", None)
        _validate_sequence_length(self.preset, self.sequence_length, maximum)
        preprocessor = keras_hub.models.TextClassifierPreprocessor.from_preset(
            self.preset, sequence_length=self.sequence_length
        )
        match_checkpoint_tokenizer(preprocessor.tokenizer, self.preset)
        return transformer, preprocessor

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        # Keras passes the flag down to every nested layer; the unused ones (BERT's
        # pooler) are frozen again, since no gradient reaches them.
        keras.layers.Layer.trainable.fset(self, value)
        transformer = getattr(self, "transformer", None)  # None inside Layer.__init__
        for layer in transformer.layers if transformer is not None else []:
            if layer.name in _UNUSED_LAYERS:
                layer.trainable = False

    @property
    def unfreeze_units(self) -> list[keras.layers.Layer]:
        """What phase 2 unfreezes, bottom to top: embedding layers, then transformer blocks.

        `tfxfer.training.strategies` walks these instead of `.layers` (a Layer has none).
        """
        return [
            layer for layer in self.transformer.layers
            if layer.weights and layer.name not in _UNUSED_LAYERS
        ]

    @property
    def feature_identity(self) -> str:
        """What determines this encoder's frozen vectors (for feature-cache keys)."""
        files = ""
        weights = Path(self.preset) / "model.safetensors"
        if weights.is_file():
            stat = weights.stat()
            files = f":{stat.st_size}:{stat.st_mtime_ns}"
        return (f"{self.preset}{files}:seq{self.sequence_length}:{self.pooling}"
                f":weights{int(self.load_weights)}")

    @property
    def module_path(self) -> str:
        return self.preset

    def tokenize(self, inputs) -> dict[str, tf.Tensor]:
        """The backbone's inputs (token ids, padding mask, ...) for a batch of strings."""
        inputs = tf.reshape(tf.convert_to_tensor(inputs, tf.string), [-1])
        features = self.preprocessor(inputs)
        features = {k: v for k, v in features.items() if k in self._input_names}
        return trim_padding(features) if self.dynamic_padding else features

    def call(self, inputs, training=None):
        features = self.tokenize(inputs)
        hidden = self.transformer(features, training=bool(training and self.trainable))
        if isinstance(hidden, dict):
            hidden = hidden["sequence_output"]
        return pool(hidden, features["padding_mask"], self.pooling)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_dim)

    def get_config(self) -> dict[str, Any]:
        # The transformer and tokenizer travel in the .keras file (config, weights and
        # vocabulary), so a saved model reloads without its preset folder or network.
        serialize = keras.saving.serialize_keras_object
        return {
            **super().get_config(), "preset": self.preset,
            "sequence_length": self.sequence_length, "pooling": self.pooling,
            "load_weights": self.load_weights, "exact_gelu": self.exact_gelu,
            "dynamic_padding": self.dynamic_padding,
            "transformer": serialize(self.transformer),
            "preprocessor": serialize(self.preprocessor),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TransformerTextEncoder:
        config = dict(config)
        for key in ("transformer", "preprocessor"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
