"""The `tfxfer export`, `tfxfer predict` and `tfxfer serving-config` commands.

Each is an (add_arguments, run) pair listed in `tfxfer.cli.COMMANDS`. TensorFlow
is imported inside the run functions only, so `tfxfer --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from tfxfer.lite import commands as lite_commands
from tfxfer.serving.contract import DEFAULT_SIGNATURE, list_versions
from tfxfer.serving.policy import VersionPolicy, add_policy_arguments, positive_int

logger = logging.getLogger("tfxfer")


# ---------------------------------------------------------------- export


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a run directory written by `tfxfer train`")
    parser.add_argument("--name", help="model name: BASE/NAME/VERSION (required for "
                        "savedmodel)")
    parser.add_argument("--base", default="saved_models",
                        help="base directory of exported models (default saved_models)")
    parser.add_argument("--version", type=positive_int,
                        help="version number (default: the next free one; never overwritten)")
    parser.add_argument("--top-k", type=positive_int, help="classes in the top-k outputs "
                        "(default min(5, classes))")
    parser.add_argument("--max-pixels", type=positive_int, default=None,
                        help="images whose header declares more pixels are refused before "
                             "decoding (default 50,000,000)")
    parser.add_argument("--max-audio-seconds", type=float, default=None,
                        help="audio models: WAV inputs of more seconds are refused "
                             "(default 60)")
    parser.add_argument("--sample", action="append", default=[], metavar="FILE",
                        help="example input for warmup and verification (repeatable; default: "
                             "the run's own images or WAV files, or a few sentences for text)")
    parser.add_argument("--no-warmup", action="store_true",
                        help="do not write assets.extra/tf_serving_warmup_requests")
    parser.add_argument("--verify", action="store_true",
                        help="check the export in a fresh TensorFlow-only process against the "
                             "Keras model, and with saved_model_cli, before publishing it")
    lite_commands.add_export_arguments(parser)


def run_export(args: argparse.Namespace) -> int:
    from tfxfer.serving.export import export_run

    if args.format == "tflite":
        return lite_commands.run_export(args)
    if not args.name:
        raise ValueError("A SavedModel export needs --name NAME (BASE/NAME/VERSION).")
    result = export_run(
        args.run_dir, args.base, args.name, version=args.version, top_k=args.top_k,
        sample_files=args.sample, warmup=not args.no_warmup, verify=args.verify,
        **({"max_pixels": args.max_pixels} if args.max_pixels else {}),
        **({"max_audio_seconds": args.max_audio_seconds} if args.max_audio_seconds else {}),
    )
    print(f"exported {result.modality} model ({len(result.class_names)} classes) to "
          f"{result.path}")
    print(f"signatures: {', '.join(result.signatures)}")
    print(f"variables: {result.variables_bytes / 1e6:.2f} MB for "
          f"{result.weights_bytes / 1e6:.2f} MB of weights; "
          f"warmup records: {result.warmup_records}")
    report = result.verification
    if report is not None:
        print(f"verified in a TensorFlow-only process: {report.examples} inputs, "
              f"max |probability difference| {report.max_abs_diff:.3g}; saved_model_cli "
              f"lists {', '.join(report.cli_signatures)}")
    return 0


# ---------------------------------------------------------------- predict


def add_predict_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="*", metavar="FILE",
                        help="inputs sent as bytes (images, WAV files; for text models, "
                             "text files)")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--saved-model", metavar="DIR",
                        help="run a SavedModel locally (a version dir, or BASE/NAME for the "
                             "latest version)")
    target.add_argument("--rest", metavar="URL", help="TF Serving REST API, e.g. "
                        "http://localhost:8501")
    target.add_argument("--grpc", metavar="HOST:PORT", help="TF Serving gRPC API, e.g. "
                        "localhost:8500")
    lite_commands.add_predict_arguments(parser, target)
    parser.add_argument("--model", help="model name on the server (--rest/--grpc)")
    parser.add_argument("--version", type=positive_int, help="model version on the server "
                        "(default: the latest)")
    parser.add_argument("--signature", default=DEFAULT_SIGNATURE)
    parser.add_argument("--text", action="append", default=[],
                        help="a text input, sent as a string (repeatable)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _read_inputs(args: argparse.Namespace) -> tuple[list[str], list[bytes | str]]:
    names, values = [], []
    for path in args.files:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Input file not found: {path}")
        names.append(str(path))
        values.append(path.read_bytes())
    for text in args.text:
        names.append(text if len(text) <= 40 else text[:37] + "...")
        values.append(text)
    if not values:
        raise ValueError("Nothing to predict: give input FILEs and/or --text.")
    return names, values


def _local_version_dir(path: str) -> Path:
    path = Path(path)
    if (path / "saved_model.pb").is_file():
        return path
    versions = list_versions(path)
    if not versions:
        raise FileNotFoundError(f"{path} is neither a SavedModel nor a model directory "
                                "with version subdirectories.")
    return path / str(versions[-1])


def run_predict(args: argparse.Namespace) -> int:
    from tfxfer.serving import client

    names, values = _read_inputs(args)
    if (args.rest or args.grpc) and not args.model:
        raise ValueError("--rest and --grpc need --model NAME.")
    try:
        if args.tflite:
            rows = lite_commands.predict(args, values)
        elif args.saved_model:
            rows = client.predict_local(_local_version_dir(args.saved_model), values,
                                        signature_name=args.signature)
        elif args.rest:
            rows = client.predict_rest(args.rest, args.model, values, version=args.version,
                                       signature_name=args.signature, timeout=args.timeout)
        else:
            rows = client.predict_grpc(args.grpc, args.model, values, version=args.version,
                                       signature_name=args.signature, timeout=args.timeout)
    except client.PredictError as err:
        logger.error("%s", err)
        return 1
    records = client.summarize(names, rows)
    if args.json:
        print(json.dumps(records, indent=2))
    else:
        print(client.format_table(records))
    return 0


# ---------------------------------------------------------------- serving-config


def add_serving_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("base", help="base directory of exported models (e.g. saved_models)")
    parser.add_argument("--out", help="file to write (default BASE/models.config)")
    add_policy_arguments(parser)
    parser.add_argument("--mount-path", help="where the server sees BASE, e.g. /models in "
                        "the tensorflow/serving container (default: absolute local paths)")


def run_serving_config(args: argparse.Namespace) -> int:
    from tfxfer.serving.model_config import to_text, write_model_config

    path, config = write_model_config(args.base, args.out, policy=VersionPolicy.from_args(args),
                                      mount_path=args.mount_path)
    print(f"wrote {path} ({len(config.model_config_list.config)} models)")
    print(to_text(config), end="")
    return 0
