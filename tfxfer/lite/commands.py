"""The LiteRT parts of `tfxfer export` and `tfxfer predict` (wired in tfxfer.serving.commands).

    tfxfer export RUN_DIR --format tflite [--quantize none|float16|dynamic|int8]
                  [--int8-io uint8|int8] [--out DIR] [--representative-examples N] [--force]
    tfxfer predict --tflite MODEL.tflite [--labels FILE] IMAGE...

TensorFlow is imported inside the run functions only.
"""

from __future__ import annotations

import argparse

from tfxfer.lite.quantization import (
    DEFAULT_QUANTIZATION,
    DEFAULT_REPRESENTATIVE_EXAMPLES,
    INT8_IO_TYPES,
    QUANTIZATIONS,
    list_quantizations,
)

FORMATS = ("savedmodel", "tflite")


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("on-device export (--format tflite)")
    group.add_argument("--format", choices=FORMATS, default="savedmodel",
                       help="savedmodel (TF Serving, default) or tflite (LiteRT, on-device)")
    modes = "; ".join(f"{s.name}: {s.description}" for s in QUANTIZATIONS.values())
    group.add_argument("--quantize", choices=list_quantizations(), default=DEFAULT_QUANTIZATION,
                       help=f"tflite quantization (default {DEFAULT_QUANTIZATION}). {modes}")
    group.add_argument("--int8-io", choices=INT8_IO_TYPES, default="uint8",
                       help="input and output type of an int8 model (default uint8)")
    group.add_argument("--out", help="tflite export directory (default RUN_DIR/tflite-MODE); "
                       "never overwritten")
    group.add_argument("--representative-examples", type=int,
                       default=DEFAULT_REPRESENTATIVE_EXAMPLES, metavar="N",
                       help="training images to calibrate int8 on (default "
                            f"{DEFAULT_REPRESENTATIVE_EXAMPLES})")
    group.add_argument("--resize-in-model", action="store_true",
                       help="keep the model's resize layer: the .tflite takes any image size "
                            "(not with int8)")
    group.add_argument("--force", action="store_true",
                       help="publish a tflite export that fails (or lacks) verification")


def run_export(args: argparse.Namespace) -> int:
    from tfxfer.lite.export import export_run_tflite

    result = export_run_tflite(
        args.run_dir, args.out, quantization=args.quantize, io_type=args.int8_io,
        representative_examples=args.representative_examples, force=args.force,
        resize_in_model=args.resize_in_model,
    )
    report = result.report
    print(f"exported {result.quantization} LiteRT model ({len(report['classes'])} classes) to "
          f"{result.model_path} ({result.size_bytes / 1e6:.2f} MB), labels in "
          f"{result.path / report['labels']}")
    tensor_in, tensor_out = report["input"], report["output"]
    print(f"input {tensor_in['dtype']} {tensor_in['shape']}: {tensor_in['feed']}; "
          f"output {tensor_out['dtype']} {tensor_out['shape']}: {tensor_out['read']}")
    if report["representative"]:
        rep = report["representative"]
        print(f"calibrated on {rep['examples']} images of the {rep['source']} "
              f"({rep['skipped']} skipped)")
    if result.verification is not None:
        status = "passed" if result.verification.passed else "FAILED (published with --force)"
        print(f"verified with LiteRT, {status}: {result.verification.summary()}")
    else:
        print("not verified (no test split; published with --force)")
    return 0


def add_predict_arguments(parser: argparse.ArgumentParser, target) -> None:
    target.add_argument("--tflite", metavar="MODEL.tflite",
                        help="run a LiteRT model locally (labels.txt beside it)")
    parser.add_argument("--labels", metavar="FILE",
                        help="labels of a --tflite model (default labels.txt beside it)")


def predict(args: argparse.Namespace, values: list) -> list[dict]:
    from tfxfer.lite.predict import predict_tflite

    return predict_tflite(args.tflite, values, labels=args.labels)
