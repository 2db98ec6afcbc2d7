"""Ensembles of finished runs: their probabilities averaged, every choice made on validation.

Two classifiers that err on different examples (a fine-tuned transformer and a bag of
n-grams, two backbones) often score above both when their probabilities are averaged.
`ensemble_runs` reads what the runs wrote (val_predictions.csv and predictions.csv;
no model is run when both are there) and:

1. scales each member's probabilities by a temperature fitted on validation
   (p ** (1/T), renormalised; minimum validation log-loss), so that an overconfident
   member does not outvote a calibrated one;
2. chooses the members' weights on a grid of the simplex by validation log-loss
   (`weights="auto"`), or takes them as given (`"equal"` or numbers);
3. applies both to the test predictions and evaluates the mixture, with the paired
   95% bootstrap interval of its difference to the best member on validation;
4. saves the mixture as one Keras model (`model.keras`: the members under a
   `ProbabilityMixture` layer) with the first member's config.json, so that
   `tfxfer export`, `evaluate` and `predict` take the ensemble directory as a run.

The test split is read only after every choice is made. The runs must have the same
classes and the same validation and test examples in the same order (the same data,
`val_fraction` and `seed`); anything else is refused with the first row that differs.

    tfxfer ensemble runs/minilm runs/bag --out runs/minilm+bag
"""

from __future__ import annotations

import itertools
import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from tfxfer import rundir
from tfxfer.evaluation import Evaluation
from tfxfer.mixture import EPS, ensemble_model
from tfxfer.reports.rundata import Predictions, read_predictions
from tfxfer.utils.stats import bootstrap_interval, format_interval

logger = logging.getLogger(__name__)

ENSEMBLE = "ensemble.json"
# log10 of the temperatures tried: 0.25 to 4.
_LOG_TEMPERATURES = np.linspace(-0.6, 0.6, 49)


@dataclass
class Member:
    """One run's predictions on the validation and test splits."""

    run_dir: Path
    class_names: list[str]
    val: Predictions
    test: Predictions


@dataclass
class EnsembleResult:
    """What `ensemble_runs` chose on validation and what the mixture scored on test.

    Attributes:
        members: the run directories, in the order given.
        temperatures: each member's temperature (1.0 when not fitted).
        weights: each member's weight (they sum to 1).
        val: validation accuracy and log-loss of each member and of the mixture (the
            mixture's are optimistic: its weights were chosen on the same examples).
        member_test: each member's own test accuracy (for comparison, not for choosing).
        evaluation: the mixture on the test split.
        gain_interval: the paired 95% bootstrap interval of the mixture's test accuracy
            minus the test accuracy of the member best on validation.
    """

    members: list[Path]
    temperatures: list[float]
    weights: list[float]
    val: dict
    member_test: list[float]
    evaluation: Evaluation
    gain_interval: tuple[float, float]

    def to_dict(self) -> dict:
        return {
            "members": [str(p) for p in self.members],
            "temperatures": self.temperatures,
            "weights": self.weights,
            "validation": self.val,
            "member_test_accuracy": self.member_test,
            "test_accuracy": self.evaluation.accuracy,
            "test_accuracy_interval": list(self.evaluation.accuracy_interval),
            "gain_over_best_member_interval": list(self.gain_interval),
            "chosen_on": "validation",
        }

    def table(self) -> str:
        """The members and the mixture, as `tfxfer ensemble` prints them."""
        lines = [f"{'run':<40} {'T':>5} {'weight':>6} {'val acc':>8} {'val nll':>8} "
                 f"{'test acc':>8}"]
        for i, path in enumerate(self.members):
            lines.append(f"{str(path)[-40:]:<40} {self.temperatures[i]:>5.2f} "
                         f"{self.weights[i]:>6.2f} {self.val['member_accuracy'][i]:>8.4f} "
                         f"{self.val['member_log_loss'][i]:>8.4f} {self.member_test[i]:>8.4f}")
        lines.append(f"{'ensemble':<40} {'':>5} {'':>6} {self.val['accuracy']:>8.4f} "
                     f"{self.val['log_loss']:>8.4f} {self.evaluation.accuracy:>8.4f}")
        low, high = self.gain_interval
        lines.append(self.evaluation.table())
        lines.append(f"gain over the member best on validation: "
                     f"{self.evaluation.accuracy - self.member_test[self._best]:+.4f} "
                     f"[{low:+.4f}, {high:+.4f}] (paired bootstrap, 95%)")
        return "\n".join(lines)

    @property
    def _best(self) -> int:
        return int(np.argmax(self.val["member_accuracy"]))


def log_loss(y_true: np.ndarray, y_prob: np.ndarray) -> float:
    """Mean negative log-probability of the true class."""
    picked = y_prob[np.arange(len(y_true)), y_true]
    return float(-np.mean(np.log(np.clip(picked, EPS, 1.0))))


def with_temperature(y_prob: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities softened (T > 1) or sharpened (T < 1): p ** (1/T), renormalised."""
    logits = np.log(np.clip(y_prob, EPS, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=1, keepdims=True)


def fit_temperature(y_true: np.ndarray, y_prob: np.ndarray) -> float:
    """The temperature in [0.25, 4] of minimum log-loss on (y_true, y_prob)."""
    losses = [log_loss(y_true, with_temperature(y_prob, 10 ** t)) for t in _LOG_TEMPERATURES]
    return float(10 ** _LOG_TEMPERATURES[int(np.argmin(losses))])


def simplex_grid(members: int) -> np.ndarray:
    """Weight vectors summing to 1 in steps of 0.05 (two or three members) or 0.1."""
    steps = 20 if members <= 3 else 10
    rows = [c for c in itertools.product(range(steps + 1), repeat=members - 1)
            if sum(c) <= steps]
    return np.asarray([[*c, steps - sum(c)] for c in rows], dtype=np.float64) / steps


def mix(probs: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """The weighted mean of the members' probabilities."""
    return np.tensordot(np.asarray(weights), np.stack(probs), axes=1)


def choose_weights(y_true: np.ndarray, probs: Sequence[np.ndarray]) -> np.ndarray:
    """The simplex-grid weights of minimum log-loss of the mixture on (y_true, probs).

    Ties go to the grid point nearest equal weights.
    """
    grid = simplex_grid(len(probs))
    losses = np.asarray([log_loss(y_true, mix(probs, w)) for w in grid])
    best = np.flatnonzero(losses <= losses.min() + 1e-12)
    spread = np.abs(grid[best] - 1.0 / len(probs)).sum(axis=1)
    return grid[best[int(np.argmin(spread))]]


def parse_weights(text: str, members: int) -> str | list[float]:
    """`auto`, `equal` or comma-separated numbers (normalised to sum to 1)."""
    if text in ("auto", "equal"):
        if text == "auto" and members > 6:
            raise ValueError(f"--weights auto searches a grid of up to 6 members; received "
                             f"{members} runs. Use --weights equal or give the weights.")
        return text
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"--weights takes auto, equal or comma-separated numbers; "
                         f"received {text!r}") from None
    if len(values) != members or min(values) < 0 or sum(values) <= 0:
        raise ValueError(f"--weights needs {members} non-negative numbers, not all zero (one "
                         f"per run); received {text!r}")
    return [v / sum(values) for v in values]


def read_member(run_dir: str | Path, class_names: list[str] | None = None) -> Member:
    """A run's validation and test predictions, computing the validation ones if missing.

    A run trained before val_predictions.csv existed is reloaded and its validation
    split predicted once; the file is then written into the run directory.
    """
    run_dir = Path(run_dir)
    names = class_names or rundir.read_labels(run_dir)
    if not (run_dir / rundir.PREDICTIONS).is_file():
        raise FileNotFoundError(f"{run_dir} has no {rundir.PREDICTIONS}: an ensemble needs "
                                "runs evaluated on a test split")
    if not (run_dir / rundir.VAL_PREDICTIONS).is_file():
        _predict_validation(run_dir)
    return Member(run_dir, names, read_predictions(run_dir / rundir.VAL_PREDICTIONS, names),
                  read_predictions(run_dir / rundir.PREDICTIONS, names))


def _predict_validation(run_dir: Path) -> None:
    from tfxfer.data.sources import load_splits
    from tfxfer.experiment import write_val_predictions

    logger.info("%s has no %s: predicting its validation split", run_dir,
                rundir.VAL_PREDICTIONS)
    config, model, class_names = rundir.load_run(run_dir)
    if config.continual.parent:
        raise ValueError(f"{run_dir} is a continual run without {rundir.VAL_PREDICTIONS}; "
                         "its validation split cannot be rebuilt here")
    splits = load_splits(config.data, config.model.image_input_size, config.model.audio)
    if splits.class_names != class_names or not splits.size("val"):
        raise ValueError(f"{run_dir}: its data ({config.data.source}) now gives classes "
                         f"{splits.class_names} and {splits.size('val')} validation examples; "
                         f"the run was trained on {class_names}")
    write_val_predictions(run_dir, model, splits, config.data)


def check_aligned(members: Sequence[Member]) -> None:
    """Refuses members whose validation or test splits are not the same examples."""
    first = members[0]
    for member in members[1:]:
        for split in ("val", "test"):
            a, b = getattr(first, split), getattr(member, split)
            where = f"{first.run_dir} and {member.run_dir}"
            if len(a) != len(b):
                raise ValueError(f"{where} have {len(a)} and {len(b)} {split} examples: an "
                                 "ensemble needs the same data, val_fraction and seed")
            differs = np.flatnonzero(a.y_true != b.y_true)
            if a.inputs is not None and b.inputs is not None:
                differs = np.union1d(differs, [i for i, (x, y) in
                                               enumerate(zip(a.inputs, b.inputs)) if x != y])
            if len(differs):
                raise ValueError(f"{where}: {split} example {int(differs[0])} differs "
                                 f"({len(differs)} examples differ); an ensemble needs the "
                                 "same examples in the same order (same data, val_fraction "
                                 "and seed)")


def choose_on_validation(members: Sequence[Member], weights: str | Sequence[float],
                         temperature: bool) -> tuple[list[float], np.ndarray, dict]:
    """The temperatures, the weights and the validation scores, from validation alone."""
    y_val = members[0].val.y_true
    temps = [fit_temperature(y_val, m.val.y_prob) if temperature else 1.0 for m in members]
    val_probs = [with_temperature(m.val.y_prob, t) for m, t in zip(members, temps)]
    if weights == "auto":
        chosen = choose_weights(y_val, val_probs)
    elif weights == "equal":
        chosen = np.full(len(members), 1.0 / len(members))
    else:
        chosen = np.asarray(weights, dtype=np.float64)
    val_mix = mix(val_probs, chosen)
    val = {
        "examples": int(len(y_val)),
        "member_accuracy": [float(np.mean(p.argmax(1) == y_val)) for p in val_probs],
        "member_log_loss": [log_loss(y_val, p) for p in val_probs],
        "accuracy": float(np.mean(val_mix.argmax(1) == y_val)),
        "log_loss": log_loss(y_val, val_mix),
    }
    return temps, chosen, val


def _score_on_test(members: Sequence[Member], temps: Sequence[float], chosen: np.ndarray,
                   val: dict) -> tuple[Evaluation, tuple[float, float]]:
    """The mixture's test evaluation and its paired gain interval over the best member."""
    y_test = members[0].test.y_true
    test_mix = mix([with_temperature(m.test.y_prob, t) for m, t in zip(members, temps)],
                   chosen)
    evaluation = Evaluation(members[0].class_names, y_test, test_mix)
    best = int(np.argmax(val["member_accuracy"]))
    correct = (evaluation.y_pred == y_test).astype(np.float64)
    best_correct = (members[best].test.y_prob.argmax(1) == y_test).astype(np.float64)
    gain = bootstrap_interval(lambda a, b: float(np.mean(a) - np.mean(b)),
                              correct, best_correct)
    return evaluation, gain


def _check_runs(run_dirs: Sequence[str | Path], out: str | Path | None,
                save_model: bool) -> list[str]:
    """The runs' shared class names, or why they cannot be mixed into `out`."""
    if len(run_dirs) < 2:
        raise ValueError(f"An ensemble needs at least two runs; received {len(run_dirs)}")
    if out is not None and Path(out).exists():
        raise FileExistsError(f"{out} exists: give a new directory for the ensemble")
    if save_model and out is not None:
        missing = [str(p) for p in run_dirs if not Path(p, rundir.MODEL).is_file()]
        if missing:
            raise FileNotFoundError(f"No {rundir.MODEL} in {', '.join(missing)}: the ensemble "
                                    "model needs every run's model (--no-model writes the "
                                    "scores only)")
    names = rundir.read_labels(run_dirs[0])
    for path in run_dirs[1:]:
        if rundir.read_labels(path) != names:
            raise ValueError(f"{path} has classes {rundir.read_labels(path)}, "
                             f"{run_dirs[0]} has {names}: an ensemble needs the same classes")
    return names


def ensemble_runs(run_dirs: Sequence[str | Path], out: str | Path | None = None,
                  weights: str | Sequence[float] = "auto", temperature: bool = True,
                  save_model: bool = True) -> EnsembleResult:
    """Combines finished runs; writes metrics.json, predictions.csv and ensemble.json to `out`.

    Args:
        run_dirs: two or more run directories of the same data and classes.
        out: a new directory for the mixture's files (None: write nothing).
        weights: "auto" (chosen on validation), "equal", or one number per run.
        temperature: fit each member's temperature on validation first.
        save_model: also write model.keras and config.json to `out` (the members'
            models are loaded for it), so the directory exports as a run.
    """
    names = _check_runs(run_dirs, out, save_model)
    if isinstance(weights, str):
        weights = parse_weights(weights, len(run_dirs))
    members = [read_member(path, names) for path in run_dirs]
    check_aligned(members)
    temps, chosen, val = choose_on_validation(members, weights, temperature)
    # The test split, only now that every choice is made.
    evaluation, gain = _score_on_test(members, temps, chosen, val)
    result = EnsembleResult([Path(p) for p in run_dirs], temps, [float(w) for w in chosen],
                            val, [float(np.mean(m.test.y_prob.argmax(1) == m.test.y_true))
                                  for m in members], evaluation, gain)
    logger.info("Ensemble of %d runs: weights %s, test accuracy %s", len(members),
                [round(w, 2) for w in result.weights],
                format_interval(evaluation.accuracy, evaluation.accuracy_interval, 4))
    if out is not None:
        _write(Path(out), result, members[0].test.inputs, save_model)
    return result


def _write(out: Path, result: EnsembleResult, inputs: list[str] | None,
           save_model: bool) -> None:
    out.mkdir(parents=True)
    try:
        (out / rundir.LABELS).write_text("\n".join(result.evaluation.class_names) + "\n")
        rundir.write_evaluation(out, result.evaluation, inputs)
        (out / ENSEMBLE).write_text(json.dumps(result.to_dict(), indent=2) + "\n")
        if save_model:
            models = [keras.models.load_model(p / rundir.MODEL, compile=False)
                      for p in result.members]  # no optimizers: they would be exported
            rundir.save_model(out, ensemble_model(models, result.temperatures,
                                                  result.weights))
            shutil.copyfile(result.members[0] / rundir.CONFIG, out / rundir.CONFIG)
            logger.info("Ensemble model written to %s", out / rundir.MODEL)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)  # no half-written ensemble directory
        raise
