"""Per-epoch backups of a run and resuming from them after a kill.

At the end of every epoch `EpochBackup` writes RUN_DIR/checkpoints/epoch-NNNN/:

    weights.npz     the classifier's weights (trainable and not, BN statistics) that
                    differ from the phase's base file, by index
    optimizer.npz   the variables of the optimizer of the phase (Adam moments, iterations)
    best.npz        the best-val_loss weights so far, stored the same way (only with
                    train.restore_best)
    state.json      completed epoch, phase name, history rows so far, the base file's
                    name; written last

Every weight is written once per phase, in RUN_DIR/checkpoints/base-NNNN.npz (the
weights after the phase's first epoch, NNNN), and an epoch stores only the arrays
that differ from it: a frozen backbone, most of a model, is not rewritten every
epoch (phase 1 on cached features spends milliseconds an epoch training the head, and
writing every weight of MobileNetV2 twice an epoch took 0.34 s of a 4 s phase 1 under
cProfile; a larger backbone's weights cost proportionally more).

The folder is first written under a temporary name and then renamed, so a
checkpoint either exists whole or not at all: a run killed while writing leaves a
`.epoch-NNNN.tmp-PID-XXXX` folder (`tfxfer.utils.atomic`) that `latest_checkpoint`
never reads (and removes).
Only the two newest checkpoints are kept.

`tfxfer train --resume RUN_DIR` reloads the run's config, rebuilds the model,
loads the newest checkpoint and continues inside the phase it was in: the phase
sets its trainable layers and learning rate as usual, and the optimizer state is
restored when its `fit` begins. The history carries on, so a resumed run ends with
as many history rows as an uninterrupted one. What is not restored: the position
of the shuffling generator (a resumed epoch draws the order of the first epoch of a
fresh pipeline) and EarlyStopping's patience counter.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import keras
import numpy as np

from tfxfer import rundir
from tfxfer.config import RunConfig, config_from_dict
from tfxfer.training.strategies import Phase
from tfxfer.training.trainer import BestWeights, PhaseRecord, TrainingHistory, WeightSnapshots
from tfxfer.utils import atomic

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
STATE = "state.json"
KEEP = 2


class RunFinishedError(RuntimeError):
    """`--resume` of a run that already finished (its model is written)."""


@dataclass
class Checkpoint:
    """A completed epoch to continue from.

    Attributes:
        path: the checkpoint folder.
        epoch: epochs completed over all phases.
        phase: name of the phase that epoch belonged to.
        history: the history rows and finished-phase records up to `epoch`.
    """

    path: Path
    epoch: int
    phase: str
    history: TrainingHistory

    def load_weights(self, model: keras.Model) -> None:
        model.set_weights(self._arrays("weights.npz"))

    def optimizer_values(self) -> list[np.ndarray]:
        with np.load(self.path / "optimizer.npz") as data:
            return [data[f"v{i}"] for i in range(len(data.files))]

    def load_best(self, best: BestWeights) -> None:
        state = json.loads((self.path / STATE).read_text()).get("best")
        if state is None or not (self.path / "best.npz").exists():
            return
        best.best_weights = self._arrays("best.npz")
        best.best, best.best_epoch = state["value"], state["epoch"]

    def _arrays(self, name: str) -> list[np.ndarray]:
        """The weights saved as `name`: the arrays it holds over the phase's base file."""
        base = json.loads((self.path / STATE).read_text()).get("base")
        arrays: dict[int, np.ndarray] = {}
        for path in ([self.path.parent / base] if base else []) + [self.path / name]:
            with np.load(path) as data:  # without a base (older checkpoints): all arrays
                arrays.update({int(key[1:]): data[key] for key in data.files})
        return [arrays[i] for i in range(len(arrays))]


def _save_arrays(path: Path | IO[bytes], arrays: list, prefix: str) -> None:
    np.savez(path, **{f"{prefix}{i}": np.asarray(a) for i, a in enumerate(arrays)})


def _save_changes(path: Path, arrays: list[np.ndarray], base: list[np.ndarray]) -> None:
    """Saves the arrays of `arrays` that differ from `base`, keyed by their index."""
    np.savez(path, **{f"w{i}": a for i, (a, b) in enumerate(zip(arrays, base))
                      if not np.array_equal(a, b)})


def _epoch_dir(root: Path, epoch: int) -> Path:
    return root / f"epoch-{epoch:04d}"


class EpochBackup(keras.callbacks.Callback):
    """Writes a checkpoint of the whole classifier at the end of every epoch.

    `fit_phases` calls `on_phase_begin` before each phase with the history so far
    and the run's BestWeights (saved with each checkpoint). The callback sees the
    model being fit (the classifier, or its head on cached features) for the
    optimizer, and snapshots the whole `classifier` for the weights.

    Args:
        classifier: the model whose weights are saved.
        root: the checkpoints folder, RUN_DIR/checkpoints.
        restore_from: a checkpoint whose optimizer state is restored when the
            fit of its phase begins.
    """

    def __init__(self, classifier: keras.Model, root: Path,
                 restore_from: Checkpoint | None = None) -> None:
        super().__init__()
        self.classifier, self.root = classifier, Path(root)
        self.best: BestWeights | None = None
        self.restore_from = restore_from
        self.phase: Phase | None = None
        self.history = TrainingHistory()
        self.rows: list[dict] = []
        self.base: tuple[str, list[np.ndarray]] | None = None  # (file name, its arrays)
        self.snapshots = WeightSnapshots(classifier)

    def on_phase_begin(self, phase: Phase, history: TrainingHistory,
                       best: BestWeights | None) -> None:
        self.phase, self.history, self.best = phase, history, best
        self.rows = list(history.rows)
        self.base = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.snapshots.begin(self.model)
        point = self.restore_from
        if point is None or point.phase != self.phase.name:
            return
        optimizer = self.model.optimizer
        if not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        values = point.optimizer_values()
        if len(values) != len(optimizer.variables):
            raise ValueError(
                f"Checkpoint {point.path} holds {len(values)} optimizer variables, the "
                f"phase's optimizer has {len(optimizer.variables)}; the model has changed."
            )
        for variable, value in zip(optimizer.variables, values):
            variable.assign(value)
        logger.info("Restored the optimizer state of epoch %d from %s", point.epoch, point.path)
        self.restore_from = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        row = {"epoch": epoch + 1, "phase": self.phase.name,
               "learning_rate": self.phase.learning_rate}
        row.update({k: float(v) for k, v in (logs or {}).items()})
        self.rows.append(row)
        self._write(epoch + 1)

    def _write(self, epoch: int) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        weights = self.snapshots.take()
        base_name, base = self._base(epoch, weights)
        # A rerun of this epoch (a resumed run) replaces its folder.
        with atomic.atomic_dir(_epoch_dir(self.root, epoch), replace=True) as tmp:
            self._write_checkpoint(tmp, epoch, weights, base_name, base)
        for old in _complete_checkpoints(self.root)[:-KEEP]:
            shutil.rmtree(old, ignore_errors=True)
        _remove_unused_bases(self.root)

    def _write_checkpoint(self, tmp: Path, epoch: int, weights: list[np.ndarray],
                          base_name: str, base: list[np.ndarray]) -> None:
        """Writes the files of epoch `epoch`'s checkpoint into the folder `tmp`."""
        _save_changes(tmp / "weights.npz", weights, base)
        _save_arrays(tmp / "optimizer.npz",
                     [v.numpy() for v in self.model.optimizer.variables], "v")
        best = None
        if self.best is not None and self.best.best_weights is not None:
            _save_changes(tmp / "best.npz", self.best.best_weights, base)
            best = {"value": self.best.best, "epoch": self.best.best_epoch}
        state = {
            "epoch": epoch, "phase": self.phase.name, "base": base_name,
            "rows": self.rows, "phases": [vars(p) for p in self.history.phases], "best": best,
        }
        (tmp / STATE).write_text(json.dumps(state, indent=1) + "\n")

    def _base(self, epoch: int, weights: list[np.ndarray]) -> tuple[str, list[np.ndarray]]:
        """The phase's base file, written (atomically) at its first checkpoint."""
        if self.base is None:
            name = f"base-{epoch:04d}.npz"
            with atomic.atomic_file(self.root / name, "wb") as f:
                _save_arrays(f, weights, "w")
            self.base = name, weights
        return self.base


def _remove_unused_bases(root: Path) -> None:
    """Removes the base files that no whole checkpoint refers to any more."""
    used = {json.loads((p / STATE).read_text()).get("base")
            for p in _complete_checkpoints(root)}
    for path in root.glob("base-*.npz"):
        if path.name not in used:
            path.unlink(missing_ok=True)


def _complete_checkpoints(root: Path) -> list[Path]:
    """Renamed (hence whole) checkpoint folders, oldest first."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("epoch-*") if (p / STATE).is_file())


def latest_checkpoint(root: Path) -> Checkpoint | None:
    """The newest whole checkpoint under `root`, or None; removes half-written ones."""
    root = Path(root)
    # The run directory has one writer: every temporary left there is a killed one's.
    for partial in atomic.remove_temps(root, keep_live=False):
        logger.warning("Removed half-written checkpoint %s", partial)
    complete = _complete_checkpoints(root)
    if not complete:
        return None
    path = complete[-1]
    state = json.loads((path / STATE).read_text())
    history = TrainingHistory(
        rows=state["rows"], phases=[PhaseRecord(**p) for p in state["phases"]]
    )
    return Checkpoint(path, state["epoch"], state["phase"], history)


def _differences(a: dict, b: dict, where: str = "") -> list[str]:
    keys = sorted(set(a) | set(b))
    out = []
    for key in keys:
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            out += _differences(x, y, f"{where}{key}.")
        elif x != y:
            out.append(f"{where}{key}: run has {x!r}, command gives {y!r}")
    return out


def resume_config(run_dir: str | Path, config: RunConfig | None = None) -> RunConfig:
    """The config of the run to resume at `run_dir`, checked.

    Args:
        run_dir: a run directory written by `tfxfer train`.
        config: the resolved config the resuming command describes, if it gave one
            (e.g. the same command line with `--resume` added); it must match the
            run's (except train.verbose).

    Raises:
        FileNotFoundError: `run_dir` is not a run directory.
        RunFinishedError: the run finished already.
        ValueError: `config` differs from the run's config.
    """
    run_dir = Path(run_dir)
    if not (run_dir / rundir.CONFIG).is_file():
        raise FileNotFoundError(
            f"Cannot resume {run_dir}: it is not a tfxfer run directory "
            f"(no {rundir.CONFIG}{'' if run_dir.is_dir() else '; the directory does not exist'})."
        )
    if (run_dir / rundir.MODEL).exists():
        raise RunFinishedError(
            f"The run at {run_dir} is finished ({rundir.MODEL} is written); nothing to resume."
        )
    raw = json.loads((run_dir / rundir.CONFIG).read_text())
    saved = config_from_dict(raw)
    saved.out = str(run_dir)
    # Runs written before the audio section have no "audio" key (the default fills it in).
    modality = ("audio" if raw.get("model", {}).get("audio") is not None
                else "image" if saved.model.image is not None else "text")
    saved.model = saved.model.for_modality(modality)
    if config is not None:
        given = dataclasses.replace(
            config, out=str(run_dir), model=config.model.for_modality(modality),
            train=dataclasses.replace(config.train, verbose=saved.train.verbose))
        diff = _differences(saved.to_dict(), given.to_dict())
        if diff:
            raise ValueError(
                f"--resume {run_dir}: the command's config differs from the run's "
                f"({'; '.join(diff)}). Resume with the same flags, or with --resume alone."
            )
    return saved
