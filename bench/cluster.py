"""Benchmark: k-means on pretrained features against k-means on raw pixels.

Tasks, all offline:

  flowers   the 600 tf_flowers photos (5 classes, 120 each), features of MobileNet
            alpha=0.25 ImageNet at 224 px (`tfxfer embed`'s path), k = 5; raw-pixel
            baseline: the photos at 32x32, 3,072 values. Optionally also the
            MobileNetV2 1.0 weights file (--mobilenet-v2-weights).
  digits    10,000 MNIST digits (the first 10,000 of the shuffled pooled file),
            k = 10; features of MobileNet alpha=0.25 ImageNet at --digit-size px;
            raw-pixel baseline: the 784 pixels, as scikit-learn's k-means example
            (ARI 0.48 on its anchor).

Every feature set is clustered under each preprocessing of the grid (L2 normalisation,
PCA components, whitening) with the same k-means (10 restarts, seed 0) and scored
with NMI, ARI and Hungarian-matched accuracy. The load average is printed with the
numbers (the machine is shared).

    KERAS_HOME=/tmp/keras_home python bench/cluster.py --assets /work/shared/assets
    ... --tasks digits --digit-size 96
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np

# (L2 normalise, PCA components, whiten): the preprocessing grid.
GRID = [(False, 0, False), (True, 0, False), (True, 32, False), (True, 64, False),
        (True, 16, True), (True, 32, True), (True, 64, True)]


def _load() -> str:
    return "load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def _scores(features: np.ndarray, labels: np.ndarray, k: int, name: str) -> list[dict]:
    from tfxfer.unsupervised.cluster import ClusterConfig, cluster_features
    from tfxfer.unsupervised.metrics import score_clusters

    rows = []
    for l2, pca, whiten in GRID:
        start = time.perf_counter()
        config = ClusterConfig(k=k, l2_normalise=l2, pca_components=pca, whiten=whiten)
        result = cluster_features(features, config)
        row = {"features": name, "l2": l2, "pca": pca, "whiten": whiten,
               **score_clusters(labels, result.assignments).as_dict(),
               "seconds": round(time.perf_counter() - start, 2)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def _embed(items, backbone: str, size: int, weights: str, **kwargs) -> np.ndarray:
    from tfxfer.config import ImageConfig, ModelConfig
    from tfxfer.unsupervised.embed import embed_items

    model = ModelConfig(image=ImageConfig(backbone=backbone, weights=weights, image_size=size,
                                          backbone_kwargs=kwargs))
    start = time.perf_counter()
    features = embed_items(items, model, batch_size=64).features
    print(f"embedded {len(items)} images with {backbone} {kwargs} at {size}px in "
          f"{time.perf_counter() - start:.1f} s ({_load()})", flush=True)
    return features


def _pixels(paths: list[str], side: int) -> np.ndarray:
    from PIL import Image

    rows = []
    for path in paths:
        with Image.open(path) as image:
            rows.append(np.asarray(image.convert("RGB").resize((side, side)), np.float32))
    return np.stack(rows).reshape(len(paths), -1) / 255.0


def flowers(assets: Path, v2_weights: str | None) -> list[dict]:
    from tfxfer.unsupervised.sources import read_items

    items = read_items(assets / "flower_photos", validate=False)
    rows = _scores(_pixels(items.items, 32), items.labels, 5, "flowers raw pixels 32x32")
    features = _embed(items, "mobilenet", 224, "imagenet", alpha=0.25)
    rows += _scores(features, items.labels, 5, "flowers mobilenet a=0.25 imagenet")
    if v2_weights:
        features = _embed(items, "mobilenet_v2", 224, v2_weights)
        rows += _scores(features, items.labels, 5, "flowers mobilenet_v2 1.0 (slim file)")
    return rows


def digits(assets: Path, count: int, size: int) -> list[dict]:
    from PIL import Image

    from tfxfer.unsupervised.sources import read_items

    data = np.load(assets / "digits" / "mnist.npz")
    x, y = data["x"][:count], data["y"][:count].astype(np.int64)
    rows = _scores(x.reshape(count, -1).astype(np.float32) / 255.0, y, 10,
                   f"digits raw pixels ({count})")
    with tempfile.TemporaryDirectory() as tmp:
        for i, (image, label) in enumerate(zip(x, y)):
            folder = Path(tmp, str(label))
            folder.mkdir(exist_ok=True)
            Image.fromarray(image).save(folder / f"{i:05d}.png")
        items = read_items(tmp, validate=False)
        features = _embed(items, "mobilenet", size, "imagenet", alpha=0.25)
    rows += _scores(features, items.labels, 10, f"digits mobilenet a=0.25 imagenet {size}px")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=Path, default=Path(os.environ.get(
        "TFXFER_ASSETS", "/work/shared/assets")))
    parser.add_argument("--tasks", default="flowers,digits")
    parser.add_argument("--mobilenet-v2-weights",
                        help="the MobileNetV2 1.0 Keras 3 weights file of the assets")
    parser.add_argument("--digits", type=int, default=10_000)
    parser.add_argument("--digit-size", type=int, default=96)
    parser.add_argument("--results", type=Path, help="write all rows here (JSON)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(_load(), flush=True)
    rows = []
    if "flowers" in args.tasks:
        rows += flowers(args.assets, args.mobilenet_v2_weights)
    if "digits" in args.tasks:
        rows += digits(args.assets, args.digits, args.digit_size)
    print(_load(), flush=True)
    if args.results:
        args.results.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
