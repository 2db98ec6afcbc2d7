"""Benchmark: latency and throughput of an exported SavedModel on real JPEG bytes.

Exports a classifier (default MobileNetV2 at 224 px; random weights, since latency
does not depend on their values) with `tfxfer.serving.export.export_model`, loads it back
with plain `tf.saved_model.load`, and calls its `serving_default` signature:
  - single-request latency: one JPEG per call (p50, p99 over --requests calls);
  - throughput: batches of --batch JPEGs per call, images/s.
Decoding, resizing and preprocessing run inside the exported graph, as on a server.

    python bench/serving.py --images ../shared/assets/flower_photos

Goal on the reference 2-core CPU: p50 <= 40 ms for MobileNetV2 at 224 px.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfxfer.config import ImageConfig, ModelConfig
from tfxfer.image.model import build_image_classifier
from tfxfer.serving.export import export_model


def _jpegs(folder: Path, count: int) -> list[bytes]:
    files = sorted(folder.rglob("*.jpg"))[:count]
    if not files:
        raise SystemExit(f"No .jpg files under {folder}")
    return [f.read_bytes() for f in files]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", required=True, help="folder of .jpg files (recursive)")
    parser.add_argument("--backbone", default="mobilenet_v2")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=10)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    images = _jpegs(Path(args.images), max(args.requests, args.batch))
    config = ModelConfig(image=ImageConfig(backbone=args.backbone, weights="none",
                                       image_size=args.image_size))
    model = build_image_classifier(config, num_classes=5)
    with tempfile.TemporaryDirectory() as base:
        result = export_model(model, [f"class{i}" for i in range(5)], base, "bench",
                              warmup=False)
        serve = tf.saved_model.load(str(result.path)).signatures["serving_default"]
        serve(inputs=tf.constant(images[:1]))  # first call: graph initialisation
        latencies = []
        for i in range(args.requests):
            request = tf.constant(images[i % len(images):][:1])
            start = time.perf_counter()
            serve(inputs=request)
            latencies.append(time.perf_counter() - start)
        batch = tf.constant(images[: args.batch])
        serve(inputs=batch)
        start = time.perf_counter()
        for _ in range(args.batches):
            serve(inputs=batch)
        throughput = args.batches * args.batch / (time.perf_counter() - start)
        size_mb = result.variables_bytes / 1e6

    ms = np.asarray(latencies) * 1000
    print(f"{args.backbone} {args.image_size}px SavedModel (variables {size_mb:.1f} MB), "
          f"{len(images)} real JPEGs")
    print(f"single JPEG per request, {args.requests} requests: p50 {np.percentile(ms, 50):.1f} ms, "
          f"p99 {np.percentile(ms, 99):.1f} ms (goal p50 <= 40 ms)")
    print(f"batches of {args.batch} JPEGs: {throughput:.1f} images/s")


if __name__ == "__main__":
    main()
