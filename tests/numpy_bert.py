"""An independent numpy forward pass of a Hugging Face BERT checkpoint (no keras-hub).

Reference for the transformer-encoder asset test: token ids from the folder's own
`tokenizer.json` (the Hugging Face `tokenizers` library), weights straight from
`model.safetensors`, and BERT's forward pass written out as in the original paper
and the Hugging Face implementation (post-LayerNorm blocks, GELU as `config.json`
names it), then the sentence-transformers mean pooling over real tokens.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

_ERF = np.vectorize(math.erf)


def _gelu(x: np.ndarray, kind: str) -> np.ndarray:
    if kind == "gelu":  # exact, with erf
        return 0.5 * x * (1.0 + _ERF(x / math.sqrt(2.0)))
    if kind in ("gelu_new", "gelu_pytorch_tanh"):
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    raise ValueError(f"Unsupported hidden_act {kind!r}")


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def _linear(x: np.ndarray, weights: dict, name: str) -> np.ndarray:
    # Hugging Face Linear weights are [out, in].
    return x @ weights[f"{name}.weight"].T.astype(np.float64) + weights[f"{name}.bias"]


class NumpyBert:
    """BERT from a Hugging Face folder, in float64 numpy, one sentence at a time."""

    def __init__(self, folder: str | Path) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        folder = Path(folder)
        self.config = json.loads((folder / "config.json").read_text())
        self.weights = {k: v.astype(np.float64) for k, v in
                        load_file(str(folder / "model.safetensors")).items()}
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()

    def token_ids(self, text: str, max_length: int) -> np.ndarray:
        self.tokenizer.enable_truncation(max_length)
        return np.asarray(self.tokenizer.encode(text).ids)

    def hidden_states(self, ids: np.ndarray) -> np.ndarray:
        w, c = self.weights, self.config
        eps = c["layer_norm_eps"]
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][: len(ids)]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
        heads = c["num_attention_heads"]
        size = c["hidden_size"] // heads
        for i in range(c["num_hidden_layers"]):
            p = f"encoder.layer.{i}"
            q, k, v = (_linear(x, w, f"{p}.attention.self.{n}").reshape(len(ids), heads, size)
                       .transpose(1, 0, 2) for n in ("query", "key", "value"))
            scores = q @ k.transpose(0, 2, 1) / math.sqrt(size)
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            context = (scores / scores.sum(-1, keepdims=True)) @ v
            context = context.transpose(1, 0, 2).reshape(len(ids), -1)
            x = _layer_norm(x + _linear(context, w, f"{p}.attention.output.dense"),
                            w[f"{p}.attention.output.LayerNorm.weight"],
                            w[f"{p}.attention.output.LayerNorm.bias"], eps)
            inner = _gelu(_linear(x, w, f"{p}.intermediate.dense"), c["hidden_act"])
            x = _layer_norm(x + _linear(inner, w, f"{p}.output.dense"),
                            w[f"{p}.output.LayerNorm.weight"], w[f"{p}.output.LayerNorm.bias"],
                            eps)
        return x

    def sentence_embedding(self, text: str, max_length: int) -> np.ndarray:
        """Mean of the last hidden states over the sentence's tokens (no padding)."""
        return self.hidden_states(self.token_ids(text, max_length)).mean(0)
