"""A tiny random BERT saved as a keras-hub preset folder, for transformer-encoder tests."""

from __future__ import annotations

from pathlib import Path

from text_helpers import WORDS

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
VOCABULARY = SPECIAL + WORDS + ["<", ">", "/", "br", ",", "."]
NUM_LAYERS = 3
HIDDEN = 8
MAX_SEQUENCE_LENGTH = 16


def build_tiny_bert(path: Path, seed: int = 0) -> Path:
    """Writes a 3-block, 8-wide random BERT with a 21-word WordPiece vocabulary to `path`."""
    import keras
    import keras_hub

    keras.utils.set_random_seed(seed)
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=VOCABULARY, lowercase=True)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(
        tokenizer, sequence_length=MAX_SEQUENCE_LENGTH
    )
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(VOCABULARY), num_layers=NUM_LAYERS, num_heads=2,
        hidden_dim=HIDDEN, intermediate_dim=16, max_sequence_length=MAX_SEQUENCE_LENGTH,
    )
    path.mkdir(parents=True, exist_ok=True)
    backbone.save_to_preset(str(path))
    preprocessor.save_to_preset(str(path))
    return path
