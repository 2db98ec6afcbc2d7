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
from tfxfer.serving.contract import DEFAULT_SIGNATURE
from tfxfer.serving.policy import VersionPolicy, add_policy_arguments, positive_int

logger = logging.getLogger("tfxfer")


# ---------------------------------------------------------------- export


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a run directory written by `tfxfer train`")
    parser.add_argument("--name", help="model name: BASE/NAME/VERSION (required for "
                        "savedmodel)")
    parser.add_argument("--base", default="saved_models",
                        help="base directory of exported models (default saved_models)")
    parser.add_argument("--model-version", "--version", dest="version", type=positive_int,
                        metavar="N",
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
    from tfxfer.tasks.outputs import read_outputs

    task_run = read_outputs(args.run_dir) is not None
    if args.format == "tflite":
        if task_run:
            raise ValueError(f"{args.run_dir} is a task run (regression, multilabel or several "
                             "outputs): LiteRT export converts single-label classifiers only; "
                             "export it as a SavedModel (--format savedmodel).")
        return lite_commands.run_export(args)
    if not args.name:
        raise ValueError("A SavedModel export needs --name NAME (BASE/NAME/VERSION).")
    if task_run:
        return _run_task_export(args)
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


def _run_task_export(args: argparse.Namespace) -> int:
    """`tfxfer export` of a task run (`tfxfer.tasks.export`): always checked by reloading."""
    from tfxfer.serving.export.samples import read_samples
    from tfxfer.tasks.export import export_task_run, load_task_run

    samples = ()
    if args.sample:
        from tfxfer.serving.export.introspect import export_modality

        samples = read_samples(args.sample, export_modality(load_task_run(args.run_dir)[1]))
    result = export_task_run(args.run_dir, args.base, args.name, version=args.version,
                             samples=samples,
                             **({"max_pixels": args.max_pixels} if args.max_pixels else {}),
                             **({"max_audio_seconds": args.max_audio_seconds}
                                if args.max_audio_seconds else {}))
    tasks = ", ".join(f"{o.name}: {o.task}" for o in result.outputs)
    print(f"exported {result.modality} task model ({tasks}) to {result.path}")
    print(f"signatures: {', '.join(result.signatures)}; outputs: {', '.join(result.output_keys)}")
    print("verified: the reloaded export answers the samples as the Keras model does")
    return 0


# ---------------------------------------------------------------- predict


def add_predict_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "files", nargs="*", metavar="MODEL INPUT",
        help="a run directory or an export (SavedModel dir, or BASE/NAME for its latest "
             "version), then the inputs: images, WAV files, .txt files (one text per line) "
             "or folders of them (recursive). With --saved-model/--rest/--grpc/--tflite: "
             "inputs only")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--saved-model", metavar="DIR",
                        help="run a SavedModel locally (a version dir, or BASE/NAME for the "
                             "latest version)")
    target.add_argument("--rest", metavar="URL", help="TF Serving REST API, e.g. "
                        "http://localhost:8501")
    target.add_argument("--grpc", metavar="HOST:PORT", help="TF Serving gRPC API, e.g. "
                        "localhost:8500")
    lite_commands.add_predict_arguments(parser, target)
    parser.add_argument("--model", help="model name on the server (--rest/--grpc)")
    parser.add_argument("--model-version", "--version", dest="version", type=positive_int,
                        metavar="N", help="model version on the server (default: the latest)")
    parser.add_argument("--signature", default=DEFAULT_SIGNATURE,
                        help=f"signature of --rest/--grpc (default {DEFAULT_SIGNATURE})")
    parser.add_argument("--text", action="append", default=[],
                        help="a text input, sent as a string (repeatable)")
    parser.add_argument("--csv", metavar="FILE",
                        help="write path,label,probability (and the top-k) as CSV to FILE "
                             "('-': stdout) instead of printing a table")
    parser.add_argument("--top-k", type=positive_int, metavar="N",
                        help="classes per input in the output (default: 1 in the CSV, the "
                             "model's top-k in the table)")
    parser.add_argument("--batch-size", type=positive_int, default=32, metavar="N",
                        help="inputs per model call (default 32)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _model_and_paths(args: argparse.Namespace) -> tuple[str | None, list[str]]:
    """The local model given as the first positional (no --saved-model etc.) and the inputs."""
    if args.saved_model or args.rest or args.grpc or args.tflite:
        return None, list(args.files)
    if not args.files:
        raise ValueError("tfxfer predict needs a MODEL (a run directory or an export) and "
                         "inputs, e.g. tfxfer predict runs/flowers photos/")
    return args.files[0], list(args.files[1:])


def check_predict(args: argparse.Namespace) -> None:
    """The model and inputs exist (before TensorFlow is imported; see tfxfer.cli.PREFLIGHT)."""
    from tfxfer.serving import predict_files

    model, paths = _model_and_paths(args)
    if model is not None:
        predict_files.check_model_path(model)
    if args.saved_model:
        predict_files.saved_model_dir(args.saved_model)
    if args.tflite and not Path(args.tflite).is_file():
        raise FileNotFoundError(f"--tflite: model file not found: {args.tflite}")
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        raise FileNotFoundError(f"Input not found: {', '.join(missing)}")
    if (args.rest or args.grpc) and not args.model:
        raise ValueError("--rest and --grpc need --model NAME.")


def _predictor(args: argparse.Namespace, model: str | None):
    """(predict function, the exceptions that mean one input is unreadable)."""
    from tfxfer.serving import client, predict_files

    if args.rest:
        return (lambda values: client.predict_rest(
            args.rest, args.model, values, version=args.version,
            signature_name=args.signature, timeout=args.timeout)), ()
    if args.grpc:
        return (lambda values: client.predict_grpc(
            args.grpc, args.model, values, version=args.version,
            signature_name=args.signature, timeout=args.timeout)), ()
    from tfxfer.runtime.gc_policy import import_tensorflow

    import_tensorflow()  # with the collector paused and the C++ import log filtered
    if args.tflite:
        from tfxfer.lite.predict import LitePredictError

        return (lambda values: lite_commands.predict(args, values)), (LitePredictError,)
    return (predict_files.load_predictor(model or args.saved_model, args.top_k),
            (predict_files.InputError,))


def run_predict(args: argparse.Namespace) -> int:
    from tfxfer.serving import client, predict_files

    check_predict(args)
    model, paths = _model_and_paths(args)
    inputs = predict_files.collect_inputs(paths, args.text)
    predict, errors = _predictor(args, model)
    try:
        result = predict_files.predict_inputs(predict, inputs, batch_size=args.batch_size,
                                              errors=errors)
    except client.PredictError as err:
        logger.error("%s", err)
        return 1
    records = result.records
    if args.top_k:
        records = predict_files.truncate_top_k(records, args.top_k)
    if args.csv:
        text = predict_files.to_csv(records, args.top_k or 1)
        if args.csv == "-":
            print(text, end="")
        else:
            Path(args.csv).write_text(text)
            print(f"wrote {len(records)} predictions to {args.csv}")
    elif args.json:
        print(json.dumps(records, indent=2))
    elif records:
        print(client.format_table(records))
    if result.skipped:
        logger.warning("%d of %d inputs skipped (named above)", len(result.skipped),
                       len(inputs))
    return 0 if records else 1


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
