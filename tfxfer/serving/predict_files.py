"""`tfxfer predict MODEL INPUT...`: many files through a run or an export, in batches.

    MODEL   a run directory (model.keras), a SavedModel version directory, or
            BASE/NAME (its latest version)
    INPUT   image files; folders (searched recursively for images and .txt files);
            .txt files, whose non-empty lines are texts, one input each

Inputs go through the model in batches with a progress bar; texts are batched in
order of length (a transformer export pads each batch to its longest text, so
batches of similar lengths cost less: 164.6 against 52.7 one-sentence reviews/s for
MiniLM, bench/transformer_serving.py), and the results keep the inputs' order. An input the model
cannot read (a corrupt image) is named in a warning and skipped; the others are
still predicted: when a batch fails, its inputs are retried one at a time.
Every predictor returns rows in the SavedModel signature's output names, so
`tfxfer.serving.client.summarize` formats all of them alike.

Example:
    inputs = collect_inputs(["photos/"])
    result = predict_inputs(load_predictor("runs/flowers"), inputs, batch_size=32)
    write_csv(result.records, "out.csv", top_k=3)
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfxfer.modality import IMAGE_EXTENSIONS
from tfxfer.serving.contract import SAVED_MODEL_FILES, list_versions
from tfxfer.utils.progress import progress

logger = logging.getLogger(__name__)

TEXT_SUFFIX = ".txt"

Predict = Callable[[Sequence[bytes | str]], list[dict]]


class InputError(ValueError):
    """An input the model cannot read (e.g. a file that is not a decodable image)."""


@dataclass(frozen=True)
class Input:
    """One thing to predict: its name in the output and the value sent to the model."""

    name: str
    value: bytes | str


@dataclass
class Predictions:
    """What `predict_inputs` returns: one record per predicted input, and what was skipped."""

    records: list[dict[str, Any]]
    skipped: list[tuple[str, str]] = field(default_factory=list)


# ---------------------------------------------------------------- inputs


def collect_inputs(paths: Sequence[str | Path], texts: Sequence[str] = ()) -> list[Input]:
    """The inputs named by files, folders (recursive, sorted) and texts.

    Raises:
        FileNotFoundError: a path does not exist.
        ValueError: nothing to predict (e.g. a folder without images or .txt files).
    """
    inputs: list[Input] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and _readable(p))
            if not found:
                raise ValueError(f"No images ({', '.join(IMAGE_EXTENSIONS)}) or {TEXT_SUFFIX} "
                                 f"files in the folder {path} (searched recursively).")
            for file in found:
                inputs.extend(_file_inputs(file))
        elif path.is_file():
            inputs.extend(_file_inputs(path))
        else:
            raise FileNotFoundError(f"Input not found: {path} (expected an image, a "
                                    f"{TEXT_SUFFIX} file of texts, or a folder of them)")
    inputs.extend(Input(_short(text), text) for text in texts)
    if not inputs:
        raise ValueError("Nothing to predict: give image files, .txt files, folders "
                         "and/or --text.")
    return inputs


def _readable(path: Path) -> bool:
    return path.suffix.lower() in (*IMAGE_EXTENSIONS, TEXT_SUFFIX)


def _file_inputs(path: Path) -> list[Input]:
    """An image file is one input (its bytes); a .txt file gives one per non-empty line."""
    if path.suffix.lower() != TEXT_SUFFIX:
        return [Input(str(path), path.read_bytes())]
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return [Input(f"{path}:{number}", line.strip())
            for number, line in enumerate(lines, start=1) if line.strip()]


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


# ---------------------------------------------------------------- models


def is_run_dir(path: str | Path) -> bool:
    return (Path(path) / "model.keras").is_file() and (Path(path) / "config.json").is_file()


def saved_model_dir(path: str | Path) -> Path:
    """A SavedModel version directory, or the latest version under BASE/NAME."""
    path = Path(path)
    if any((path / name).is_file() for name in SAVED_MODEL_FILES):
        return path
    versions = list_versions(path) if path.is_dir() else []
    if not versions:
        raise FileNotFoundError(
            f"{path} is not a model: expected a run directory (model.keras), a SavedModel "
            "directory (saved_model.pb), or BASE/NAME with version subdirectories.")
    return path / str(versions[-1])


def check_model_path(path: str | Path) -> None:
    """Raises FileNotFoundError unless `path` is a run directory or an export (no TF)."""
    if not is_run_dir(path):
        saved_model_dir(path)


def load_predictor(path: str | Path, top_k: int | None = None) -> Predict:
    """A function from a batch of values to output rows, for a run directory or an export."""
    if is_run_dir(path):
        return _run_dir_predictor(Path(path), top_k)
    return _saved_model_predictor(saved_model_dir(path))


def _run_dir_predictor(run_dir: Path, top_k: int | None) -> Predict:
    import numpy as np
    import tensorflow as tf

    from tfxfer.data.pipeline import decode_image
    from tfxfer.lite.predict import row
    from tfxfer.rundir import load_run
    from tfxfer.serving.contract import DEFAULT_TOP_K

    config, model, class_names = load_run(run_dir)
    k = min(top_k or DEFAULT_TOP_K, len(class_names))
    image = config.model.image is not None
    size = (config.model.image_input_size or int(model.inputs[0].shape[1])) if image else None

    def decode(value: bytes | str) -> Any:
        if isinstance(value, str):
            raise InputError("this is an image model; a text input cannot be predicted")
        try:
            return decode_image(tf.constant(value), size).numpy()
        except tf.errors.InvalidArgumentError as err:
            raise InputError(f"not a decodable image ({err.message.splitlines()[0]})") from err

    def predict(values: Sequence[bytes | str]) -> list[dict]:
        if image:
            batch = np.stack([decode(v) for v in values])
        else:
            batch = tf.constant([v if isinstance(v, str) else v.decode("utf-8", "replace")
                                 for v in values])
        probabilities = np.asarray(model.predict_on_batch(batch))
        return [row(p, class_names, k) for p in probabilities]

    logger.info("Predicting with the %s model of run %s (%d classes)",
                "image" if image else "text", run_dir, len(class_names))
    return predict


def _saved_model_predictor(path: Path) -> Predict:
    import tensorflow as tf

    from tfxfer.serving.client import rows_from_arrays
    from tfxfer.serving.contract import DEFAULT_SIGNATURE, INPUT_KEY
    from tfxfer.serving.op_libraries import import_op_libraries

    import_op_libraries(path)
    function = tf.saved_model.load(str(path)).signatures[DEFAULT_SIGNATURE]

    def predict(values: Sequence[bytes | str]) -> list[dict]:
        data = [v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in values]
        try:
            outputs = function(**{INPUT_KEY: tf.constant(data, dtype=tf.string)})
        except tf.errors.InvalidArgumentError as err:
            raise InputError(err.message.strip().splitlines()[0]) from err
        return rows_from_arrays(outputs)

    logger.info("Predicting with the SavedModel %s", path)
    return predict


# ---------------------------------------------------------------- batches


def predict_inputs(
    predict: Predict,
    inputs: Sequence[Input],
    *,
    batch_size: int = 32,
    errors: tuple[type[Exception], ...] = (InputError,),
) -> Predictions:
    """Runs `inputs` through `predict` in batches; inputs that fail are skipped and named.

    Args:
        predict: from `load_predictor` (or any function of the same form).
        inputs: from `collect_inputs`.
        batch_size: inputs per call.
        errors: the exceptions that mean "this input cannot be read" (a batch raising
            one is retried input by input); others propagate.
    """
    from tfxfer.serving.client import summarize

    done: list[tuple[int, str, dict]] = []  # (position in `inputs`, name, row)
    skipped: list[tuple[str, str]] = []
    order = _batch_order(inputs)
    bar = progress(total=len(inputs), desc="predict", unit="input")
    with bar:
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            try:
                batch_rows = predict([inputs[i].value for i in batch])
                done.extend((i, inputs[i].name, row) for i, row in zip(batch, batch_rows))
            except errors:
                for i in batch:
                    try:
                        done.extend((i, inputs[i].name, row) for row in predict([inputs[i].value]))
                    except errors as err:
                        logger.warning("Skipped %s: %s", inputs[i].name, err)
                        skipped.append((inputs[i].name, str(err)))
            bar.update(len(batch))
    done.sort(key=lambda item: item[0])
    return Predictions(summarize([n for _, n, _ in done], [r for _, _, r in done]), skipped)


def _batch_order(inputs: Sequence[Input]) -> list[int]:
    """The order inputs are sent in: texts by length (stable), anything else as given."""
    positions = list(range(len(inputs)))
    if inputs and all(isinstance(item.value, str) for item in inputs):
        positions.sort(key=lambda i: len(inputs[i].value))
    return positions


# ---------------------------------------------------------------- output


def csv_rows(records: Sequence[dict[str, Any]], top_k: int = 1) -> list[dict[str, Any]]:
    """path,label,probability per record, then label_2,probability_2,... up to `top_k`."""
    table = []
    for record in records:
        line = {"path": record["input"], "label": record.get("class_name", ""),
                "probability": _rounded(record.get("probability"))}
        for rank, top in enumerate(record.get("top_k", [])[1:top_k], start=2):
            line[f"label_{rank}"] = top["class_name"]
            line[f"probability_{rank}"] = _rounded(top["probability"])
        table.append(line)
    return table


def _rounded(value: float | None) -> float | str:
    return "" if value is None else round(float(value), 6)


def to_csv(records: Sequence[dict[str, Any]], top_k: int = 1) -> str:
    """The CSV text of `csv_rows` (header first)."""
    fields = ["path", "label", "probability"]
    fields += [f"{name}_{rank}" for rank in range(2, top_k + 1)
               for name in ("label", "probability")]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(csv_rows(records, top_k))
    return out.getvalue()


def truncate_top_k(records: Sequence[dict[str, Any]], top_k: int) -> list[dict[str, Any]]:
    """`records` with at most `top_k` entries in each record's top_k list."""
    return [{**r, "top_k": r["top_k"][:top_k]} if "top_k" in r else r for r in records]
