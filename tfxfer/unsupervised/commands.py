"""`tfxfer embed` and `tfxfer cluster`: (add_arguments, run) pairs in `tfxfer.cli.COMMANDS`.

The work is imported inside the run functions, so `tfxfer --help` stays fast.

    tfxfer embed --data photos/ --backbone mobilenet --backbone-arg alpha=0.25 --out f.npy
    tfxfer cluster --data photos/ --k auto --out clusters/ --link-folders sorted/
    tfxfer cluster --data f.npy --k 5        (features embedded earlier)
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

import yaml

logger = logging.getLogger(__name__)


def _key_value(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, yaml.safe_load(value)


def _k(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected an integer or 'auto', got {text!r}") from err


# (flag, model config section, key, argparse options): the model flags of `tfxfer train`.
_MODEL_FLAGS: list[tuple[str, str, str, dict]] = [
    ("--backbone", "image", "backbone", {"help": "image backbone (see list-backbones)"}),
    ("--weights", "image", "weights", {"help": "imagenet, none, or a weights file"}),
    ("--image-size", "image", "image_size", {"type": int}),
    ("--pooling", "image", "pooling", {"choices": ("avg", "max")}),
    ("--encoder", "text", "encoder", {"help": "text encoder (see list-encoders)"}),
    ("--sequence-length", "text", "sequence_length", {"type": int}),
    ("--text-pooling", "text", "text_pooling", {}),
]


def _add_data_arguments(parser: argparse.ArgumentParser, data_help: str) -> None:
    parser.add_argument("--data", required=True, help=data_help)
    parser.add_argument("--config", help="YAML/JSON run config whose model section is used")
    parser.add_argument("--backbone-arg", action="append", type=_key_value, default=[],
                        metavar="KEY=VALUE", help="backbone constructor argument, e.g. alpha=0.25")
    for flag, _, key, options in _MODEL_FLAGS:
        parser.add_argument(flag, dest=key, **options)
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--label-column", default="label",
                        help="reference labels of a CSV, used only to score clusters")
    parser.add_argument("--batch-size", type=int, default=32)


def _model_config(args: argparse.Namespace):
    from tfxfer.config import load_config

    model: dict[str, dict] = {"image": {}, "text": {}}
    for _, section, key, _ in _MODEL_FLAGS:
        if getattr(args, key) is not None:
            model[section][key] = getattr(args, key)
    if args.backbone_arg:
        model["image"]["backbone_kwargs"] = dict(args.backbone_arg)
    return load_config(args.config, {"model": model}).model


def _embeddings(args: argparse.Namespace):
    from tfxfer.unsupervised.embed import embed_items, is_embeddings_file, load_embeddings
    from tfxfer.unsupervised.sources import read_items

    if is_embeddings_file(args.data):
        return load_embeddings(args.data)
    items = read_items(args.data, args.text_column, args.label_column)
    return embed_items(items, _model_config(args), batch_size=args.batch_size)


def add_embed_arguments(parser: argparse.ArgumentParser) -> None:
    _add_data_arguments(parser, "image folder (flat or class subfolders) or text CSV/TSV")
    parser.add_argument("--out", required=True, help="FILE.npy (+ FILE.items.csv) or FILE.parquet")


def run_embed(args: argparse.Namespace) -> int:
    from tfxfer.unsupervised.embed import is_embeddings_file, save_embeddings

    if is_embeddings_file(args.data):
        raise ValueError(f"--data {args.data} is already an embeddings file.")
    emb = _embeddings(args)
    for path in save_embeddings(emb, args.out):
        print(f"wrote {path}")
    print(f"{len(emb.items)} items x {emb.features.shape[1]} features")
    return 0


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    _add_data_arguments(parser, "image folder, text CSV/TSV, or a `tfxfer embed` file")
    parser.add_argument("--k", type=_k, default="auto", metavar="N|auto",
                        help="clusters; auto: best silhouette over --k-range (default)")
    parser.add_argument("--k-range", type=int, nargs=2, default=(2, 15), metavar=("MIN", "MAX"))
    parser.add_argument("--pca", type=int, default=32, metavar="N",
                        help="PCA components before k-means (0: none; default 32)")
    parser.add_argument("--whiten", action="store_true", help="whiten the PCA components")
    parser.add_argument("--no-l2", action="store_true", help="no L2 normalisation")
    parser.add_argument("--duplicates", type=float, default=0.95, metavar="COSINE",
                        help="list pairs at least this similar (default 0.95)")
    parser.add_argument("--map", choices=("auto", "umap", "pca"), default="auto",
                        help="2-D map method (auto: UMAP when installed, else PCA)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="output folder (default clusters/<timestamp>)")
    parser.add_argument("--link-folders", metavar="DIR",
                        help="also write a folder of symlinks per cluster under DIR")


def run_cluster(args: argparse.Namespace) -> int:
    import numpy as np

    from tfxfer.unsupervised.cluster import ClusterConfig, cluster_features, near_duplicates
    from tfxfer.unsupervised.metrics import score_clusters
    from tfxfer.unsupervised.report import link_folders, write_outputs

    config = ClusterConfig(k=args.k, k_range=tuple(args.k_range), l2_normalise=not args.no_l2,
                           pca_components=args.pca, whiten=args.whiten,
                           seed=args.seed).validate()
    out = Path(args.out or Path("clusters", time.strftime("%Y%m%d-%H%M%S")))
    if args.link_folders and Path(args.link_folders).exists() \
            and any(Path(args.link_folders).iterdir()):
        raise ValueError(f"--link-folders {args.link_folders} exists and is not empty.")
    emb = _embeddings(args)
    result = cluster_features(emb.features, config)
    scores = score_clusters(emb.labels, result.assignments) if emb.labels is not None else None
    pairs = near_duplicates(emb.features, args.duplicates)
    files = write_outputs(emb, result, out, scores=scores, duplicates=pairs,
                          duplicate_threshold=args.duplicates, map_method=args.map,
                          seed=args.seed)
    sizes = sorted(np.bincount(result.assignments, minlength=result.k).tolist(), reverse=True)
    print(f"{result.k} clusters of {len(emb.items)} items; sizes {sizes}")
    if scores is not None:
        print("against the reference labels: " + ", ".join(
            f"{k} {v:.4f}" for k, v in scores.as_dict().items()))
    print(f"{len(pairs)} near-duplicate pair(s) with cosine >= {args.duplicates}")
    if args.link_folders:
        print(f"class folders of links: {link_folders(emb, result, args.link_folders)}")
    for name, path in files.items():
        print(f"{name}: {path}")
    return 0
