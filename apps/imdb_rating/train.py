"""IMDB ratings: predict a review's star rating (regression), alone or with its sentiment.

A task model (`tfxfer.tasks`) on pretrained GloVe 6B 50d word vectors: one shared text
encoder under one head per target. The 25,000 training reviews of
`imdb/imdb_train.csv` are joined row by row with their ratings
(`imdb/imdb_train_ratings.csv`, see shared/assets/MANIFEST.md), 10% kept for
validation; IMDB's own 25,000 test reviews are the test set.

    python apps/imdb_rating/train.py                               # rating (regression)
    python apps/imdb_rating/train.py --multitask                   # sentiment + rating
    python apps/imdb_rating/train.py --multitask --drop-ratings 0.5

`--multitask` stands for `--target label,rating:regression --head-towers --monitor
val_rating_mae`: one hidden layer per head, and the epoch kept is the one with the best
validation rating MAE (chosen on validation: the summed validation loss keeps an epoch
too early for the rating; docs/tasks.md). Flags after it override it.
`--drop-ratings F` removes the rating of a random fraction F of the training reviews
(masked: those rows train the sentiment head only). Settings come from `config.yaml`;
every `tfxfer train` flag overrides it. The reviews come from $TFXFER_ASSETS/imdb
(default ../shared/assets/imdb) unless `--data` / `--test-data` name other review
CSVs, whose ratings are the `*_ratings.csv` files beside them.
"""

import argparse
import dataclasses
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

import tfxfer

CONFIG = Path(__file__).with_name("config.yaml")
ASSETS = Path(os.environ.get("TFXFER_ASSETS", Path(__file__).resolve().parents[2].parent
                             / "shared" / "assets"))


# What `--multitask` stands for (tfxfer train flags; later flags override them).
MULTITASK = ["--target", "label,rating:regression", "--head-towers",
             "--monitor", "val_rating_mae"]


def _own_flags(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--drop-ratings", type=float, default=0.0)
    parser.add_argument("--multitask", action="store_true")
    own, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    return own, (MULTITASK + rest if own.multitask else rest)


def reviews_with_ratings(reviews: str | Path) -> pd.DataFrame:
    """A review CSV joined by position with the `<name>_ratings.csv` beside it."""
    reviews = Path(reviews)
    ratings = reviews.with_name(f"{reviews.stem}_ratings.csv")
    texts = pd.read_csv(reviews, keep_default_na=False)
    stars = pd.read_csv(ratings)
    if len(texts) != len(stars):
        raise ValueError(f"{reviews} has {len(texts)} rows, {ratings} {len(stars)}: they are "
                         "joined row by row.")
    return pd.concat([texts, stars], axis=1)


def main(argv: list[str] | None = None) -> int:
    own, rest = _own_flags(argv)
    config = tfxfer.parse_train_config(rest, config_file=CONFIG, description=__doc__)
    from tfxfer.tasks.table import load_task_frames

    # The data: reviews and ratings joined row by row; the sources are recorded in config.json.
    train_csv = config.data.source if config.data.source.endswith(".csv") else str(
        ASSETS / "imdb" / "imdb_train.csv")
    test_csv = config.data.test_source or str(ASSETS / "imdb" / "imdb_test.csv")
    data = dataclasses.replace(config.data, source=train_csv, test_source=test_csv)
    config = dataclasses.replace(config, data=data)
    train_frame = reviews_with_ratings(train_csv)
    if own.drop_ratings:  # masked labels: these reviews train the sentiment head only
        drop = np.random.default_rng(data.seed).random(len(train_frame)) < own.drop_ratings
        train_frame["rating"] = train_frame["rating"].astype(float).where(~drop)
        print(f"ratings removed from {int(drop.sum())} of {len(train_frame)} training reviews")
    splits = load_task_frames(train_frame, data, reviews_with_ratings(test_csv))

    # The model: one GloVe encoder, one head per target; phase 1 trains the heads on the
    # frozen vectors, phase 2 fine-tunes the word vectors themselves.
    run = tfxfer.Experiment(config)
    run.load_data(splits)
    run.build_model()
    for phase in run.phases:
        run.fit(phase)

    # Test metrics per output (MAE, RMSE, Spearman; accuracy) and the run directory.
    evaluation = run.evaluate()
    if evaluation is not None:
        print(evaluation.table())
    result = run.save()
    print(f"run directory: {result.run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
