"""One training command repeated over seeds: mean ± sd of every test metric.

`tfxfer train ... --repeats N` runs the same config N times with `data.seed` = S, S+1,
..., S+N-1 (S the config's seed). The seed sets the train/validation/test split, the
shuffling and the head's initialisation, so the spread says how much one run's number
can be trusted. Each run goes to `OUT/seed-<seed>` (OUT: `--out`, default
`runs/<timestamp>`); `OUT/repeats.json` holds every
run's scalar test metrics and, per metric, the mean, sample standard deviation, min
and max.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import statistics
from dataclasses import dataclass
from pathlib import Path

from tfxfer import rundir
from tfxfer.config import RunConfig

logger = logging.getLogger(__name__)

REPEATS = "repeats.json"
# Numbers of metrics.json that are not metrics (counts, the interval level, a baseline).
_SKIPPED = {"examples", "interval_level", "mae_of_train_mean"}


def scalar_metrics(metrics: dict, prefix: str = "") -> dict[str, float]:
    """The numbers of a metrics.json dict, nested outputs as `output.metric`."""
    found: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            inner = f"{prefix}{key}." if key != "outputs" else prefix
            found.update(scalar_metrics(value, inner))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) \
                and key not in _SKIPPED:
            found[prefix + key] = float(value)
    return found


@dataclass
class Repeats:
    """The runs of one repeated command and their summary."""

    seeds: list[int]
    runs: list[dict]

    def summary(self) -> dict[str, dict[str, float]]:
        """metric -> mean, sd (sample; 0 for one run), min, max over the runs."""
        names = [name for name in self.runs[0]["metrics"]
                 if all(name in run["metrics"] for run in self.runs)]
        out = {}
        for name in names:
            values = [run["metrics"][name] for run in self.runs]
            out[name] = {"mean": statistics.fmean(values),
                         "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
                         "min": min(values), "max": max(values)}
        return out

    def as_dict(self) -> dict:
        return {"seeds": self.seeds, "runs": self.runs, "summary": self.summary()}

    def table(self) -> str:
        lines = [f"{len(self.runs)} runs, seeds {', '.join(map(str, self.seeds))}: "
                 "mean ± sd [min, max]"]
        for name, s in self.summary().items():
            lines.append(f"  {name:<24} {s['mean']:.4f} ± {s['sd']:.4f} "
                         f"[{s['min']:.4f}, {s['max']:.4f}]")
        return "\n".join(lines)


def check_repeatable(config: RunConfig, repeats: int, resume: str | None) -> None:
    """Raises ValueError when `repeats` cannot apply to this command."""
    if repeats < 1:
        raise ValueError(f"--repeats must be at least 1. Received: {repeats}")
    if resume:
        raise ValueError("--repeats cannot be combined with --resume: resume one of the "
                         "runs under OUT/seed-<seed> instead.")
    if config.data.unlabelled_source:
        raise ValueError("--repeats is not supported with --unlabelled-data (self-training "
                         "writes its own rounds).")


def train_repeated(config: RunConfig, repeats: int) -> Repeats:
    """Trains `config` `repeats` times over consecutive seeds; writes OUT/repeats.json."""
    from tfxfer.experiment import resolve_config, train

    check_repeatable(config, repeats, None)
    base = Path(config.out or resolve_config(config).out)
    if base.exists() and any(base.iterdir()):
        raise ValueError(f"--out {base} exists and is not empty; runs are never overwritten.")
    seeds = [config.data.seed + i for i in range(repeats)]
    runs = []
    for seed in seeds:
        run_config = dataclasses.replace(
            config, data=dataclasses.replace(config.data, seed=seed),
            out=str(base / f"seed-{seed}"))
        logger.info("Repeat %d of %d: seed %d -> %s", len(runs) + 1, repeats, seed,
                    run_config.out)
        result = train(run_config)
        written = Path(result.run_dir) / rundir.METRICS
        metrics = json.loads(written.read_text()) if written.exists() else {}
        if not metrics:  # known after the first run: the others would not have any either
            raise ValueError(f"The run {result.run_dir} has no test metrics (no test split): "
                             "nothing to repeat.")
        runs.append({"seed": seed, "run_dir": str(result.run_dir),
                     "metrics": scalar_metrics(metrics)})
    repeated = Repeats(seeds, runs)
    (base / REPEATS).write_text(json.dumps(repeated.as_dict(), indent=2))
    return repeated
