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
from typing import Any, NoReturn

import yaml

from tfxfer.adaptation import commands as adaptation_commands
from tfxfer.auto import commands as advise_commands
from tfxfer.config import (
    ADAPTATION_FEATURES,
    AUTO,
    BOTTLENECK_CACHE,
    DISTRIBUTE,
    DISTRIBUTION_ANSWERS,
    EXEMPLAR_SELECTIONS,
    KEEP,
    LR_SCHEDULES,
    OPTIMIZERS,
    PHASE2_CACHE,
    POOLINGS,
    REGRESSION_LOSSES,
    STRATEGIES,
    TEXT_POOLINGS,
    RunConfig,
    load_config,
)
from tfxfer.reports import runs as runs_commands
from tfxfer.runtime import doctor as doctor_commands
from tfxfer.runtime.gc_policy import import_tensorflow, skip_final_collection
from tfxfer.runtime.onednn import enable_onednn_default
from tfxfer.serving import commands as serving_commands
from tfxfer.serving.server import commands as server_commands
from tfxfer.text import commands as text_commands
from tfxfer.unsupervised import commands as unsupervised_commands
from tfxfer.utils.progress import set_progress


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


def _loss_weights(text: str) -> dict[str, float]:
    """`rating=0.5,label=1` -> {"rating": 0.5, "label": 1.0}."""
    pairs = _label_names(text)
    try:
        return {k: float(v) for k, v in pairs.items()}
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"expected COLUMN=WEIGHT[,COLUMN=WEIGHT...] with numbers, got {text!r}") from err


def _choice(text: str) -> str:
    """A choice as typed: "fine-tune" and "fine_tune" both name `fine_tune`."""
    return text.replace("-", "_")


class Parser(argparse.ArgumentParser):
    """An ArgumentParser with whole flag names only and errors in one line.

    `--epoch 3` is an error rather than `--epochs 3`; `--epochs ten` prints
    `tfxfer train: error: argument --epochs: invalid int value: 'ten'` and a hint,
    not the whole usage.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n"
                     f"Run '{self.prog} --help' for the options.\n")


# --- The `tfxfer train` flags: one row per config field ---
# (flag, config section as a dotted path, config key, argparse options). The help gets the
# config key and its default appended, read from the dataclasses (`_with_default`); the row's
# argument group follows from its section and key (`group_of`).
_TRAIN_FLAGS: list[tuple[str, str, str, dict]] = [
    ("--data", "data", "source", {
        "metavar": "FOLDER|CSV|tfds:NAME",
        "help": "a folder of class subfolders (images), a CSV/TSV file (text) or tfds:NAME"}),
    ("--test-data", "data", "test_source", {
        "metavar": "FOLDER|CSV",
        "help": "separate test folder or CSV file (then --test-fraction is not carved)"}),
    ("--target-data", "adaptation", "target_source", {
        "metavar": "FOLDER",
        "help": "domain_adaptation: folder of unlabelled target-domain images"}),
    ("--target-test-data", "adaptation", "target_test_source", {
        "metavar": "FOLDER",
        "help": "domain_adaptation: labelled target folder, accuracy measured every epoch"}),
    ("--unlabelled-data", "data", "unlabelled_source", {
        "metavar": "FOLDER|CSV",
        "help": "self-training: unlabelled images (folder) or texts (CSV) to pseudo-label"}),
    ("--tfds-data-dir", "data", "tfds_data_dir", {
        "metavar": "DIR", "help": "where TFDS keeps its data (none: ~/tensorflow_datasets)"}),
    ("--batch-size", "data", "batch_size", {"type": int, "help": "examples per batch"}),
    ("--seed", "data", "seed", {"type": int, "help": "split and shuffle seed"}),
    ("--val-fraction", "data", "val_fraction", {
        "type": float, "help": "share of every class held out for validation"}),
    ("--test-fraction", "data", "test_fraction", {
        "type": float, "help": "share of every class held out for the test"}),
    ("--cache", "data", "cache", {
        "metavar": "auto|memory|none|PREFIX",
        "help": "cache decoded examples in memory, not at all, or in files at PREFIX"}),
    ("--max-train-examples", "data", "max_train_examples", {
        "type": int, "metavar": "N", "help": "keep at most N training examples (stratified)"}),
    ("--max-test-examples", "data", "max_test_examples", {
        "type": int, "metavar": "N", "help": "keep at most N test examples (stratified)"}),
    ("--text-column", "data", "text_column", {"help": "CSV column holding the text"}),
    ("--label-column", "data", "label_column", {"help": "CSV column holding the label"}),
    # --- task outputs of CSV/TSV tables (tfxfer.tasks, docs/tasks.md) ---
    ("--target", "data", "target", {
        "metavar": "COLUMN[:TASK],...",
        "help": "target column(s) of a CSV/TSV table, e.g. rating or label,rating:regression "
                "(task: classification, multilabel or regression; inferred when omitted)"}),
    ("--loss-weights", "data", "loss_weights", {
        "type": _loss_weights, "metavar": "COLUMN=WEIGHT,...",
        "help": "per-output loss weights of --target, e.g. rating=0.5"}),
    ("--tag-delimiter", "data", "tag_delimiter", {
        "help": "separator of the tags of a multilabel column"}),
    ("--image-column", "data", "image_column", {
        "help": "the column of image paths (relative to the CSV) of an image table"}),
    ("--audio-column", "data", "audio_column", {
        "help": "the column of WAV file paths (relative to the CSV) of an audio table"}),
    # ---
    ("--label-names", "data", "label_names", {
        "type": _label_names, "metavar": "LABEL=NAME,...",
        "help": "readable class names, e.g. 0=negative,1=positive"}),
    ("--backbone", "model.image", "backbone", {
        "help": "image backbone (see `tfxfer list-backbones`)"}),
    ("--encoder", "model.text", "encoder", {
        "help": "text encoder: a name (see list-encoders), TF-Hub handle, SavedModel dir, "
                "word-vector file or keras-hub preset"}),
    ("--sequence-length", "model.text", "sequence_length", {
        "type": int, "help": "tokens per text of a transformer encoder"}),
    ("--ngram-buckets", "model.text", "ngram_buckets", {
        "type": int, "metavar": "N",
        "help": "a bag of hashed word n-grams learned beside a word-vector encoder, in N "
                "rows (0: none)"}),
    ("--text-pooling", "model.text", "text_pooling", {
        "choices": TEXT_POOLINGS,
        "help": "sentence pooling of a transformer encoder (none: the checkpoint's own)"}),
    ("--weights", "model.image", "weights", {
        "metavar": "imagenet|none|FILE", "help": "backbone weights"}),
    ("--image-size", "model.image", "image_size", {
        "type": int, "metavar": "PIXELS",
        "help": "square input side (none: the backbone's default)"}),
    ("--pooling", "model.image", "pooling", {
        "choices": POOLINGS, "help": "global pooling of the backbone's feature map"}),
    ("--feature-layer", "model.image", "feature_layer", {
        "metavar": "NAME|auto",
        "help": "put the head on this backbone layer (auto: best probe; none: the top)"}),
    ("--dropout", "model", "dropout", {"type": float, "help": "dropout before the classifier"}),
    ("--hidden-units", "model", "hidden_units", {
        "type": int, "help": "units of a hidden Dense layer in the head (0: none)"}),
    ("--strategy", "train", "strategy", {
        "choices": (*STRATEGIES, AUTO),
        "help": "how much of the backbone trains; auto: measure data size and similarity "
                "and choose (see `tfxfer advise`)"}),
    ("--epochs", "train", "epochs", {
        "type": int, "help": "phase 1 epochs (head on the frozen backbone)"}),
    ("--fine-tune-epochs", "train", "fine_tune_epochs", {
        "type": int, "help": "phase 2 epochs (top of the backbone unfrozen)"}),
    ("--optimizer", "train", "optimizer", {"choices": OPTIMIZERS, "help": "optimizer"}),
    ("--regression-loss", "train", "regression_loss", {
        "choices": REGRESSION_LOSSES,
        "help": "loss of regression outputs of a task model (distribution: a softmax over the "
                "target's distinct values)"}),
    ("--distribution-answer", "train", "distribution_answer", {
        "choices": DISTRIBUTION_ANSWERS,
        "help": "a distribution head's answer: median (lowest MAE) or mean (ranks better)"}),
    ("--monitor", "train", "monitor", {
        "metavar": "LOG",
        "help": "the epoch log --restore-best and --early-stopping minimise (e.g. "
                "val_rating_loss: one output of a multi-task run)"}),
    ("--learning-rate", "train", "learning_rate", {
        "type": _float_or_auto, "metavar": "LR|auto",
        "help": "phase 1 learning rate; auto: the LR finder sweeps it"}),
    ("--fine-tune-learning-rate", "train", "fine_tune_learning_rate", {
        "type": float, "metavar": "LR",
        "help": "phase 2 learning rate, at least 10x lower (none: --learning-rate / 10)"}),
    ("--unfreeze-layers", "train", "unfreeze_layers", {
        "type": int, "metavar": "N", "help": "phase 2 unfreezes the top N backbone layers"}),
    ("--unfreeze-from", "train", "unfreeze_from", {
        "metavar": "LAYER", "help": "phase 2 unfreezes from this backbone layer up"}),
    ("--unfreeze-fraction", "train", "unfreeze_fraction", {
        "type": float, "help": "phase 2 unfreezes this top share of the backbone's layers "
                               "(none of the three set: 0.3)"}),
    ("--layer-lr-decay", "train", "layer_lr_decay", {
        "type": float, "metavar": "DECAY",
        "help": "phase 2 rate of a layer x DECAY**depth, depth in blocks from the top"}),
    ("--layer-lr-block", "train", "layer_lr_block", {
        "type": int, "metavar": "LAYERS", "help": "layers per block of --layer-lr-decay"}),
    ("--warmup", "train", "warmup_fraction", {
        "type": float, "metavar": "FRACTION",
        "help": "each phase's learning rate rises linearly from 0 over this fraction of its "
                "steps"}),
    ("--lr-schedule", "train", "lr_schedule", {
        "choices": LR_SCHEDULES, "help": "after the warmup: hold the rate, or decay it to 0"}),
    ("--early-stopping", "train", "early_stopping_patience", {
        "type": int, "metavar": "PATIENCE",
        "help": "stop a phase after PATIENCE epochs without a better val_loss"}),
    ("--bottleneck-cache", "train", "bottleneck_cache", {
        "choices": BOTTLENECK_CACHE, "help": "train phase 1 on cached backbone features"}),
    ("--augmented-copies", "train", "augmented_copies", {
        "type": int, "metavar": "N",
        "help": "with augmentation: cache N augmented copies of each example for phase 1"}),
    ("--phase2-cache", "train", "phase2_cache", {
        "choices": PHASE2_CACHE,
        "help": "train phase 2 on cached activations of the frozen bottom of the backbone"}),
    ("--distribute", "train", "distribute", {
        "choices": DISTRIBUTE, "help": "auto: multi_worker when TF_CONFIG names several workers"}),
    ("--cache-dir", "data", "cache_dir", {
        "metavar": "DIR", "help": "feature cache directory (none: $TFXFER_CACHE or "
                                  "~/.cache/tfxfer)"}),
    ("--verbose", "train", "verbose", {
        "type": int, "choices": (0, 1, 2),
        "help": "Keras fit output: 0 silent (no progress bars), 1 a bar, 2 a line per epoch"}),
    ("--self-training-rounds", "train", "self_training_rounds", {
        "type": int, "help": "self-training: student rounds after the teacher"}),
    ("--self-training-precision", "train", "self_training_precision", {
        "type": float, "help": "self-training: validation precision the threshold needs"}),
    ("--domain-hidden-units", "adaptation", "domain_hidden_units", {
        "type": int, "help": "width of the domain classifier's hidden layer (0: linear)"}),
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
        "help": "candidates of --adaptation-lambda auto"}),
    ("--reverse-validation-fraction", "adaptation", "reverse_validation_fraction", {
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
        "type": float, "help": "temperature of the LwF distillation"}),
    ("--exemplars", "continual", "exemplars", {
        "type": int, "metavar": "N", "help": "keep N examples per class for later rehearsal"}),
    ("--exemplar-selection", "continual", "exemplar_selection", {
        "choices": EXEMPLAR_SELECTIONS, "help": "herding (pooled features) or random"}),
]

# (flag, config section, config key, the value the flag sets, help)
_TRAIN_SWITCHES: list[tuple[str, str, str, bool, str]] = [
    ("--no-augment", "model.image", "augment", False,
     "no random augmentation (flip, rotation, zoom) in training"),
    ("--no-audio-augment", "model.audio", "augment", False,
     "audio: no random time shift, noise or SpecAugment masks in training"),
    ("--fine-tune-batchnorm", "train", "fine_tune_batchnorm", True,
     "phase 2 trains the unfrozen BatchNorm layers too (their statistics follow the data)"),
    ("--no-validate-files", "data", "validate_files", False,
     "do not decode every image before training to name and skip bad files"),
    ("--head-towers", "model", "head_towers", True,
     "task model: one hidden layer per output instead of one shared (needs --hidden-units)"),
    ("--restore-best", "train", "restore_best", True,
     "end with the weights of the epoch with the best --monitor (val_loss)"),
    ("--mixed-precision", "train", "mixed_precision", True,
     "16-bit compute: float16 on a GPU, bfloat16 on a CPU"),
    ("--no-mixed-precision", "train", "mixed_precision", False,
     "float32 compute, also where the config says auto"),
    ("--jit-compile", "train", "jit_compile", True, "XLA-compile the training step"),
    ("--no-tensorboard", "train", "tensorboard", False,
     "write no TensorBoard logs to RUN_DIR/tensorboard"),
    ("--deterministic", "train", "deterministic", True,
     "seed everything and run deterministic ops: same command, same metrics (slower)"),
    ("--no-balance-rehearsal", "continual", "balance_rehearsal", False,
     "rehearse the parent's exemplars as they are, not repeated to a new class's count"),
]

# The argument groups of `tfxfer train --help`, in order.
DATA, MODEL, TRAINING, SPEED, ADAPTATION, CONTINUAL, RUN = (
    "Data", "Model", "Training", "Caching & speed", "Domain adaptation", "Continual learning",
    "Run")
GROUPS = (DATA, MODEL, TRAINING, SPEED, ADAPTATION, CONTINUAL, RUN)
# A row's group is that of its config key, else that of its section's first part.
_GROUP_OF_KEY = {
    "cache": SPEED, "cache_dir": SPEED, "bottleneck_cache": SPEED, "augmented_copies": SPEED,
    "phase2_cache": SPEED, "distribute": SPEED, "mixed_precision": SPEED, "jit_compile": SPEED,
    "verbose": RUN, "tensorboard": RUN,
}
_GROUP_OF_SECTION = {"data": DATA, "model": MODEL, "train": TRAINING, "adaptation": ADAPTATION,
                     "continual": CONTINUAL}

# The groups each command that reads a run's config takes.
TRAIN_GROUPS = GROUPS
ADVISE_GROUPS = (DATA, MODEL)
LR_FIND_GROUPS = (DATA, MODEL, TRAINING)


def group_of(section: str, key: str) -> str:
    """The `--help` group of the flag of config field `section.key`."""
    if key in _GROUP_OF_KEY:
        return _GROUP_OF_KEY[key]
    return _GROUP_OF_SECTION.get(section, _GROUP_OF_SECTION[section.split(".")[0]])


def config_default(section: str, key: str) -> Any:
    """The default of config field `section.key`, read from the dataclasses."""
    node: Any = RunConfig()
    for name in section.split("."):
        node = getattr(node, name)
    if not hasattr(node, key):
        raise AttributeError(f"The config has no field {section}.{key}")
    return getattr(node, key)


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items()) or "none"
    return str(value)


def _with_default(help_text: str, section: str, key: str) -> str:
    # argparse formats help with %-style; a literal % must be doubled.
    shown = _shown(config_default(section, key)).replace("%", "%%")
    return f"{help_text} [{section}.{key}; default: {shown}]"


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def _run_arguments(group: argparse._ArgumentGroup, resume: bool) -> None:
    group.add_argument("--config", metavar="FILE",
                       help="YAML or JSON config file (flags override it)")
    group.add_argument("--out", metavar="DIR", help="output directory (default "
                       "runs/<timestamp>); never overwritten")
    if resume:
        group.add_argument(
            "--resume", metavar="RUN_DIR",
            help="continue a killed run from its last completed epoch (alone, or with the "
                 "run's original flags)",
        )
        group.add_argument(
            "--repeats", type=int, default=1, metavar="N",
            help="train N times with seeds SEED..SEED+N-1 into OUT/seed-<seed> and report "
                 "each test metric's mean ± sd (OUT/repeats.json)",
        )


def add_train_arguments(
    parser: argparse.ArgumentParser, groups: Sequence[str] = TRAIN_GROUPS
) -> None:
    """Adds the flags of the config fields in `groups` (and --config, --out, --resume).

    `tfxfer train` takes every group; `advise` and `lr-find` take only those they read.
    """
    sections = {name: parser.add_argument_group(name) for name in GROUPS if name in groups}
    _run_arguments(sections.get(RUN) or parser.add_argument_group(RUN), resume=RUN in groups)
    if MODEL in sections:
        sections[MODEL].add_argument(
            "--backbone-arg", action="append", type=_key_value, default=[],
            metavar="KEY=VALUE",
            help="backbone constructor argument, e.g. alpha=0.25 (repeatable) "
                 "[model.image.backbone_kwargs]",
        )
    for flag, section, key, options in _TRAIN_FLAGS:
        group = sections.get(group_of(section, key))
        if group is None:
            continue
        options = dict(options)
        options["help"] = _with_default(options.get("help", ""), section, key)
        if "choices" in options and "type" not in options:
            options["type"] = _choice
        group.add_argument(flag, dest=_dest(flag), **options)
    for flag, section, key, _, help_text in _TRAIN_SWITCHES:
        group = sections.get(group_of(section, key))
        if group is not None:
            group.add_argument(flag, dest=_dest(flag), action="store_true",
                               help=_with_default(help_text, section, key))


def _given(args: argparse.Namespace, flag: str) -> Any:
    return getattr(args, _dest(flag), None)


def train_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config overrides given on the command line, as a nested dict.

    Example: `--backbone mobilenet --epochs 2` gives
    {"model": {"image": {"backbone": "mobilenet"}}, "train": {"epochs": 2}}.
    """
    overrides: dict[str, Any] = {}
    given = [(section, key, _given(args, flag)) for flag, section, key, _ in _TRAIN_FLAGS]
    given += [(section, key, value if _given(args, flag) else None)
              for flag, section, key, value, _ in _TRAIN_SWITCHES]
    if getattr(args, "backbone_arg", None):
        given.append(("model.image", "backbone_kwargs", dict(args.backbone_arg)))
    for path, key, value in given:
        if value is not None:
            _section(overrides, path)[key] = value
    if getattr(args, "out", None):
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
    parser = Parser(description=description)
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
    if args.repeats != 1:
        from tfxfer.repeats import check_repeatable, train_repeated

        check_repeatable(config, args.repeats, args.resume)
        print(train_repeated(config, args.repeats).table())
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


def add_ensemble_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                        help="two or more finished runs of the same data, split and classes")
    parser.add_argument("--out", required=True,
                        help="a new directory for metrics.json, predictions.csv, ensemble.json")
    parser.add_argument("--weights", default="auto",
                        help="auto (minimum validation log-loss on a grid), equal, or one "
                             "number per run, e.g. 0.6,0.4 (default auto)")
    parser.add_argument("--no-temperature", dest="temperature", action="store_false",
                        help="do not fit each run's temperature on validation first")
    parser.add_argument("--no-model", dest="save_model", action="store_false",
                        help="write the scores only, not model.keras (which lets "
                             "`tfxfer export DIR` serve the ensemble)")


def run_ensemble(args: argparse.Namespace) -> int:
    from tfxfer.ensemble import ensemble_runs

    result = ensemble_runs(args.run_dirs, args.out, args.weights, args.temperature,
                           args.save_model)
    print(result.table())
    print(f"written to {args.out}")
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


def _with_train_flags(add: Callable[[argparse.ArgumentParser], None], groups: Sequence[str]):
    """`add` plus the `tfxfer train` flags of `groups` (for commands that read a config)."""
    def both(parser: argparse.ArgumentParser) -> None:
        add_train_arguments(parser, groups)
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
    ("ensemble", "average the probabilities of finished runs, weights chosen on validation",
     add_ensemble_arguments, run_ensemble),
    ("report", "regenerate report.html and the plots of a finished run", add_evaluate_arguments,
     run_report),
    ("launch", "run a command as a multi-worker job of local processes (TF_CONFIG each)",
     add_launch_arguments, run_launch),
    ("runs", "list the run directories under runs/ (date, data, model, strategy, score)",
     runs_commands.add_runs_arguments, runs_commands.run_runs),
    ("doctor", "show versions, devices, oneDNN, cached weights and optional packages",
     doctor_commands.add_doctor_arguments, doctor_commands.run_doctor),
    ("list-backbones", "list the registered image backbones", None, run_list_backbones),
    ("list-encoders", "list the registered text encoders", None, text_commands.run_list_encoders),
    ("build-encoder", "build a TF-Hub-format text encoder from word vectors (offline)",
     text_commands.add_build_encoder_arguments, text_commands.run_build_encoder),
    ("build-mnist-m", "write MNIST and MNIST-M (digits blended with photo crops) as folders",
     adaptation_commands.add_build_mnist_m_arguments, adaptation_commands.run_build_mnist_m),
    ("export", "export a run as a SavedModel for TensorFlow Serving (BASE/NAME/VERSION), "
     "or as a LiteRT (.tflite) model for devices (--format tflite)",
     serving_commands.add_export_arguments, serving_commands.run_export),
    ("predict", "predict files or folders with a run or an export, or on TF Serving over "
     "REST or gRPC",
     serving_commands.add_predict_arguments, serving_commands.run_predict),
    ("serving-config", "write models.config for every model under a base directory",
     serving_commands.add_serving_config_arguments, serving_commands.run_serving_config),
    ("serve", "serve every model under a base directory with TF Serving's REST and gRPC APIs",
     server_commands.add_serve_arguments, server_commands.run_serve),
    # --- the strategy advisor and the LR finder (tfxfer.auto.commands) ---
    ("advise", "measure data size x similarity and print the strategy (no training)",
     _with_train_flags(advise_commands.add_advise_arguments, ADVISE_GROUPS),
     _with_train_overrides(advise_commands.run_advise)),
    ("lr-find", "sweep the phase-1 learning rate and plot loss against it (no training)",
     _with_train_flags(advise_commands.add_lr_find_arguments, LR_FIND_GROUPS),
     _with_train_overrides(advise_commands.run_lr_find)),
    # --- unlabelled data (tfxfer.unsupervised.commands) ---
    ("embed", "pooled pretrained features of an image folder or text CSV (.npy or Parquet)",
     unsupervised_commands.add_embed_arguments, unsupervised_commands.run_embed),
    ("cluster", "k-means on pretrained features: clusters.csv, a 2-D map, an HTML report",
     unsupervised_commands.add_cluster_arguments, unsupervised_commands.run_cluster),
]


# Commands that may run without TensorFlow (a REST client, writing a config file); the
# others import it at start, with the collector paused (`gc_policy.import_tensorflow`).
WITHOUT_TENSORFLOW = frozenset({"predict", "serving-config", "runs", "doctor"})


# Commands with many flags show one usage line; `--help` lists the flags by group.
_USAGE = {name: f"%(prog)s {usage} [options]" for name, usage in (
    ("train", "--data FOLDER|CSV|tfds:NAME"), ("advise", "--data FOLDER|CSV|tfds:NAME"),
    ("lr-find", "--data FOLDER|CSV|tfds:NAME"),
    ("predict", "RUN_DIR|EXPORT_DIR FOLDER|FILE... [--csv out.csv] [--top-k N]"))}


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="tfxfer", description="Transfer learning with Keras 3 and TensorFlow.")
    parser.add_argument("--version", action="version", version=f"tfxfer {package_version()}")
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress bars (they are drawn only on a terminal anyway)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text, add_arguments, run in COMMANDS:
        command = sub.add_parser(name, help=help_text, description=help_text,
                                 usage=_USAGE.get(name))
        if add_arguments is not None:
            add_arguments(command)
        command.set_defaults(run=run)
    return parser


def package_version() -> str:
    """The installed tfxfer's version (the source tree's when it is not installed)."""
    import importlib.metadata  # here: importing it costs 0.1-0.3 s

    try:
        return importlib.metadata.version("tfxfer")
    except importlib.metadata.PackageNotFoundError:
        import tfxfer

        return tfxfer.__version__


def _check_run_config(args: argparse.Namespace) -> None:
    """The config of a train/advise/lr-find command, its paths and names checked."""
    from tfxfer.runtime.preflight import check_run_paths

    check_run_paths(load_config(args.config, train_overrides(args)),
                    resume=getattr(args, "resume", None))


def _check_run_dir(*needs: str) -> Callable[[argparse.Namespace], None]:
    """A check that RUN_DIR holds the files `needs`."""
    def check(args: argparse.Namespace) -> None:
        from tfxfer.runtime.preflight import check_run_dir

        check_run_dir(args.run_dir, "RUN_DIR", needs)
    return check


# What each command checks before TensorFlow is imported (`tfxfer.runtime.preflight`):
# a bad path or name fails at once, in one line, and leaves nothing behind.
PREFLIGHT: dict[str, Callable[[argparse.Namespace], None]] = {
    "train": _check_run_config, "advise": _check_run_config, "lr-find": _check_run_config,
    "evaluate": _check_run_dir("config.json", "model.keras", "labels.txt"),
    "report": _check_run_dir("config.json", "labels.txt"),
    "export": _check_run_dir("config.json", "model.keras", "labels.txt"),
    "predict": serving_commands.check_predict,
}

_EXPECTED_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logger = logging.getLogger("tfxfer")
    setup_logging(args.log_level)
    set_progress(not args.quiet and getattr(args, "verbose", None) != 0)
    try:
        if args.command in PREFLIGHT:
            PREFLIGHT[args.command](args)
        start_process(args.log_level, tensorflow=args.command not in WITHOUT_TENSORFLOW)
        return args.run(args)
    except _EXPECTED_ERRORS as err:
        logger.debug("Traceback", exc_info=True)
        logger.error("%s", err)
        return 2


if __name__ == "__main__":
    sys.exit(main())
