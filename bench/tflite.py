"""Benchmark: on-device (LiteRT) exports per quantization mode against the SavedModel.

For a trained run (--run, e.g. the flowers run on MobileNet alpha=0.25) and for an
untrained MobileNetV2 at 224 px (--mobilenet-v2; weights=None, for size and latency
only), prints per mode (none, float16, dynamic, int8):
  - the .tflite file size, and its share of the float32 (none) file;
  - test accuracy against the Keras model and top-1 agreement (the run only);
  - single-image latency p50/p99: LiteRT interpreter (XNNPACK, --threads) on one
    decoded uint8 image vs the SavedModel's `serving_pixels` signature on the same
    image (arms alternated round by round after a warm-up, percentiles over all calls),
    and the CPU time per call (all threads), which waiting for a busy core does not inflate;
and, with --resize-in-model, how a model that takes photos of any size (the resize
layer kept inside the .tflite) converts, scores and runs.

    python bench/tflite.py --run runs/flowers --mobilenet-v2 --resize-in-model

Goals: int8 file <= 30% of float32, accuracy within 2 points of Keras, LiteRT p50
lower than the SavedModel's.
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
import tensorflow as tf

from tfxfer.config import ImageConfig, ModelConfig
from tfxfer.image.model import build_image_classifier, image_size_for
from tfxfer.lite.convert import convert_image_model
from tfxfer.lite.export import decoded_test_split
from tfxfer.lite.representative import collect_images, training_examples
from tfxfer.lite.runtime import LiteClassifier
from tfxfer.lite.verify import compare
from tfxfer.serving.export import export_model
from tfxfer.serving.export.checks import directory_bytes

MODES = ("none", "float16", "dynamic", "int8")


def _load() -> str:
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def _latencies(arms: dict, image: np.ndarray, calls: int, rounds: int, warmup: int) -> dict:
    """Per arm: wall-clock ms p50 and p99, and CPU ms p50 (all threads of this process).

    Arms are alternated round by round (order rotated). On a machine shared with
    other jobs the wall clock includes waiting for a core; the CPU time does not.
    """
    for run in arms.values():
        for _ in range(warmup):
            run(image)
    wall = {name: [] for name in arms}
    cpu = {name: [] for name in arms}
    names = list(arms)
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            run = arms[name]
            for _ in range(calls):
                start, start_cpu = time.perf_counter(), time.process_time()
                run(image)
                cpu[name].append((time.process_time() - start_cpu) * 1000)
                wall[name].append((time.perf_counter() - start) * 1000)
    return {name: (float(np.percentile(wall[name], 50)), float(np.percentile(wall[name], 99)),
                   float(np.percentile(cpu[name], 50)))
            for name in arms}


def _saved_model_arm(model, class_names, size, base):
    result = export_model(model, class_names, base, "bench", image_size=size, warmup=False)
    pixels = tf.saved_model.load(str(result.path)).signatures["serving_pixels"]

    def run(image):
        return pixels(images=tf.constant(image[None]))["probabilities"].numpy()[0]

    return run, directory_bytes(result.path), result.variables_bytes


def _compare_model(name, model, class_names, size, calibration, test, args) -> dict:
    """Sizes, accuracy (when `test` has labels) and latency of every mode and the SavedModel."""
    rows, arms = {}, {}
    with tempfile.TemporaryDirectory() as base:
        saved_run, saved_bytes, variables = _saved_model_arm(model, class_names, size, base)
        arms["savedmodel"] = saved_run
        rows["savedmodel"] = {"bytes": saved_bytes, "variables_bytes": variables}
        keras_probs = None
        if test is not None:
            keras_probs = model.predict(test[0], batch_size=32, verbose=0)
            served = np.stack([saved_run(image) for image in test[0]])
            rows["savedmodel"]["accuracy"] = float(np.mean(served.argmax(1) == test[1]))
        for mode in MODES:
            start = time.perf_counter()
            content = convert_image_model(model, mode, size, representative_images=calibration)
            seconds = time.perf_counter() - start
            classifier = LiteClassifier(content, num_threads=args.threads)
            arms[mode] = classifier.predict_one
            rows[mode] = {"bytes": len(content), "convert_seconds": round(seconds, 1)}
            if test is not None:
                report = compare(keras_probs, classifier.predict(test[0]), test[1], mode)
                rows[mode].update(report.to_dict())
        image = calibration[0]
        print(f"[{name}] timing {len(arms)} arms; {_load()}", flush=True)
        for arm, (p50, p99, cpu) in _latencies(arms, image, args.calls, args.rounds,
                                               args.warmup).items():
            rows[arm].update(p50_ms=round(p50, 2), p99_ms=round(p99, 2), cpu_p50_ms=round(cpu, 2))
    _print_table(name, rows)
    return rows


def _print_table(name: str, rows: dict) -> None:
    base = rows["none"]["bytes"]
    print(f"\n{name}")
    print("| model | file | vs float32 | test accuracy | drop vs Keras (points) | "
          "top-1 agreement | p50 ms | p99 ms | CPU p50 ms |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for arm, row in rows.items():
        label = "SavedModel (serving_pixels)" if arm == "savedmodel" else f"LiteRT {arm}"
        accuracy = row.get("tflite_accuracy", row.get("accuracy"))
        cells = [
            label, f"{row['bytes'] / 1e6:.2f} MB",
            "" if arm == "savedmodel" else f"{100 * row['bytes'] / base:.0f}%",
            "" if accuracy is None else f"{accuracy:.4f}",
            f"{row['accuracy_drop_points']:+.2f}" if "accuracy_drop_points" in row else "",
            f"{row['top1_agreement']:.4f}" if "top1_agreement" in row else "",
            f"{row['p50_ms']:.2f}", f"{row['p99_ms']:.2f}", f"{row['cpu_p50_ms']:.2f}",
        ]
        print("| " + " | ".join(cells) + " |")
    if "keras_accuracy" in rows["none"]:
        print(f"Keras test accuracy {rows['none']['keras_accuracy']:.4f} on "
              f"{rows['none']['examples']} images")


def _resize_in_model(model, size, splits, test, args) -> dict:
    """A .tflite that takes photos of any size (resize inside) against app-side resizing."""
    files = splits.files.get("test")
    if not files:
        print("resize-in-model: the run's test split has no files; skipped")
        return {}
    photos = [tf.io.decode_image(Path(f).read_bytes(), channels=3,
                                 expand_animations=False).numpy() for f in files]
    fixed = LiteClassifier(convert_image_model(model, "none", size), num_threads=args.threads)
    start = time.perf_counter()
    content = convert_image_model(model, "none", size, resize_in_model=True)
    seconds = time.perf_counter() - start
    any_size = LiteClassifier(content, num_threads=args.threads)
    probs = np.stack([any_size.predict_one(p) for p in photos])
    accuracy = float(np.mean(probs.argmax(1) == test[1]))
    fixed_accuracy = float(np.mean(fixed.predict(test[0]).argmax(1) == test[1]))
    photo = photos[0]
    first = time.perf_counter()
    any_size.predict_one(photos[1])  # a new size: tensors re-allocated
    first_ms = (time.perf_counter() - first) * 1000
    arms = {"resize in model": any_size.predict_one}
    latency = _latencies(arms, photo, args.calls, args.rounds, args.warmup)
    app_resize = _latencies({"app resize": lambda p: tf.image.resize(p, [size, size],
                                                                     antialias=True)},
                            photo, args.calls, args.rounds, args.warmup)
    fixed_latency = _latencies({"fixed": fixed.predict_one}, test[0][0], args.calls,
                               args.rounds, args.warmup)
    result = {
        "bytes": len(content), "convert_seconds": round(seconds, 1),
        "accuracy_photos_resized_in_model": accuracy, "accuracy_fixed_size": fixed_accuracy,
        "photo_shape": list(photo.shape), "p50_ms": latency["resize in model"][0],
        "p99_ms": latency["resize in model"][1], "cpu_p50_ms": latency["resize in model"][2],
        "first_call_new_size_ms": first_ms, "fixed_p50_ms": fixed_latency["fixed"][0],
        "fixed_cpu_p50_ms": fixed_latency["fixed"][2],
        "app_side_tf_resize_p50_ms": app_resize["app resize"][0],
    }
    print("\nresize inside the model (float32, input [1, any, any, 3])")
    print(json.dumps(result, indent=2))
    return result


def _run_section(args) -> tuple[dict, np.ndarray]:
    from tfxfer.data.sources import load_splits
    from tfxfer.rundir import load_run

    config, model, class_names = load_run(args.run)
    size = image_size_for(config.model)
    splits = load_splits(config.data, size)
    calibration = collect_images(training_examples(splits, config.data.seed), size,
                                 args.representative, source="train split")
    test = decoded_test_split(splits, config)
    image = config.model.section("image")
    name = (f"run {args.run}: {image.backbone} {image.backbone_kwargs} "
            f"{size}px, calibrated on {len(calibration.images)} training images "
            f"({len(calibration.skipped)} skipped)")
    result = {"rows": _compare_model(name, model, class_names, size, calibration.images, test,
                                     args)}
    if args.resize_in_model:
        result["resize_in_model"] = _resize_in_model(model, size, splits, test, args)
    return result, calibration.images


def _mobilenet_v2_section(calibration: np.ndarray | None, args) -> dict:
    config = ModelConfig(image=ImageConfig(backbone="mobilenet_v2", weights=None,
                                           image_size=224))
    model = build_image_classifier(config, 5)
    if calibration is None or calibration.shape[1] != 224:
        rng = np.random.default_rng(0)
        calibration = rng.integers(0, 256, (args.representative, 224, 224, 3), dtype=np.uint8)
    name = "MobileNetV2 224px, weights=None (size and latency only)"
    return _compare_model(name, model, [f"class{i}" for i in range(5)], 224,
                          calibration[: args.representative], None, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="a tfxfer run directory (image model)")
    parser.add_argument("--mobilenet-v2", action="store_true",
                        help="also an untrained MobileNetV2 at 224 px")
    parser.add_argument("--resize-in-model", action="store_true",
                        help="also measure a .tflite with the resize inside (--run)")
    parser.add_argument("--representative", type=int, default=300,
                        help="calibration images (default 300)")
    parser.add_argument("--threads", type=int, default=2, help="LiteRT threads (default 2)")
    parser.add_argument("--calls", type=int, default=40, help="calls per arm per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not args.run and not args.mobilenet_v2:
        parser.error("give --run RUN_DIR and/or --mobilenet-v2")

    figures = {"start": _load()}
    print(f"start: {_load()} (2 shared cores)", flush=True)
    calibration = None
    if args.run:
        figures["run"], calibration = _run_section(args)
    if args.mobilenet_v2:
        figures["mobilenet_v2"] = _mobilenet_v2_section(calibration, args)
    figures["end"] = _load()
    print(f"\nend: {_load()}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
