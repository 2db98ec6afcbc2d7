"""Run configuration: dataclasses with commented defaults, overridable from YAML/JSON.

A run is described by one `RunConfig`:

    data     DataConfig    source, splits, batching, caches
    model    ModelConfig   the head (dropout, hidden_units) and one section per modality:
      image  ImageConfig   backbone, weights, backbone_kwargs, image_size, pooling,
                           augment, flip, rotation, zoom
      text   TextConfig    encoder, sequence_length, text_pooling
      audio  AudioConfig   sample rate, clip length, log-mel front end, audio augmentation
                           (an audio model also reads `image`: its backbone runs on the
                           log-mel spectrogram as on a picture)
    train    TrainConfig   strategy, epochs, learning rates, unfreezing, caching, devices
    adaptation AdaptationConfig  strategy "domain_adaptation": target folders, domain head,
                           the gradient-reversal lambda and its reverse-validation search
    continual ContinualConfig  the parent run to grow (LwF, rehearsal), exemplars kept
    out                    the run directory

A YAML or JSON file may override any field; command-line flags override the
file. There is no config framework: `load_config` merges plain dicts into the
dataclasses and rejects unknown keys by name; a key of an earlier layout
(`model.backbone`, `train.adaptation_lambda`, ...) is an error naming its new place.
The data decide the modality (`tfxfer.modality`); a run's resolved config keeps only
that model section.

Example:
    config = load_config("apps/flowers/config.yaml", {"train": {"epochs": 2}})
    config.model.image.backbone    # "mobilenet_v2"
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tfxfer.modality import AUDIO, IMAGE, TEXT, validate_modality

logger = logging.getLogger(__name__)

# Every choice a field accepts, listed once: validation and the CLI read them here.
STRATEGIES = (
    "feature_extraction", "fine_tune", "fine_tune_all", "from_scratch", "domain_adaptation"
)
# `train.strategy`, `train.learning_rate`, `adaptation.lambda_max`, `adaptation.features` and
# `model.image.feature_layer` may be "auto" (resolved by `tfxfer.auto.resolve` once the data
# are read).
AUTO = "auto"
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
POOLINGS = ("avg", "max")
TEXT_POOLINGS = ("mean", "cls")
BOTTLENECK_CACHE = ("auto", "on", "off")
PHASE2_CACHE = ("auto", "off")
# What a phase's learning rate does after its warmup
# (see tfxfer.training.optimizers.WarmupSchedule).
LR_SCHEDULES = ("constant", "linear", "cosine")
DISTRIBUTE = ("auto", "mirrored", "multi_worker", "none")
REGRESSION_LOSSES = ("mse", "huber", "mae", "distribution")
DISTRIBUTION_ANSWERS = ("median", "mean")
# Which features DANN's domain classifier reads: the pooled backbone features (the head's
# input) or the output of the head's hidden layer (`model.hidden_units` > 0).
ADAPTATION_FEATURES = ("pooling", "hidden")
# Continual learning (tfxfer.continual): which of the parent's classes the child keeps, and
# how exemplars are chosen.
KEEP = ("old", "none")
EXEMPLAR_SELECTIONS = ("herding", "random")


@dataclass
class DataConfig:
    # A folder of class subfolders, a CSV file of text, or "tfds:NAME".
    source: str = "tfds:tf_flowers"
    # A separate test set of the same kind (folder or CSV file), e.g. IMDB's official
    # test reviews: when set, the test split is all of it and test_fraction is not carved.
    test_source: str | None = None
    # Where TFDS keeps its downloads and prepared data (None: ~/tensorflow_datasets).
    tfds_data_dir: str | None = None
    # Fractions of every class held out for validation and test (stratified).
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    # Seed of the split and of shuffling; the same seed gives the same split.
    seed: int = 42
    batch_size: int = 32
    # Cache decoded examples: "auto" (in memory when they fit, else decode every
    # epoch), "memory", "none", or a file path prefix for an on-disk cache.
    cache: str = "auto"
    # Where reusable caches (backbone features) live (None: $TFXFER_CACHE or ~/.cache/tfxfer).
    cache_dir: str | None = None
    # Decode every image once before training to name and skip bad files.
    validate_files: bool = True
    # Keep at most this many training examples (stratified), e.g. for label-budget studies.
    max_train_examples: int | None = None
    # Keep at most this many test examples (stratified).
    max_test_examples: int | None = None
    # Text data: the CSV columns holding the text and the label.
    text_column: str = "text"
    label_column: str = "label"
    # Readable class names by label, e.g. {0: negative, 1: positive} for IMDB's CSVs;
    # labels not named keep their own, names of absent labels are ignored (at least one
    # must match). TFDS sources already carry the dataset's names (IMDB: neg, pos).
    label_names: dict[str, str] | None = None
    # --- Task outputs of a table source (see tfxfer.tasks and docs/tasks.md) ---
    # Target columns of a CSV/TSV file or DataFrame, comma-separated, each "column" or
    # "column:task" (task: classification | multilabel | regression; inferred from the values
    # when omitted), e.g. "label,rating:regression". Several targets make one multi-task
    # model on one backbone; an empty cell is a missing label (masked out of that loss).
    # None: single-label classification on label_column, as before.
    target: str | None = None
    # Per-output loss weights by target column, e.g. {rating: 0.5} (others weigh 1).
    loss_weights: dict[str, float] | None = None
    # What separates the tags of a multilabel cell, e.g. "red|round".
    tag_delimiter: str = "|"
    # The column of image file paths (relative to the CSV's folder) when a table holds
    # images; None: the table holds text in text_column (or WAV files, audio_column).
    image_column: str | None = None
    # The column of WAV file paths (relative to the CSV's folder) when a table holds
    # audio clips, decoded as model.audio says (rate, clip length).
    audio_column: str | None = None
    # --- Self-training (tfxfer.unsupervised.self_training) ---
    # Unlabelled examples of the same kind as `source` (a flat image folder, or one whose
    # subfolder names are ignored, or a CSV of texts): the teacher pseudo-labels them and
    # students train on the labelled + confidently pseudo-labelled examples.
    unlabelled_source: str | None = None


@dataclass
class ImageConfig:
    """The image side of the model: backbone, input size, pooling, augmentation."""

    # Image backbone name from the registry (`tfxfer list-backbones`).
    backbone: str = "mobilenet_v2"
    # "imagenet", "none", or a path to a local weights file.
    weights: str | None = "imagenet"
    # Extra constructor arguments of the backbone, e.g. {"alpha": 0.25} for MobileNet.
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    # Square input side in pixels; None takes the backbone's default.
    image_size: int | None = None
    # Put the head on this backbone layer instead of the top (the backbone is cut
    # there, pooled as usual); "auto" lets `tfxfer.auto.advisor` pick the depth whose
    # features separate the classes best. None: the top. (`tfxfer advise` lists cuts.)
    feature_layer: str | None = None
    # Global pooling over the backbone's feature map: "avg" or "max".
    pooling: str = "avg"
    # Random augmentation inside the model, active in training only.
    augment: bool = True
    flip: str = "horizontal"
    rotation: float = 0.1
    zoom: float = 0.1


@dataclass
class TextConfig:
    """The text side of the model: the pretrained encoder."""

    # A registered name (`tfxfer list-encoders`), a TF-Hub handle, a local SavedModel
    # directory, a word-vector file, or a transformer: a keras-hub preset name, an
    # hf:// handle or a Hugging Face / keras-hub model folder.
    encoder: str = "glove_6b_50d"
    # Transformer encoders: tokens per text after truncation/padding ([CLS]/[SEP] included).
    sequence_length: int = 128
    # Transformer encoders: sentence pooling, "mean", "cls", or None for the checkpoint's own.
    text_pooling: str | None = None
    # Transformer encoders: pad each batch only to its longest text (outputs unchanged,
    # cost follows the real length); false keeps every batch at `sequence_length`.
    dynamic_padding: bool = True
    # Word-vector encoders: a bag of hashed word 1..ngram_order-grams learned from scratch,
    # concatenated to the encoder's vector (fastText's word order; `tfxfer.text.ngrams`).
    # The table's rows; 0: no n-gram bag.
    ngram_buckets: int = 0
    ngram_dim: int = 16
    ngram_order: int = 2


@dataclass
class AudioConfig:
    """The audio side of the model: how WAV files become a log-mel "image" (`tfxfer.audio`).

    The backbone, its weights, the spectrogram image's side (`image_size`) and the pooling
    come from `ModelConfig.image`; that section's flip/rotation/zoom are not used.
    """

    # Every clip is resampled to this rate (Hz) when its file's rate differs.
    sample_rate: int = 16000
    # Clips are cropped (centred) or zero-padded at the end to this many seconds.
    clip_seconds: float = 1.0
    # Log-mel front end: STFT window and hop in milliseconds, mel bands, band edges (Hz;
    # fmax None: half the sample rate) and the dynamic range kept below each clip's peak.
    frame_ms: float = 25.0
    hop_ms: float = 10.0
    n_mels: int = 64
    fmin: float = 20.0
    fmax: float | None = None
    top_db: float = 80.0
    # Subtract each mel band's mean over the clip's active frames (cepstral mean
    # normalisation: what is constant over a clip, such as the microphone's tilt, goes).
    band_norm: bool = False
    # Training-only augmentation: a random playback speed within ±`speed` (pitch and
    # tempo: other voices; off by default: on FSDD's george fold 0.15 scored 0.38 against
    # 0.44 without, see docs/audio.md), a random time shift of up to this fraction of the
    # clip, Gaussian noise of up to this fraction of the clip's peak, and SpecAugment
    # masks (this many of each, up to the given widths in mel bands / frames).
    augment: bool = True
    speed: float = 0.0
    time_shift: float = 0.1
    noise: float = 0.01
    spec_masks: int = 1
    freq_mask: int = 8
    time_mask: int = 10


SECTIONS = {IMAGE: ImageConfig, TEXT: TextConfig, AUDIO: AudioConfig}
# The sections each modality's model reads (an audio model: its backbone's image section).
MODALITY_SECTIONS = {IMAGE: (IMAGE,), TEXT: (TEXT,), AUDIO: (AUDIO, IMAGE)}

@dataclass
class ModelConfig:
    """The classifier: a head shared by both modalities, and one section per modality.

    Before the data are read both sections are present (the data decide which one
    is used); a run's resolved config keeps only its own (`for_modality`), and the
    run warns about settings of the other one (`unused_settings`).
    """

    # Dropout before the classifier.
    dropout: float = 0.2
    # Units of an optional hidden Dense layer in the head (0: none).
    hidden_units: int = 0
    # A task model with several outputs: each output gets its own hidden layer
    # (`hidden_<output>`, `hidden_units` wide) instead of sharing one. Needs hidden_units > 0.
    head_towers: bool = False
    # Image models (None in a text run's resolved config).
    image: ImageConfig | None = field(default_factory=ImageConfig)
    # Text models (None in an image run's resolved config).
    text: TextConfig | None = field(default_factory=TextConfig)
    # Audio models (None unless the data are audio); they read `image` too.
    audio: AudioConfig | None = field(default_factory=AudioConfig)

    @property
    def image_input_size(self) -> int | None:
        """The side images are decoded to: `image.image_size` (None without that section)."""
        return self.image.image_size if self.image is not None else None

    def section(self, modality: str) -> ImageConfig | TextConfig | AudioConfig:
        """The section of `modality` ("image", "text" or "audio")."""
        value = getattr(self, validate_modality(modality))
        if value is None:
            raise ValueError(f"This model config has no {modality} section (model.{modality}).")
        return value

    def for_modality(self, modality: str) -> ModelConfig:
        """This config with only the sections `modality`'s model reads (others set to None)."""
        others = [s for s in SECTIONS if s not in MODALITY_SECTIONS[validate_modality(modality)]]
        return dataclasses.replace(self, **{other: None for other in others})

    def unused_settings(self, modality: str) -> list[str]:
        """The other modalities' settings changed from their defaults, as "model.x.k=v"."""
        used = MODALITY_SECTIONS[validate_modality(modality)]
        unused = []
        for other in (s for s in SECTIONS if s not in used):
            section = getattr(self, other)
            if section is None:
                continue
            default = type(section)()
            unused += [f"model.{other}.{f.name}={getattr(section, f.name)!r}"
                       for f in dataclasses.fields(section)
                       if getattr(section, f.name) != getattr(default, f.name)]
        return unused


@dataclass
class TrainConfig:
    # One of STRATEGIES: feature_extraction | fine_tune | fine_tune_all | from_scratch,
    # or "auto": `tfxfer.auto.advisor` measures data size and similarity and picks one.
    strategy: str = "fine_tune"
    # Phase 1 epochs (head on the frozen backbone).
    epochs: int = 5
    # Phase 2 epochs (top of the backbone unfrozen); counted on from `epochs`.
    fine_tune_epochs: int = 5
    optimizer: str = "adam"
    # Phase 1 learning rate, or "auto": `tfxfer.auto.lr_finder` sweeps it (lr_find.json).
    learning_rate: float | str = 1e-3
    # Phase 2 learning rate; None means learning_rate / 10. Must be at least 10x lower.
    fine_tune_learning_rate: float | None = None
    # Which top part of the backbone to unfreeze in phase 2 (set at most one;
    # none set means unfreeze_fraction=0.3).
    unfreeze_layers: int | None = None
    unfreeze_from: str | None = None
    unfreeze_fraction: float | None = None
    # Phase 2 trains the unfrozen BatchNorm layers too (their statistics follow the new
    # data, the backbone runs in training mode while fitting): for data far from
    # ImageNet such as spectrograms. False keeps them frozen (the keras-io recipe).
    fine_tune_batchnorm: bool = False
    # Discriminative learning rates in phase 2: each unfrozen backbone layer's rate
    # is multiplied by decay**depth, depth counted in blocks from the top (None: off).
    layer_lr_decay: float | None = None
    layer_lr_block: int = 10
    # Learning-rate warmup of every phase: the rate rises linearly from 0 to the phase's
    # rate over this fraction of the phase's steps (0: off). Then lr_schedule applies:
    # "constant" holds the rate, "linear" or "cosine" decay it to 0 by the phase's end.
    warmup_fraction: float = 0.0
    lr_schedule: str = "constant"
    # Stop a phase when `monitor` has not improved for this many epochs (None: off).
    early_stopping_patience: int | None = None
    # Restore the weights of the epoch with the best `monitor` over both phases.
    restore_best: bool = False
    # The epoch log restore_best and early stopping minimise: "val_loss", or one output's
    # validation loss in a multi-task run, e.g. "val_rating_loss".
    monitor: str = "val_loss"
    # Train phase 1 (frozen backbone) on backbone features computed once and cached:
    # "auto" (when the backbone is frozen and augmentation is off or cached as copies),
    # "on" (an error when it cannot), or "off" (run the full model on every batch).
    bottleneck_cache: str = "auto"
    # With augmentation on, cache this many augmented copies of each training example
    # (each epoch draws one per example); 0 runs phase 1 on the full model instead.
    augmented_copies: int = 0
    # Train phase 2 (top of the backbone unfrozen) on activations of the frozen bottom
    # computed once and cached: "auto" (when the conditions hold, else the full model
    # with a log line saying why) or "off". See tfxfer/training/boundary.py.
    phase2_cache: str = "auto"
    # "auto" (MultiWorkerMirroredStrategy when TF_CONFIG names several workers,
    # MirroredStrategy when several GPUs are visible), "mirrored", "multi_worker" or "none".
    distribute: str = "auto"
    # Seeds everything, enables TensorFlow op determinism and a deterministic tf.data
    # order: the same command twice gives the same metrics (slower; see docs/scaling.md).
    deterministic: bool = False
    # 16-bit compute (mixed_float16 on a GPU, mixed_bfloat16 on a CPU); "auto": on where
    # it pays, a GPU or a CPU with bfloat16 instructions (a transformer runs 1.3-1.4x
    # faster there; image backbones were measured slower on an AVX2 CPU). Off by default.
    mixed_precision: bool | str = False
    # XLA; off by default (slower on this project's CPUs).
    jit_compile: bool = False
    # Keras fit verbosity (0 silent, 1 bar, 2 one line per epoch).
    verbose: int = 2
    # Write TensorBoard logs of both phases to RUN_DIR/tensorboard.
    tensorboard: bool = True
    # Loss of regression outputs of a task model (tfxfer.tasks), on the standardised target:
    # "mse" (squared error), "huber" (squared within 1 standard deviation, linear beyond) or
    # "mae" (absolute error: predicts the median, the lowest MAE for two-peaked targets), or
    # "distribution" (a softmax over the target's distinct training values, at most 50, with
    # cross-entropy: IMDB's 1-4/7-10 stars).
    regression_loss: str = "mse"
    # A distribution head's answer: "median" (the lowest MAE) or "mean" (ranks better:
    # no ties; IMDB ratings: Spearman 0.827 against 0.807 on validation, docs/tasks.md).
    distribution_answer: str = "median"
    # --- Self-training (data.unlabelled_source, tfxfer.unsupervised.self_training) ---
    # Student rounds after the teacher (each student teaches the next).
    self_training_rounds: int = 2
    # The pseudo-label confidence threshold is the smallest candidate at which the
    # teacher's confident predictions on the validation split are at least this precise.
    self_training_precision: float = 0.9


@dataclass
class AdaptationConfig:
    """Domain-adversarial training (DANN) of strategy "domain_adaptation" (`tfxfer.adaptation`).

    One section because its settings span data (the target folders), model (the domain
    head) and training (the lambda schedule, its search, the annealed learning rate), and
    only this strategy reads them; other strategies reject target folders.
    """

    # Unlabelled target-domain images: a flat folder, or class subfolders whose names
    # (labels) are ignored.
    target_source: str | None = None
    # Labelled target images (class subfolders) to measure target accuracy after every
    # epoch; never used for training.
    target_test_source: str | None = None
    # Width of the domain classifier's hidden layer (0: a linear domain classifier).
    domain_hidden_units: int = 100
    # What the domain classifier reads (ADAPTATION_FEATURES): "pooling", the pooled backbone
    # features (the paper's MNIST split, after the convolutions), or "hidden", the label
    # head's hidden layer, so that a fully connected layer is part of the adapted features,
    # or "auto": reverse validation picks it (with lambda_max, when that is "auto").
    features: str = "pooling"
    # Ceiling of the gradient-reversal schedule lambda_p = max * (2 / (1 + exp(-10 p)) - 1),
    # or "auto": reverse validation picks it among `lambda_grid` without target labels
    # (tfxfer.adaptation.reverse_validation; reverse_validation.json).
    lambda_max: float | str = 1.0
    # The candidates of lambda_max "auto" (0: no adaptation is a candidate too).
    lambda_grid: list[float] = field(default_factory=lambda: [0.0, 0.1, 0.3, 1.0])
    # Each forward and reverse run of reverse validation trains this fraction of the
    # run's steps (2 runs per candidate).
    reverse_validation_fraction: float = 0.15
    # Anneal the learning rate as eta_p = eta0 / (1 + 10 p)^0.75 over the whole run.
    anneal_learning_rate: bool = True


@dataclass
class ContinualConfig:
    """Learning new classes without forgetting the old (see tfxfer/continual/).

    A section of its own, not TrainConfig fields: these settings describe a run's relation
    to another run (its parent) and what it keeps for its children (exemplars), they are
    validated together, and a run that continues nothing carries one default block.
    """

    # A finished run directory to continue (`tfxfer train --from RUN_DIR`): its model is
    # loaded and its head grows to the union of its classes and the new data's.
    parent: str | None = None
    # "old": the child keeps the parent's classes (the head grows); "none": the child has
    # only the new data's classes and starts from the parent's weights (plain transfer).
    keep: str = "old"
    # Exemplars per old class of the parent (its RUN_DIR/exemplars.csv) added to the new
    # training data (0: none).
    rehearsal: int = 0
    # Repeat each old class's exemplars in the training split until the class has about
    # as many examples as a new class has (class-balanced rehearsal): with 20 exemplars
    # against hundreds of new examples, the head otherwise leans to the new classes.
    balance_rehearsal: bool = True
    # Weight of the Learning-without-Forgetting loss: the parent's soft outputs on the
    # training data distilled into the child's old-class outputs (0: plain fine-tuning).
    lwf_weight: float = 1.0
    # Temperature of the distillation (Li & Hoiem 2016 and Hinton et al. 2015 use 2).
    temperature: float = 2.0
    # Store this many training examples per class in RUN_DIR/exemplars.csv for a later
    # child's rehearsal (0: none).
    exemplars: int = 0
    # How exemplars are chosen: "herding" (iCaRL: closest running mean of the pooled
    # features) or "random".
    exemplar_selection: str = "herding"


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    # Strategy "domain_adaptation" only (its defaults otherwise).
    adaptation: AdaptationConfig = field(default_factory=AdaptationConfig)
    # Continual learning: the parent run and exemplars (tfxfer.continual).
    continual: ContinualConfig = field(default_factory=ContinualConfig)
    # Run directory for config, history, metrics, model and labels (None: runs/<timestamp>).
    out: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> RunConfig:
        _validate_train(self.train)
        _validate_data(self.data)
        _validate_model(self.model)
        if self.model.head_towers and not self.data.target:
            raise ValueError("model.head_towers gives each output of a task model its own "
                             "hidden layer; it needs data.target (e.g. 'label,rating:"
                             "regression'). Received: data.target=None")
        _validate_adaptation(self)
        _validate_continual(self)
        return self


def _validate_continual(config: RunConfig) -> None:
    c = config.continual
    _validate_choice("continual.keep", c.keep, KEEP)
    _validate_choice("continual.exemplar_selection", c.exemplar_selection, EXEMPLAR_SELECTIONS)
    for name in ("rehearsal", "exemplars"):
        if getattr(c, name) < 0:
            raise ValueError(f"continual.{name} must be >= 0. Received: {getattr(c, name)}")
    if c.lwf_weight < 0 or c.temperature <= 0:
        raise ValueError("continual.lwf_weight must be >= 0 and continual.temperature > 0. "
                         f"Received: lwf_weight={c.lwf_weight}, temperature={c.temperature}")
    if c.parent is None and c.rehearsal:
        raise ValueError(f"continual.rehearsal needs a parent run (--from RUN_DIR). "
                         f"Received: rehearsal={c.rehearsal}, parent=None")
    if c.parent is not None and config.train.strategy == "domain_adaptation":
        raise ValueError("A continual run (--from) does not take strategy 'domain_adaptation'.")
    if c.keep == "none" and c.rehearsal:
        raise ValueError("continual.keep 'none' drops the parent's classes, so there is "
                         f"nothing to rehearse. Received: rehearsal={c.rehearsal}")


def _validate_adaptation(config: RunConfig) -> None:
    adaptation = config.adaptation
    adapting = config.train.strategy == "domain_adaptation"
    if adapting and not adaptation.target_source:
        raise ValueError(
            "strategy 'domain_adaptation' needs unlabelled target images: set --target-data "
            "(adaptation.target_source) to a folder of images."
        )
    if not adapting and (adaptation.target_source or adaptation.target_test_source):
        raise ValueError(
            "--target-data / --target-test-data are used by --strategy domain_adaptation only. "
            f"Received: strategy={config.train.strategy!r}"
        )
    scheduled = config.train.warmup_fraction > 0 or config.train.lr_schedule != "constant"
    if adapting and scheduled:
        raise ValueError(
            "strategy 'domain_adaptation' anneals its own learning rate "
            "(adaptation.anneal_learning_rate); it does not take --warmup or --lr-schedule. "
            f"Received: warmup_fraction={config.train.warmup_fraction}, "
            f"lr_schedule={config.train.lr_schedule!r}"
        )
    if adaptation.domain_hidden_units < 0:
        raise ValueError("adaptation.domain_hidden_units must be >= 0. "
                         f"Received: {adaptation.domain_hidden_units}")
    _validate_adaptation_features(config)
    _validate_adaptation_lambda(config)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _validate_adaptation_features(config: RunConfig) -> None:
    """adaptation.features: one of ADAPTATION_FEATURES or "auto" (reverse validation, which
    scores on the source validation split); "hidden" needs a hidden layer."""
    value = config.adaptation.features
    if value not in (*ADAPTATION_FEATURES, AUTO):
        raise ValueError(f"adaptation.features must be one of "
                         f"{[*ADAPTATION_FEATURES, AUTO]}. Received: {value!r}")
    if value == AUTO:
        _require_reverse_validation(config, "features")
    if value == "hidden" and not config.model.hidden_units:
        raise ValueError(
            "adaptation.features 'hidden' reads the head's hidden layer, and "
            f"model.hidden_units is {config.model.hidden_units!r}: set model.hidden_units "
            "(e.g. 100) or use 'pooling'."
        )


def _require_reverse_validation(config: RunConfig, setting: str) -> None:
    """adaptation.<setting> 'auto' is resolved by reverse validation: a domain-adaptation
    run with a labelled source validation split to score the candidates on."""
    if config.train.strategy != "domain_adaptation":
        raise ValueError(
            f"adaptation.{setting} 'auto' (reverse validation) needs strategy "
            f"'domain_adaptation'. Received: strategy={config.train.strategy!r}"
        )
    if config.data.val_fraction <= 0:
        raise ValueError(
            f"adaptation.{setting} 'auto' scores candidates on the labelled source "
            "validation split: set data.val_fraction > 0. Received: "
            f"val_fraction={config.data.val_fraction}"
        )


def _validate_adaptation_lambda(config: RunConfig) -> None:
    """adaptation.lambda_max: a number >= 0, or "auto" with a grid of candidates."""
    adaptation = config.adaptation
    value = adaptation.lambda_max
    if isinstance(value, str):
        if value != AUTO:
            raise ValueError(
                f"adaptation.lambda_max must be a number >= 0 or 'auto'. Received: {value!r}"
            )
        _require_reverse_validation(config, "lambda_max")
    elif not _is_number(value) or not math.isfinite(value) or value < 0:
        raise ValueError(
            f"adaptation.lambda_max must be a number >= 0 or 'auto'. Received: {value!r}"
        )
    grid = adaptation.lambda_grid
    if (not isinstance(grid, (list, tuple)) or not grid
            or not all(_is_number(v) and math.isfinite(v) and v >= 0 for v in grid)):
        raise ValueError(
            "adaptation.lambda_grid must be a non-empty list of numbers >= 0 "
            f"(the candidates of lambda_max 'auto'). Received: {grid!r}"
        )
    if len(set(grid)) != len(grid):
        raise ValueError(f"adaptation.lambda_grid lists a value twice. Received: {grid!r}")
    fraction = adaptation.reverse_validation_fraction
    if not _is_number(fraction) or not 0.0 < fraction <= 1.0:
        raise ValueError(
            f"adaptation.reverse_validation_fraction must be in (0, 1]. Received: {fraction!r}"
        )


def _validate_data(data: DataConfig) -> None:
    for name in ("val_fraction", "test_fraction"):
        value = getattr(data, name)
        if not 0.0 <= value < 1.0:
            raise ValueError(f"data.{name} must be in [0, 1). Received: {name}={value}")
    if data.val_fraction + data.test_fraction >= 1.0:
        raise ValueError(
            "data.val_fraction + data.test_fraction must leave examples for training. "
            f"Received: {data.val_fraction} + {data.test_fraction}"
        )
    if data.batch_size < 1:
        raise ValueError(f"data.batch_size must be >= 1. Received: {data.batch_size}")
    parse_targets(data)
    if not data.tag_delimiter:
        raise ValueError("data.tag_delimiter must be a non-empty string, e.g. '|'.")
    if data.label_names is not None and (
        not isinstance(data.label_names, dict)
        or not all(str(v).strip() for v in data.label_names.values())
    ):
        raise ValueError(
            "data.label_names must map labels to non-empty names, e.g. "
            f"{{0: negative, 1: positive}}. Received: {data.label_names!r}"
        )


# The tasks an output of a table source can be (tfxfer.tasks.specs registers each).
TASKS = ("classification", "multilabel", "regression")


@dataclass(frozen=True)
class OutputConfig:
    """One output of a task model: what it predicts, from which column, how much it weighs.

    Attributes:
        name: the output's name (the column's, made a valid identifier).
        task: one of TASKS, or None to infer it from the column's values.
        column: the target column of the table.
        loss_weight: this output's weight in the summed loss.
    """

    name: str
    task: str | None
    column: str
    loss_weight: float = 1.0


def parse_targets(data: DataConfig) -> list[OutputConfig]:
    """The outputs `data.target` names ("label,rating:regression"), checked.

    Raises:
        ValueError: an empty entry, an unknown task, a column named twice, a loss weight
            for a column that is not a target, or a weight that is not a number >= 0.
    """
    if not data.target or not data.target.strip():
        return []
    weights = {str(k): v for k, v in (data.loss_weights or {}).items()}
    outputs, seen = [], set()
    for entry in data.target.split(","):
        column, _, task = (part.strip() for part in entry.partition(":"))
        if not column:
            raise ValueError(f"data.target has an empty entry. Received: {data.target!r}")
        if task and task not in TASKS:
            raise ValueError(f"Unknown task {task!r} for target {column!r}; tasks are "
                             f"{', '.join(TASKS)}. Received: target={data.target!r}")
        if column in seen:
            raise ValueError(f"data.target names {column!r} twice. Received: {data.target!r}")
        seen.add(column)
        weight = weights.get(column, 1.0)
        if not _is_number(weight) or not math.isfinite(weight) or weight < 0:
            raise ValueError(f"data.loss_weights[{column!r}] must be a number >= 0. "
                             f"Received: {weight!r}")
        name = "".join(c if c.isalnum() else "_" for c in column).strip("_") or "target"
        outputs.append(OutputConfig(name, task or None, column, float(weight)))
    unknown = sorted(set(weights) - seen)
    if unknown:
        raise ValueError(f"data.loss_weights names {unknown}, which are not targets "
                         f"(data.target={data.target!r}).")
    if len({o.name for o in outputs}) != len(outputs):
        raise ValueError(f"Two targets give the same output name: {[o.name for o in outputs]}")
    return outputs


def _validate_model(model: ModelConfig) -> None:
    if not 0.0 <= model.dropout < 1.0:
        raise ValueError(f"model.dropout must be in [0, 1). Received: {model.dropout}")
    if model.hidden_units < 0:
        raise ValueError(f"model.hidden_units must be >= 0. Received: {model.hidden_units}")
    if model.head_towers and not model.hidden_units:
        raise ValueError("model.head_towers gives each output its own hidden layer, so it "
                         "needs model.hidden_units > 0. Received: hidden_units=0")
    if model.image is not None:
        _validate_choice("model.image.pooling", model.image.pooling, POOLINGS)
    if model.text is not None and model.text.text_pooling is not None:
        _validate_choice("model.text.text_pooling", model.text.text_pooling, TEXT_POOLINGS)
    if model.text is not None:
        _validate_ngrams(model.text)
    if model.audio is not None:
        _validate_audio(model.audio)


def _validate_ngrams(text: TextConfig) -> None:
    if text.ngram_buckets < 0:
        raise ValueError(f"model.text.ngram_buckets must be >= 0 (0: no n-gram bag). "
                         f"Received: {text.ngram_buckets}")
    if text.ngram_buckets and (text.ngram_dim < 1 or text.ngram_order not in (1, 2, 3)):
        raise ValueError("model.text.ngram_dim must be >= 1 and ngram_order 1, 2 or 3. "
                         f"Received: ngram_dim={text.ngram_dim}, ngram_order={text.ngram_order}")


def _validate_audio(audio: AudioConfig) -> None:
    for name in ("sample_rate", "clip_seconds", "frame_ms", "hop_ms", "n_mels", "top_db"):
        if not getattr(audio, name) > 0:
            raise ValueError(f"model.audio.{name} must be > 0. Received: {getattr(audio, name)!r}")
    if not all(0 <= v < 1 for v in (audio.time_shift, audio.noise, audio.speed)):
        raise ValueError("model.audio.time_shift, noise and speed must be in [0, 1). "
                         f"Received: time_shift={audio.time_shift}, noise={audio.noise}, "
                         f"speed={audio.speed}")


def _validate_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}. Received: {value!r}")


def _validate_train(train: TrainConfig) -> None:
    _validate_choice("train.strategy", train.strategy, (*STRATEGIES, AUTO))
    _validate_choice("train.optimizer", train.optimizer, OPTIMIZERS)
    _validate_choice("train.bottleneck_cache", train.bottleneck_cache, BOTTLENECK_CACHE)
    _validate_choice("train.phase2_cache", train.phase2_cache, PHASE2_CACHE)
    _validate_choice("train.distribute", train.distribute, DISTRIBUTE)
    _validate_choice("train.regression_loss", train.regression_loss, REGRESSION_LOSSES)
    _validate_choice("train.distribution_answer", train.distribution_answer, DISTRIBUTION_ANSWERS)
    if "acc" in train.monitor:
        raise ValueError(f"train.monitor is minimised (a loss or an error such as "
                         f"val_rating_mae); received the accuracy {train.monitor!r}")
    if isinstance(train.mixed_precision, str):
        _validate_choice("train.mixed_precision", train.mixed_precision, (AUTO,))
    if train.epochs < 0 or train.fine_tune_epochs < 0:
        raise ValueError(
            "epochs and fine_tune_epochs must be >= 0. "
            f"Received: epochs={train.epochs}, fine_tune_epochs={train.fine_tune_epochs}"
        )
    # --- "auto" strategy and learning rate (tfxfer.auto.advisor, tfxfer.auto.lr_finder) ---
    if isinstance(train.learning_rate, str) and train.learning_rate != AUTO:
        raise ValueError(f"learning_rate must be a number or 'auto'. "
                         f"Received: {train.learning_rate!r}")
    lr1 = None if train.learning_rate == AUTO else train.learning_rate
    # ---
    lr2 = train.fine_tune_learning_rate
    if lr1 is not None and lr2 is not None and lr2 > lr1 / 10 * (1 + 1e-9):
        raise ValueError(
            "fine_tune_learning_rate must be at least 10x lower than learning_rate. "
            f"Received: learning_rate={train.learning_rate}, fine_tune_learning_rate={lr2}"
        )
    _validate_choice("train.lr_schedule", train.lr_schedule, LR_SCHEDULES)
    if not 0.0 <= train.warmup_fraction < 1.0:
        raise ValueError(
            f"train.warmup_fraction must be in [0, 1). Received: {train.warmup_fraction}"
        )
    if train.augmented_copies < 0:
        raise ValueError(f"augmented_copies must be >= 0. Received: {train.augmented_copies}")
    chosen = [
        n for n in ("unfreeze_layers", "unfreeze_from", "unfreeze_fraction")
        if getattr(train, n) is not None
    ]
    if len(chosen) > 1:
        raise ValueError(f"Set at most one of unfreeze_layers/from/fraction. Received: {chosen}")


def fine_tune_learning_rate(train: TrainConfig) -> float:
    """The phase-2 learning rate: the configured one, or a tenth of phase 1's."""
    if train.fine_tune_learning_rate is not None:
        return train.fine_tune_learning_rate
    return train.learning_rate / 10


def _merge(obj: Any, overrides: dict[str, Any], where: str) -> Any:
    """Returns a copy of dataclass `obj` with `overrides` applied recursively.

    A section may be set to None (a resolved run config keeps one model section) or
    given as a mapping, which is merged into the current section (or its defaults).
    """
    if not isinstance(overrides, dict):
        raise ValueError(f"Config section {where or 'root'} must be a mapping. Got: {overrides!r}")
    known = {f.name: f for f in dataclasses.fields(obj)}
    changes = {}
    for key, value in overrides.items():
        key = key.replace("-", "_")
        if key not in known:
            _raise_unknown_key(where + key, known)
        current = getattr(obj, key)
        if key in SECTIONS and current is None and value is not None:
            current = SECTIONS[key]()
        if dataclasses.is_dataclass(current) and value is not None:
            value = _merge(current, value, f"{where}{key}.")
        else:
            _check_type(type(obj), key, value, where)
        changes[key] = value
    return dataclasses.replace(obj, **changes)


# Keys of earlier layouts (never released) and where they live now: reading one is an
# error that names its new place rather than a silent mapping.
MOVED_KEYS = {
    **{f"model.{f.name}": f"model.image.{f.name}" for f in dataclasses.fields(ImageConfig)},
    **{f"model.{f.name}": f"model.text.{f.name}" for f in dataclasses.fields(TextConfig)},
    "data.target_source": "adaptation.target_source",
    "data.target_test_source": "adaptation.target_test_source",
    "train.domain_hidden_units": "adaptation.domain_hidden_units",
    "train.adaptation_features": "adaptation.features",
    "train.adaptation_lambda": "adaptation.lambda_max",
    "train.adaptation_lambdas": "adaptation.lambda_grid",
    "train.reverse_validation_fraction": "adaptation.reverse_validation_fraction",
    "train.anneal_learning_rate": "adaptation.anneal_learning_rate",
}


def _raise_unknown_key(key: str, known: dict[str, Any]) -> None:
    """ValueError for an unknown key: its new place when it moved, else the valid keys."""
    if key in MOVED_KEYS:
        raise ValueError(f"Config key {key!r} has moved: write it as {MOVED_KEYS[key]!r} "
                         "(the earlier layout is not read).")
    raise ValueError(f"Unknown config key {key!r}. Valid keys here: {', '.join(sorted(known))}")


_SCALARS = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
            dict: "a mapping", list: "a list", tuple: "a list"}


def _matches(value: Any, hint: Any) -> bool:
    """Whether a config value fits a field's type (containers: the outer type only)."""
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is not None:
        hint = origin
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint in (list, tuple):
        return isinstance(value, (list, tuple))
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _expected(hint: Any) -> str:
    options = typing.get_args(hint) if typing.get_origin(hint) in (
        typing.Union, types.UnionType) else (hint,)
    words = [("null" if o is type(None) else
              _SCALARS.get(typing.get_origin(o) or o, getattr(o, "__name__", str(o))))
             for o in options]
    return " or ".join(words)


def _check_type(cls: type, key: str, value: Any, where: str) -> None:
    """Raises ValueError naming the field when `value` does not fit its declared type."""
    hint = typing.get_type_hints(cls).get(key, Any)
    if not _matches(value, hint):
        raise ValueError(f"Config key {where + key!r} must be {_expected(hint)}. "
                         f"Received: {value!r} ({type(value).__name__})")


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Reads a YAML or JSON config file into a dict (empty file: empty dict)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Config file not found: {path}")
    text = path.read_text()
    if path.suffix == ".json":
        data = json.loads(text)
    else:
        data = yaml.safe_load(text)
    return data or {}


def load_config(
    path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> RunConfig:
    """Builds a validated RunConfig: dataclass defaults < file < overrides.

    Args:
        path: optional YAML (.yaml/.yml) or JSON (.json) file.
        overrides: nested dict applied last, e.g. {"train": {"epochs": 1}}.

    Returns:
        The validated RunConfig.
    """
    config = RunConfig()
    if path is not None:
        config = _merge(config, read_config_file(path), "")
    if overrides:
        config = _merge(config, overrides, "")
    return config.validate()


def config_from_dict(data: dict[str, Any]) -> RunConfig:
    """Rebuilds a RunConfig from `RunConfig.to_dict()` output (e.g. a run's config.json)."""
    return _merge(RunConfig(), data, "").validate()
