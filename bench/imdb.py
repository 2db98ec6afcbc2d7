"""Benchmark: wall time of the full two-phase IMDB run, from a cold cache.

Runs the IMDB app's configuration on the official 25k/25k CSVs with a fresh, empty
cache directory, so the time includes building the GloVe encoder SavedModel, caching
the phase-1 review vectors, both phases and the evaluation on 25,000 test reviews.

    python bench/imdb.py --train ../shared/assets/imdb/imdb_train.csv \\
        --test ../shared/assets/imdb/imdb_test.csv

Goal: <= 5 minutes on the reference 2-core CPU, with >= 88.0% test accuracy.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

from tfxfer.config import load_config
from tfxfer.experiment import train
from tfxfer.utils.cache import CACHE_ENV

APP_CONFIG = Path(__file__).parents[1] / "apps" / "imdb" / "config.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True)
    parser.add_argument("--test", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory() as tmp:
        os.environ[CACHE_ENV] = str(Path(tmp, "cache"))  # cold: the encoder is built too
        config = load_config(APP_CONFIG, {
            "data": {"source": args.train, "test_source": args.test},
            "train": {"verbose": 0},
            "out": str(Path(tmp, "run")),
        })
        start = time.perf_counter()
        result = train(config)
        seconds = time.perf_counter() - start
    phases = ", ".join(f"{p.name} {p.epochs_run} epochs {p.seconds:.0f} s"
                       for p in result.history.phases)
    print(f"IMDB {result.splits.size('train')} train / {result.splits.size('val')} val / "
          f"{result.splits.size('test')} test reviews, encoder {result.config.model.text.encoder}")
    print(f"phases: {phases}")
    print(f"test accuracy {result.evaluation.accuracy:.4f} (goal >= 0.880)")
    print(f"wall time {seconds:.0f} s = {seconds / 60:.1f} min (goal <= 5 min)")


if __name__ == "__main__":
    main()
