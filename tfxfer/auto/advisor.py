"""Choose the transfer strategy from data size x similarity (`--strategy auto`, `tfxfer advise`).

The classic 2x2 answer, made measurable:

    |              | similar to the pretraining data     | different                          |
    | little data  | fine-tune the top (feature           | cut the backbone at the depth that |
    |              | extraction alone when very little)  | separates the classes best         |
    | lots of data | fine-tune all layers                 | the cut too when its probe is      |
    |              |                                      | good, else train from scratch      |

Size is the number of training examples per class. Similarity comes from
`tfxfer.auto.probes`: linear probes of the frozen features at the end of every stage
of the backbone. When the top layer separates the classes about as well as the
best depth (`top / best >= similar_above`), the data is called similar; when an
earlier depth is clearly better, the top layers are too specific to the
pretraining data. Lots of different data also goes to the best depth when its
probe scores at least `cut_above` (the pretrained features there separate the
classes well: on bench/advisor.py's large colour-MNIST task, best probe 0.66-0.72,
the standardised cut beat from_scratch by 7-18 points at the bench's budget, and
fine_tune_all had lost to from_scratch); otherwise the architecture trains from
scratch. (This rule was set after seeing that task, the only one with lots of
different data: no task yet shows from_scratch winning.) An optional rule,
`gain_above`, also requires the best probe to beat random weights of the same
architecture by that much (a second backbone and forward pass, which tripled the
measurement there; random weights probed 0.07-0.14, so it decided nothing). The
BatchNorm-statistics shift is not used to decide: it agreed with the probes on
every task and added nothing, so it is measured only when asked for (`bn_shift`,
`tfxfer advise --bn-shift`).

The decision, the numbers and the reason go to `advice.json` in the run directory
and into report.html.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tfxfer.config import RunConfig
from tfxfer.data.splits import Splits
from tfxfer.modality import IMAGE
from tfxfer.training.strategies import DEFAULT_UNFREEZE_FRACTION

logger = logging.getLogger(__name__)

ADVICE = "advice.json"

# The advisor's possible answers, and the strategy each one trains with.
CHOICES = {
    "feature_extraction": "feature_extraction",
    "fine_tune_top": "fine_tune",
    "fine_tune_all": "fine_tune_all",
    "earlier_layer_cut": "feature_extraction",
    "from_scratch": "from_scratch",
}


@dataclass(frozen=True)
class AdvisorSettings:
    """Thresholds of the decision (the defaults were set on bench/advisor.py's tasks).

    Attributes:
        lots_per_class: training examples per class from which data counts as "lots".
        few_per_class: below this (and similar), only the head is trained.
        min_per_class: below this nothing is measured: feature extraction, with a warning.
        similar_above: top-layer probe / best-depth probe at or above this: similar.
        cut_above: lots of different data puts the head on the best depth when its
            probe scores at least this, else trains from scratch.
        gain_above: optionally, the cut for lots of different data also needs the best
            probe to beat random weights by this much (normalised score); None
            (default): random weights are not probed.
        sample_per_class: examples per class the probes look at...
        max_sample: ...and at most this many in all.
        bn_shift: also measure the BatchNorm shift (`bn_similarity`; reported, never
            used to decide, so off by default: it costs about a tenth of the measurement).
    """

    lots_per_class: int = 300
    few_per_class: int = 10
    min_per_class: int = 2
    similar_above: float = 0.9
    cut_above: float = 0.5
    gain_above: float | None = None
    sample_per_class: int = 40
    max_sample: int = 800
    bn_shift: bool = False


@dataclass
class Advice:
    """What the advisor decided and why (written to advice.json)."""

    choice: str
    strategy: str
    feature_layer: str | None
    unfreeze_from: str | None
    examples_per_class: float
    size: str
    similarity: str
    reason: str
    signals: dict[str, float | None] = field(default_factory=dict)
    meanings: dict[str, str] = field(default_factory=dict)
    probes: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_MEANINGS = {
    "top_probe": "linear-probe score of the top layer's pooled features (0 chance, 1 perfect)",
    "best_probe": "best linear-probe score over the stage ends of the backbone",
    "top_vs_best": "top_probe / best_probe: 1 when the top layer is as good as any depth "
                   "(similar data); low when an earlier depth is better (different data)",
    "random_best_probe": "best probe score of the same architecture with random weights "
                         "(measured only for the optional gain_above rule)",
    "transfer_gain": "best_probe - random_best_probe: what the pretrained weights add",
    "bn_similarity": "exp(-KL) between the sample's BatchNorm input statistics and the "
                     "stored moving statistics (1: same; measured only with bn_shift, "
                     "never used to decide)",
}


def examples_per_class(splits: Splits) -> float:
    """Training examples per class (the mean over classes)."""
    return splits.size("train") / max(1, len(splits.class_names))


def _min_per_class(splits: Splits) -> int:
    counts = np.bincount(splits.labels.get("train", np.zeros(0, int)),
                         minlength=len(splits.class_names))
    return int(counts.min()) if len(counts) else 0


def _signals(measurement) -> dict[str, float | None]:
    best = measurement.best()
    top = measurement.pretrained[-1]
    random_best = max((p.score for p in measurement.random), default=None)
    return {
        "top_probe": round(top.score, 4),
        "best_probe": round(best.score, 4),
        "top_vs_best": round(top.score / best.score, 4) if best.score > 0 else 0.0,
        "random_best_probe": None if random_best is None else round(random_best, 4),
        "transfer_gain": (None if random_best is None
                          else round(max(0.0, best.score - random_best), 4)),
        "bn_similarity": (None if measurement.bn_similarity is None
                          else round(measurement.bn_similarity, 4)),
    }


def decide(
    per_class: float, signals: dict, best_layer: str, top_layer: str, settings: AdvisorSettings,
) -> tuple[str, str, str, str]:
    """The matrix: (choice, size, similarity, reason) from size and the probe signals."""
    size = "lots" if per_class >= settings.lots_per_class else "little"
    similar = signals["top_vs_best"] >= settings.similar_above
    similarity = "similar" if similar else "different"
    facts = (f"{per_class:.0f} training examples per class ({size}: threshold "
             f"{settings.lots_per_class}); the top layer's probe scores {signals['top_probe']:.2f}"
             f" against {signals['best_probe']:.2f} at the best depth ({best_layer}), ratio "
             f"{signals['top_vs_best']:.2f} ({similarity}: threshold {settings.similar_above})")
    if size == "little" and similar:
        if per_class < settings.few_per_class:
            return ("feature_extraction", size, similarity,
                    f"{facts}; fewer than {settings.few_per_class} per class: train the head "
                    "only, fine-tuning would overfit")
        return "fine_tune_top", size, similarity, f"{facts}: fine-tune the top of the backbone"
    if size == "little":
        if best_layer == top_layer:
            return "feature_extraction", size, similarity, f"{facts}: train the head only"
        return ("earlier_layer_cut", size, similarity,
                f"{facts}: the top layers are too specific; put the head on {best_layer}")
    if similar:
        return "fine_tune_all", size, similarity, f"{facts}: fine-tune all layers"
    best_probe, gain = signals["best_probe"], signals.get("transfer_gain")
    if best_layer == top_layer or best_probe < settings.cut_above:
        return ("from_scratch", size, similarity,
                f"{facts}; no earlier depth probes {settings.cut_above} or more: lots of "
                "different data, re-use the architecture and train from scratch")
    if settings.gain_above is not None and (gain or 0.0) < settings.gain_above:
        return ("from_scratch", size, similarity,
                f"{facts}; the pretrained features beat random ones by {gain or 0.0:.2f} only "
                f"(< {settings.gain_above}): re-use the architecture and train from scratch")
    return ("earlier_layer_cut", size, similarity,
            f"{facts}; {best_layer} probes {best_probe:.2f} (>= {settings.cut_above}): "
            f"lots of different data, put the head on {best_layer}")


def _unfreeze_from(layer_names: list[str], choice: str) -> str | None:
    """Suggested unfreeze depth for fine_tune_top: the first layer of the top 30%.

    On bench/advisor.py's flowers task, unfreezing only the last stage (4%) scored 10
    points below the top 30%, so the advice names the tested default explicitly.
    """
    if choice != "fine_tune_top" or len(layer_names) < 2:
        return None
    layers = layer_names[1:]  # without the input layer, as `strategies` counts them
    return layers[len(layers) - math.ceil(DEFAULT_UNFREEZE_FRACTION * len(layers))]


def _too_small(per_class: float, smallest: int, settings: AdvisorSettings) -> Advice:
    reason = (f"only {smallest} training example(s) in the smallest class (< "
              f"{settings.min_per_class}): too few to measure similarity; falling back to "
              "feature extraction")
    logger.warning("Strategy auto: %s.", reason)
    return Advice("feature_extraction", "feature_extraction", None, None, round(per_class, 2),
                  "too_small", "unmeasured", reason)


def advise(
    config: RunConfig, splits: Splits, settings: AdvisorSettings | None = None
) -> Advice:
    """Measures `splits` against the backbone of `config` and picks a strategy.

    Args:
        config: a resolved run config (image size set); its backbone and weights are probed.
        splits: image data.
        settings: decision thresholds (defaults: `AdvisorSettings()`).

    Returns:
        The Advice (choice, strategy, cut, unfreeze depth, numbers, reason).
    """
    from tfxfer.auto.probes import measure

    settings = settings or AdvisorSettings()
    if splits.modality != IMAGE:
        raise ValueError(f"The advisor measures image backbones; {splits.source} holds "
                         f"{splits.modality} data. Choose --strategy explicitly.")
    per_class, smallest = examples_per_class(splits), _min_per_class(splits)
    if smallest < settings.min_per_class:
        return _too_small(per_class, smallest, settings)
    # Random weights matter only to the optional gain rule for lots of data.
    lots = per_class >= settings.lots_per_class
    measurement = measure(config, splits, settings.sample_per_class, settings.max_sample,
                          random=lots and settings.gain_above is not None,
                          bn_shift=settings.bn_shift)
    signals = _signals(measurement)
    best, top = measurement.best().layer, measurement.pretrained[-1].layer
    choice, size, similarity, reason = decide(per_class, signals, best, top, settings)
    probes = [{"weights": "pretrained", **dataclasses.asdict(p)} for p in measurement.pretrained]
    probes += [{"weights": "random", **dataclasses.asdict(p)} for p in measurement.random]
    advice = Advice(
        choice, CHOICES[choice], best if choice == "earlier_layer_cut" else None,
        _unfreeze_from(measurement.layers, choice), round(per_class, 2), size,
        similarity, reason, signals, dict(_MEANINGS), probes, round(measurement.seconds, 2),
    )
    logger.info("Advice: %s (%s)", advice.choice, advice.reason)
    return advice


def best_feature_layer(config: RunConfig, splits: Splits,
                       settings: AdvisorSettings | None = None) -> str | None:
    """`feature_layer: auto` alone: the best-probing stage end (None when it is the top)."""
    from tfxfer.auto.probes import measure

    settings = settings or AdvisorSettings()
    measurement = measure(config, splits, settings.sample_per_class, settings.max_sample,
                          random=False, bn_shift=False)
    best = measurement.best().layer
    return None if best == measurement.pretrained[-1].layer else best


def apply_advice(config: RunConfig, advice: Advice) -> RunConfig:
    """`config` with the advised strategy, cut and unfreeze depth (user choices kept).

    The epoch budget is kept: a head-only choice trains the head for
    `epochs + fine_tune_epochs`, as `from_scratch` trains one phase of both.
    """
    model, train = config.model, config.train
    if advice.strategy == "feature_extraction" and train.fine_tune_epochs:
        logger.info("Head only: training it for %d + %d epochs", train.epochs,
                    train.fine_tune_epochs)
        train = dataclasses.replace(train, epochs=train.epochs + train.fine_tune_epochs,
                                    fine_tune_epochs=0)
    image = model.section(IMAGE)
    layer = image.feature_layer
    if layer in (None, "auto"):
        layer = advice.feature_layer
    unfreeze = {}
    chosen = [train.unfreeze_layers, train.unfreeze_from, train.unfreeze_fraction]
    if advice.unfreeze_from and all(v is None for v in chosen):
        unfreeze = {"unfreeze_from": advice.unfreeze_from}
    return dataclasses.replace(
        config,
        model=dataclasses.replace(model, image=dataclasses.replace(image, feature_layer=layer)),
        train=dataclasses.replace(train, strategy=advice.strategy, **unfreeze),
    )


def write_advice(run_dir: str | Path, advice: Advice) -> Path:
    path = Path(run_dir) / ADVICE
    path.write_text(json.dumps(advice.to_dict(), indent=2) + "\n")
    return path


def format_advice(advice: Advice) -> str:
    """The advice as a few lines of text (`tfxfer advise`)."""
    lines = [f"strategy: {advice.strategy} ({advice.choice})"]
    if advice.feature_layer:
        lines.append(f"feature layer: {advice.feature_layer}")
    if advice.unfreeze_from:
        lines.append(f"unfreeze from: {advice.unfreeze_from}")
    lines.append(f"size: {advice.examples_per_class:g} examples per class ({advice.size}); "
                 f"similarity: {advice.similarity}")
    lines += [f"  {name:<18} {value}" for name, value in advice.signals.items()]
    if advice.probes:
        lines.append("probes (normalised score by depth):")
        lines += [f"  {p['weights']:<10} {p['layer']:<28} depth {p['depth']:.2f}  "
                  f"score {p['score']:.3f}" for p in advice.probes]
    lines.append(f"reason: {advice.reason}")
    lines.append(f"measured in {advice.seconds:.1f} s")
    return "\n".join(lines)
