"""The `tfxfer` command line: parse -> run(args) -> main.

Each subcommand is an entry of `COMMANDS`: a function that adds its arguments
and a function that runs it. TensorFlow is imported only inside the run
functions, so `tfxfer --help` answers at once.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from tfxfer.adaptation import commands as adaptation_commands
from tfxfer.auto import commands as advise_commands
from tfxfer.config import (
    ADAPTATION_FEATURES,
    AUTO,
    BOTTLENECK_CACHE,
    DISTRIBUTE,
    EXEMPLAR_SELECTIONS,
    KEEP,
    LR_SCHEDULES,
    OPTIMIZERS,
    PHASE2_CACHE,
    POOLINGS,
    STRATEGIES,
    TEXT_POOLINGS,
    RunConfig,
    load_config,
)
from tfxfer.runtime.gc_policy import import_tensorflow, skip_final_collection
from tfxfer.runtime.onednn import enable_onednn_default
from tfxfer.serving import commands as serving_commands
from tfxfer.serving.server import commands as server_commands
from tfxfer.text import commands as text_commands
from tfxfer.unsupervised import commands as unsupervised_commands


def _float_or_auto(text: str) -> float | str:
    if text == AUTO:
        return text
    try:
        return float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from err


def _float_list(text: str) -> list[float]:
    """`0,0.1,1` -> [0.0, 0.1, 1.0]."""
    try:
        return [float(item) for item in text.split(",")]
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, e.g. 0,0.1,0.3,1; got {text!r}") from err


def _key_value(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, yaml.safe_load(value)


def _label_names(text: str) -> dict[str, str]:
    """`0=negative,1=positive` -> {"0": "negative", "1": "positive"}."""
    pairs = [item.partition("=") for item in text.split(",") if item.strip()]
    if not pairs or any(not sep or not k.strip() or not v.strip() for k, sep, v in pairs):
        raise argparse.ArgumentTypeError(
            f"expected LABEL=NAME[,LABEL=NAME...], e.g. 0=negative,1=positive; got {text!r}")
    return {k.strip(): v.strip() for k, _, v in pairs}


# (flag, config section as a dotted path, config key, argparse options)
_TRAIN_FLAGS: list[tuple[str, str, str, dict]] = [
    ("--data", "data", "source", {"help": "class-subfolder image folder, CSV file or tfds:NAME"}),
    ("--test-data", "data", "test_source", {
        "help": "separate test folder or CSV file (then --test-fraction is not carved)"}),
    ("--target-data", "adaptation", "target_source", {
        "help": "domain_adaptation: folder of unlabelled target-domain images"}),
    ("--target-test-data", "adaptation", "target_test_source", {
        "help": "domain_adaptation: labelled target folder, accuracy measured every epoch"}),
    ("--unlabelled-data", "data", "unlabelled_source", {
        "help": "self-training: unlabelled images (folder) or texts (CSV) to pseudo-label"}),
    ("--tfds-data-dir", "data", "tfds_data_dir", {"help": "TFDS data directory"}),
    ("--batch-size", "data", "batch_size", {"type": int}),
    ("--seed", "data", "seed", {"type": int, "help": "split and shuffle seed"}),
    ("--val-fraction", "data", "val_fraction", {"type": float}),
    ("--test-fraction", "data", "test_fraction", {"type": float}),
    ("--cache", "data", "cache", {"help": "memory, none, or a file prefix"}),
    ("--max-train-examples", "data", "max_train_examples", {"type": int}),
    ("--max-test-examples", "data", "max_test_examples", {"type": int}),
    ("--text-column", "data", "text_column", {}),
    ("--label-column", "data", "label_column", {}),
    ("--label-names", "data", "label_names", {
        "type": _label_names, "metavar": "LABEL=NAME,...",
        "help": "readable class names, e.g. 0=negative,1=positive"}),
    ("--backbone", "model.image", "backbone", {"help": "image backbone (see list-backbones)"}),
    ("--encoder", "model.text", "encoder", {
        "help": "text encoder: a name (see list-encoders), TF-Hub handle, SavedModel dir "
                "or word-vector file"}),
    ("--sequence-length", "model.text", "sequence_length", {
        "type": int, "help": "tokens per text of a transformer encoder"}),
    ("--text-pooling", "model.text", "text_pooling", {
        "choices": TEXT_POOLINGS, "help": "sentence pooling of a transformer encoder"}),
    ("--weights", "model.image", "weights", {"help": "imagenet, none, or a weights file"}),
    ("--image-size", "model.image", "image_size", {"type": int}),
    ("--pooling", "model.image", "pooling", {"choices": POOLINGS}),
    ("--feature-layer", "model.image", "feature_layer", {
        "metavar": "NAME|auto", "help": "put the head on this backbone layer (auto: best probe)"}),
    ("--dropout", "model", "dropout", {"type": float}),
    ("--hidden-units", "model", "hidden_units", {"type": int}),
    ("--strategy", "train", "strategy", {
        "choices": (*STRATEGIES, AUTO),
        "help": "auto: measure data size and similarity and choose (see `tfxfer advise`)"}),
    ("--epochs", "train", "epochs", {"type": int, "help": "phase 1 epochs"}),
    ("--fine-tune-epochs", "train", "fine_tune_epochs", {"type": int, "help": "phase 2 epochs"}),
    ("--optimizer", "train", "optimizer", {"choices": OPTIMIZERS}),
    ("--learning-rate", "train", "learning_rate", {
        "type": _float_or_auto, "metavar": "LR|auto", "help": "phase 1; auto: LR finder"}),
    ("--fine-tune-learning-rate", "train", "fine_tune_learning_rate", {"type": float}),
    ("--unfreeze-layers", "train", "unfreeze_layers", {"type": int}),
    ("--unfreeze-from", "train", "unfreeze_from", {"help": "first backbone layer to unfreeze"}),
    ("--unfreeze-fraction", "train", "unfreeze_fraction", {"type": float}),
    ("--layer-lr-decay", "train", "layer_lr_decay", {"type": float}),
    ("--warmup", "train", "warmup_fraction", {
        "type": float, "metavar": "FRACTION",
        "help": "each phase's learning rate rises linearly from 0 over this fraction of its "
                "steps"}),
    ("--lr-schedule", "train", "lr_schedule", {
        "choices": LR_SCHEDULES, "help": "after the warmup: hold the rate, or decay it to 0"}),
    ("--early-stopping", "train", "early_stopping_patience", {"type": int, "metavar": "PATIENCE"}),
    ("--bottleneck-cache", "train", "bottleneck_cache", {
        "choices": BOTTLENECK_CACHE, "help": "train phase 1 on cached backbone features"}),
    ("--augmented-copies", "train", "augmented_copies", {"type": int}),
    ("--phase2-cache", "train", "phase2_cache", {
        "choices": PHASE2_CACHE,
        "help": "train phase 2 on cached activations of the frozen bottom of the backbone"}),
    ("--distribute", "train", "distribute", {
        "choices": DISTRIBUTE, "help": "auto: multi_worker when TF_CONFIG names several workers"}),
    ("--cache-dir", "data", "cache_dir", {"help": "feature cache directory"}),
    ("--verbose", "train", "verbose", {"type": int}),
    ("--self-training-rounds", "train", "self_training_rounds", {
        "type": int, "help": "self-training: student rounds after the teacher"}),
    ("--self-training-precision", "train", "self_training_precision", {
        "type": float, "help": "self-training: validation precision the threshold needs"}),
    ("--domain-hidden-units", "adaptation", "domain_hidden_units", {"type": int}),
    ("--adaptation-features", "adaptation", "features", {
        "choices": (*ADAPTATION_FEATURES, AUTO),
        "help": "what the domain classifier reads: the pooled backbone features, the "
                "head's hidden layer, or auto: reverse validation picks it (with "
                "--adaptation-lambda when that is auto too)"}),
    ("--adaptation-lambda", "adaptation", "lambda_max", {
        "type": _float_or_auto, "metavar": "LAMBDA|auto",
        "help": "ceiling of the gradient-reversal schedule; auto: reverse validation picks "
                "it among --adaptation-lambdas without target labels"}),
    ("--adaptation-lambdas", "adaptation", "lambda_grid", {
        "type": _float_list, "metavar": "L1,L2,...",
        "help": "candidates of --adaptation-lambda auto (default 0,0.1,0.3,1)"}),
    ("--reverse-validation-fraction", "adaptation",
     "reverse_validation_fraction", {
        "type": float, "help": "share of the run's steps each reverse-validation run trains"}),
    # --- continual learning (tfxfer.continual, docs/continual.md) ---
    ("--from", "continual", "parent", {
        "metavar": "RUN_DIR", "help": "continue a finished run: its head grows to the union "
                                      "of its classes and --data's (LwF, rehearsal)"}),
    ("--keep", "continual", "keep", {
        "choices": KEEP, "help": "old: keep the parent's classes; none: new classes only"}),
    ("--rehearsal", "continual", "rehearsal", {
        "type": int, "metavar": "N", "help": "train on N of the parent's exemplars per class too"}),
    ("--lwf-weight", "continual", "lwf_weight", {
        "type": float, "metavar": "W", "help": "weight of the LwF distillation (0: off)"}),
    ("--temperature", "continual", "temperature", {
        "type": float, "help": "temperature of the LwF distillation (default 2)"}),
    ("--exemplars", "continual", "exemplars", {
        "type": int, "metavar": "N", "help": "keep N examples per class for later rehearsal"}),
    ("--exemplar-selection", "continual", "exemplar_selection", {
        "choices": EXEMPLAR_SELECTIONS, "help": "herding (pooled features) or random"}),
]

_TRAIN_SWITCHES: list[tuple[str, str, str, bool]] = [
    ("--no-augment", "model.image", "augment", False),
    ("--no-audio-augment", "model.audio", "augment", False),
    ("--fine-tune-batchnorm", "train", "fine_tune_batchnorm", True),
    ("--restore-best", "train", "restore_best", True),
    ("--mixed-precision", "train", "mixed_precision", True),
    ("--jit-compile", "train", "jit_compile", True),
    ("--no-tensorboard", "train", "tensorboard", False),
    ("--deterministic", "train", "deterministic", True),
    ("--no-balance-rehearsal", "continual", "balance_rehearsal", False),
]


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML or JSON config file (flags override it)")
    parser.add_argument("--out", help="run directory (default runs/<timestamp>)")
    parser.add_argument(
        "--resume", metavar="RUN_DIR",
        help="continue a killed run from its last completed epoch (alone, or with the "
             "run's original flags)",
    )
    parser.add_argument(
        "--backbone-arg", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
        help="backbone constructor argument, e.g. alpha=0.25 (repeatable)",
    )
    for flag, _, _, options in _TRAIN_FLAGS:
        parser.add_argument(flag, dest=_dest(flag), **options)
    for flag, _, _, _ in _TRAIN_SWITCHES:
        parser.add_argument(flag, dest=_dest(flag), action="store_true")


def train_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config overrides given on the command line, as a nested dict.

    Example: `--backbone mobilenet --epochs 2` gives
    {"model": {"image": {"backbone": "mobilenet"}}, "train": {"epochs": 2}}.
    """
    overrides: dict[str, Any] = {}
    given = [(section, key, getattr(args, _dest(flag)))
             for flag, section, key, _ in _TRAIN_FLAGS]
    given += [(section, key, value if getattr(args, _dest(flag)) else None)
              for flag, section, key, value in _TRAIN_SWITCHES]
    if args.backbone_arg:
        given.append(("model.image", "backbone_kwargs", dict(args.backbone_arg)))
    for path, key, value in given:
        if value is not None:
            _section(overrides, path)[key] = value
    if args.out:
        overrides["out"] = args.out
    return overrides


def _section(tree: dict[str, Any], path: str) -> dict[str, Any]:
    for name in path.split("."):
        tree = tree.setdefault(name, {})
    return tree


def parse_train_config(
    argv: Sequence[str] | None = None,
    *,
    config_file: str | os.PathLike | None = None,
    description: str | None = None,
) -> RunConfig:
    """Reads `tfxfer train` flags from a command line into a validated RunConfig.

    For scripts such as the apps: they take every flag `tfxfer train` takes, over
    their own config file. Logging, oneDNN and the import of TensorFlow (with the
    collector paused) are set up as `tfxfer` sets them up (call it before anything
    imports TensorFlow).

    Args:
        argv: the arguments (default: sys.argv[1:], except inside a Jupyter/IPython
            kernel, whose command line (`-f kernel.json`) is not ours: there, none).
        config_file: the config file used when `--config` is not given.
        description: the `--help` text.

    Returns:
        The config: dataclass defaults < config file < flags.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    add_train_arguments(parser)
    if argv is None and in_kernel():
        argv = []
    args = parser.parse_args(argv)
    start_process(args.log_level)
    return load_config(args.config or config_file, train_overrides(args))


def in_kernel() -> bool:
    """Whether this process is a Jupyter/IPython kernel (its sys.argv is the kernel's)."""
    return "ipykernel" in sys.modules or "ipykernel" in Path(sys.argv[0] if sys.argv else "").name


def start_process(log_level: str, tensorflow: bool = True) -> None:
    """What an entry point does before its work: logging, oneDNN's default (before
    TensorFlow is imported), no final collection at exit and, when the work needs it,
    TensorFlow imported with the collector paused (`tfxfer.runtime.gc_policy`)."""
    setup_logging(log_level)
    enable_onednn_default()
    skip_final_collection()
    if tensorflow:
        import_tensorflow()


def setup_logging(level: str = "INFO") -> None:
    """Quiet TensorFlow's C++ log and log tfxfer's progress to stderr."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def run_train(args: argparse.Namespace) -> int:
    from tfxfer.experiment import train
    from tfxfer.training.resume import RunFinishedError

    config = load_config(args.config, train_overrides(args))
    if config.data.unlabelled_source:
        from tfxfer.unsupervised.self_training import self_train

        print(json.dumps(self_train(config).as_dict(), indent=2))
        return 0
    try:
        result = train(config, resume=args.resume)
    except RunFinishedError as err:
        print(err)
        return 0
    print(f"run directory: {result.run_dir}")
    if result.evaluation is not None:
        print(result.evaluation.table())
    return 0


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a run directory written by `tfxfer train`")


def run_evaluate(args: argparse.Namespace) -> int:
    from tfxfer.experiment import evaluate_run

    print(evaluate_run(args.run_dir).table())
    return 0


def run_report(args: argparse.Namespace) -> int:
    from tfxfer.reports import write_report

    print(f"report: {write_report(args.run_dir)}")
    return 0


def add_launch_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--restarts", type=int, default=0,
                        help="restart a failed job this many times, resuming its run")
    parser.add_argument("--timeout", type=float, help="seconds the whole job may take")
    parser.add_argument("command", nargs=argparse.REMAINDER,
                        help="-- then the tfxfer command every worker runs, e.g. -- train ...")


def run_launch(args: argparse.Namespace) -> int:
    from tfxfer.runtime.launch import launch

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    return launch(command, args.workers, restarts=args.restarts, timeout=args.timeout)


def run_list_backbones(args: argparse.Namespace) -> int:
    from tfxfer.image.backbones import list_backbones

    print(f"{'name':<20} {'size':>5} {'width':>6}  description")
    for spec in list_backbones():
        print(f"{spec.name:<20} {spec.input_size:>5} {spec.feature_width:>6}  {spec.description}")
    return 0


def _with_train_flags(add: Callable[[argparse.ArgumentParser], None]):
    """`add` plus every `tfxfer train` flag (for commands that read a run's config)."""
    def both(parser: argparse.ArgumentParser) -> None:
        add_train_arguments(parser)
        add(parser)
    return both


def _with_train_overrides(run: Callable[[argparse.Namespace, dict], int]):
    """`run` called with the config overrides of the `tfxfer train` flags."""
    def call(args: argparse.Namespace) -> int:
        return run(args, train_overrides(args))
    return call


Command = tuple[str, str, Callable[[argparse.ArgumentParser], None] | None,
                Callable[[argparse.Namespace], int]]

COMMANDS: list[Command] = [
    ("train", "train a classifier (two-phase transfer learning)", add_train_arguments, run_train),
    ("evaluate", "evaluate a finished run on its test split", add_evaluate_arguments,
     run_evaluate),
    ("report", "regenerate report.html and the plots of a finished run", add_evaluate_arguments,
     run_report),
    ("launch", "run a command as a multi-worker job of local processes (TF_CONFIG each)",
     add_launch_arguments, run_launch),
    ("list-backbones", "list the registered image backbones", None, run_list_backbones),
    ("list-encoders", "list the registered text encoders", None, text_commands.run_list_encoders),
    ("build-encoder", "build a TF-Hub-format text encoder from word vectors (offline)",
     text_commands.add_build_encoder_arguments, text_commands.run_build_encoder),
    ("build-mnist-m", "write MNIST and MNIST-M (digits blended with photo crops) as folders",
     adaptation_commands.add_build_mnist_m_arguments, adaptation_commands.run_build_mnist_m),
    ("export", "export a run as a SavedModel for TensorFlow Serving (BASE/NAME/VERSION), "
     "or as a LiteRT (.tflite) model for devices (--format tflite)",
     serving_commands.add_export_arguments, serving_commands.run_export),
    ("predict", "predict with an export: locally, or on TF Serving over REST or gRPC",
     serving_commands.add_predict_arguments, serving_commands.run_predict),
    ("serving-config", "write models.config for every model under a base directory",
     serving_commands.add_serving_config_arguments, serving_commands.run_serving_config),
    ("serve", "serve every model under a base directory with TF Serving's REST and gRPC APIs",
     server_commands.add_serve_arguments, server_commands.run_serve),
    # --- the strategy advisor and the LR finder (tfxfer.auto.commands) ---
    ("advise", "measure data size x similarity and print the strategy (no training)",
     _with_train_flags(advise_commands.add_advise_arguments),
     _with_train_overrides(advise_commands.run_advise)),
    ("lr-find", "sweep the phase-1 learning rate and plot loss against it (no training)",
     _with_train_flags(advise_commands.add_lr_find_arguments),
     _with_train_overrides(advise_commands.run_lr_find)),
    # --- unlabelled data (tfxfer.unsupervised.commands) ---
    ("embed", "pooled pretrained features of an image folder or text CSV (.npy or Parquet)",
     unsupervised_commands.add_embed_arguments, unsupervised_commands.run_embed),
    ("cluster", "k-means on pretrained features: clusters.csv, a 2-D map, an HTML report",
     unsupervised_commands.add_cluster_arguments, unsupervised_commands.run_cluster),
]


# Commands that may run without TensorFlow (a REST client, writing a config file); the
# others import it at start, with the collector paused (`gc_policy.import_tensorflow`).
WITHOUT_TENSORFLOW = frozenset({"predict", "serving-config"})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tfxfer", description="Transfer learning with Keras 3 and TensorFlow."
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text, add_arguments, run in COMMANDS:
        command = sub.add_parser(name, help=help_text, description=help_text)
        if add_arguments is not None:
            add_arguments(command)
        command.set_defaults(run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    start_process(args.log_level, tensorflow=args.command not in WITHOUT_TENSORFLOW)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        logging.getLogger("tfxfer").debug("Traceback", exc_info=True)
        logging.getLogger("tfxfer").error("%s", err)
        return 2


if __name__ == "__main__":
    sys.exit(main())
