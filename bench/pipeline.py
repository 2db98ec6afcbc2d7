"""Benchmark: the tf.data input pipeline alone vs the rate the model consumes images.

Measures, on a folder of images (e.g. the 600 tf_flowers photos):
  - pipeline, first pass: read + decode + resize in parallel, batch, prefetch (no model);
  - pipeline, cached: later epochs served from the in-memory cache of decoded images;
  - model: images/s of the backbone forward pass (inference, the fastest consumer) and of
    a phase-2 training step (backbone top unfrozen), on the same batches.
Prints each rate and the ratio pipeline / model. Goal: the first pass at least 3x faster
than the model consumes.

    python bench/pipeline.py --data ../shared/assets/flower_photos [--backbone mobilenet_v2]
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np

from tfxfer.config import DataConfig, ImageConfig, ModelConfig, TrainConfig
from tfxfer.data import load_splits
from tfxfer.evaluation import inference_function
from tfxfer.image.model import build_image_classifier
from tfxfer.training.strategies import Phase, set_phase_trainable
from tfxfer.training.trainer import compile_for_phase


def _rate(ds) -> float:
    start, count = time.perf_counter(), 0
    for images, _ in ds:
        count += int(images.shape[0])
    return count / (time.perf_counter() - start)


def _model_rates(args, batch: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    config = ModelConfig(image=ImageConfig(backbone=args.backbone, weights="none",
                                       image_size=args.image_size, augment=False))
    model = build_image_classifier(config, num_classes=5)
    predict = inference_function(model)
    predict(batch)  # trace
    start = time.perf_counter()
    for _ in range(args.steps):
        predict(batch)
    inference = args.steps * len(batch) / (time.perf_counter() - start)

    train = TrainConfig()
    phase = Phase("fine_tune", 1, 1e-4, "top")
    set_phase_trainable(model, phase, train)
    compile_for_phase(model, phase, train)
    model.train_on_batch(batch, labels)  # trace
    start = time.perf_counter()
    for _ in range(args.steps):
        model.train_on_batch(batch, labels)
    training = args.steps * len(batch) / (time.perf_counter() - start)
    return inference, training


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--backbone", default="mobilenet_v2")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5, help="model batches timed")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    data = DataConfig(source=args.data, val_fraction=0.0, test_fraction=0.0,
                      batch_size=args.batch_size, cache="memory")
    splits = load_splits(data, args.image_size)
    ds = splits.batches("train", data, training=True)
    first = _rate(ds)
    cached = _rate(ds)
    images, labels = next(iter(ds))
    inference, training = _model_rates(args, images.numpy(), labels.numpy())

    print(f"{splits.size('train')} images from {args.data}, {args.image_size}px, "
          f"batch {args.batch_size}, {args.backbone}")
    print(f"pipeline, first pass (decode + resize): {first:8.1f} images/s")
    print(f"pipeline, cached epochs:                {cached:8.1f} images/s")
    print(f"model inference (forward only):         {inference:8.1f} images/s")
    print(f"model training step (phase 2):          {training:8.1f} images/s")
    print(f"ratio first-pass pipeline / inference:  {first / inference:8.1f}x (goal >= 3x)")
    print(f"ratio cached pipeline / inference:      {cached / inference:8.1f}x")


if __name__ == "__main__":
    main()
