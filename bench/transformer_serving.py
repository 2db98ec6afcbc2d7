"""Benchmark: sentences per second through an exported MiniLM classifier, fixed vs dynamic padding.

Builds the IMDB MiniLM classifier (all-MiniLM-L6-v2, `sequence_length` 256 as in
apps/imdb/minilm.yaml; the head is untrained: speed does not depend on it), exports it
twice through tfxfer's TF Serving export, once padding every input to 256 positions
(`dynamic_padding: false`, the old behaviour) and once padding each batch to its
longest input, and scores the first sentence of IMDB test reviews through each
SavedModel's serving signature in batches of 64, as `tfxfer serve` would. A third arm
sends the same sentences to the dynamic export sorted by length (what a batch client
such as `tfxfer predict` can do: a batch then pads to similar lengths). The arms
alternate round by round after a warm-up; the figure is the median over rounds. The
exports' probabilities are compared (they must agree to 1e-5).

    python bench/transformer_serving.py --assets ../shared/assets --sentences 1280

Goal (issue 29): >= 150 one-sentence reviews/s at batch 64 (8.7/s before).
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import re
import statistics
import tempfile
import time
from pathlib import Path

from tfxfer.runtime.onednn import enable_onednn_default

enable_onednn_default()  # as the tfxfer CLI does, before TensorFlow is imported

import numpy as np  # noqa: E402

from tfxfer.config import ModelConfig, TextConfig  # noqa: E402
from tfxfer.serving.contract import DEFAULT_SIGNATURE  # noqa: E402
from tfxfer.serving.export.exporter import export_model  # noqa: E402
from tfxfer.serving.op_libraries import import_op_libraries  # noqa: E402
from tfxfer.text.model import build_text_classifier  # noqa: E402

ARMS = ("fixed", "dynamic", "dynamic-sorted")


def first_sentences(csv_path: Path, count: int) -> list[str]:
    """The first sentence of each review, `<br />` removed, until `count` are read."""
    sentences = []
    with open(csv_path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            text = row["text"].replace("<br />", " ")
            sentence = re.split(r"(?<=[.!?])\s+", text.strip(), maxsplit=1)[0]
            if sentence:
                sentences.append(sentence)
            if len(sentences) == count:
                break
    return sentences


def export_both(encoder: str, base: Path) -> dict:
    """The serving signatures of one model exported with fixed and with dynamic padding."""
    import tensorflow as tf

    text = TextConfig(encoder=encoder, sequence_length=256)
    model = build_text_classifier(ModelConfig(text=text), 2)
    functions = {}
    for dynamic in (False, True):  # the same weights: only the traced padding differs
        model.get_layer("backbone").dynamic_padding = dynamic
        result = export_model(model, ["negative", "positive"], base, f"minilm_{int(dynamic)}",
                              warmup=False)
        import_op_libraries(result.path)
        functions[dynamic] = tf.saved_model.load(str(result.path)).signatures[DEFAULT_SIGNATURE]
    return {"fixed": functions[False], "dynamic": functions[True],
            "dynamic-sorted": functions[True]}


def batched(sentences: list[str], size: int) -> list[list[bytes]]:
    return [[s.encode() for s in sentences[i:i + size]] for i in range(0, len(sentences), size)]


def score(function, batches) -> tuple[float, np.ndarray]:
    import tensorflow as tf

    key = list(function.structured_input_signature[1])[0]
    start = time.perf_counter()
    probs = [function(**{key: tf.constant(batch)})["probabilities"].numpy() for batch in batches]
    return time.perf_counter() - start, np.concatenate(probs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", default=os.environ.get("TFXFER_ASSETS", "../shared/assets"))
    parser.add_argument("--sentences", type=int, default=1280)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    assets = Path(args.assets)
    sentences = first_sentences(assets / "imdb" / "imdb_test.csv", args.sentences)
    order = np.argsort([len(s) for s in sentences], kind="stable")
    batches = {"fixed": batched(sentences, args.batch_size),
               "dynamic": batched(sentences, args.batch_size),
               "dynamic-sorted": batched([sentences[i] for i in order], args.batch_size)}
    words = statistics.mean(len(s.split()) for s in sentences)
    print(f"{len(sentences)} sentences, mean {words:.1f} words, batch {args.batch_size}")

    with tempfile.TemporaryDirectory() as tmp:
        encoder = str(assets / "text" / "all-MiniLM-L6-v2")
        functions = export_both(encoder, Path(tmp))
        for arm in ARMS:  # warm-up: tracing, first-call allocations
            score(functions[arm], batches[arm][:2])
        seconds = {arm: [] for arm in ARMS}
        outputs = {}
        for _ in range(args.rounds):
            for arm in ARMS:
                elapsed, outputs[arm] = score(functions[arm], batches[arm])
                seconds[arm].append(elapsed)
    unsorted = np.empty_like(outputs["dynamic-sorted"])
    unsorted[order] = outputs["dynamic-sorted"]
    gap = max(float(np.abs(outputs["fixed"] - outputs["dynamic"]).max()),
              float(np.abs(outputs["fixed"] - unsorted).max()))
    rates = {arm: len(sentences) / statistics.median(s) for arm, s in seconds.items()}
    for arm in ARMS:
        print(f"{arm:>8}: {rates[arm]:7.1f} sentences/s (median of {args.rounds} rounds; "
              f"{', '.join(f'{s:.1f}' for s in seconds[arm])} s)")
    print(f"speed-up over fixed: dynamic {rates['dynamic'] / rates['fixed']:.1f}x, "
          f"dynamic-sorted {rates['dynamic-sorted'] / rates['fixed']:.1f}x; "
          f"max |probability difference| {gap:.2e}")
    print(f"load average: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
