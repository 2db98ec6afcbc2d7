"""Checks an export the way TF Serving will use it, in processes of its own.

Two processes run side by side:

- `verify_child.py` in an isolated interpreter that imports only TensorFlow (and
  the op libraries the export needs, such as `tensorflow_text` for the tokenizer
  of a transformer, as any process serving it must): it
  loads the SavedModel (no Keras model, no tfxfer layers), calls
  `serving_default` on real encoded inputs and reports signatures and outputs;
- `saved_model_cli show --all`, which must list the signatures.

The outputs are compared with the Keras model run in this process on the same
inputs decoded the same way: probabilities within 1e-5, labels and top-k
consistent with them, signature names, dtypes and shapes as specified in
`tfxfer.serving.contract`.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfxfer.data.pipeline import decode_image
from tfxfer.serving.contract import (
    CLASS_ID,
    CLASS_NAME,
    DEFAULT_SIGNATURE,
    DEFAULT_TOP_K,
    INPUT_KEY,
    PIXELS_KEY,
    PIXELS_SIGNATURE,
    PROBABILITIES,
    TOP_K_CLASS_IDS,
    TOP_K_CLASS_NAMES,
    TOP_K_PROBABILITIES,
    WAVEFORM_KEY,
    WAVEFORM_SIGNATURE,
)
from tfxfer.serving.op_libraries import import_op_libraries

logger = logging.getLogger(__name__)

TOLERANCE = 1e-5
CHILD_SCRIPT = Path(__file__).with_name("verify_child.py")


class VerificationError(ValueError):
    """An export does not behave like its Keras model, or lacks a signature."""


@dataclass
class VerifyCase:
    """One export to check.

    Attributes:
        saved_model: the SavedModel directory.
        inputs: encoded images or text, as sent to `serving_default`.
        expected: the Keras model's probabilities for `inputs`, [N, C].
        class_names: labels in class-id order.
        modality: "image" or "text" (image exports also have `serving_pixels`).
        top_k: the exported K.
    """

    saved_model: Path
    inputs: Sequence[bytes | str]
    expected: np.ndarray
    class_names: Sequence[str]
    modality: str
    top_k: int
    samples: int | None = None  # audio: the clip length of `serving_waveform`


@dataclass
class VerifyReport:
    """The result of a passed verification."""

    saved_model: Path
    examples: int
    max_abs_diff: float
    signatures: dict[str, Any]
    cli_signatures: list[str] = field(default_factory=list)
    cli_output: str = ""


def expected_signatures(modality: str, num_classes: int, k: int,
                        samples: int | None = None) -> dict[str, Any]:
    """The signatures an export must have: name -> inputs/outputs -> dtype and shape.

    `samples` is an audio model's clip length (its waveform signature's width).
    """
    outputs = {
        PROBABILITIES: {"dtype": "float32", "shape": [-1, num_classes]},
        CLASS_ID: {"dtype": "int64", "shape": [-1]},
        CLASS_NAME: {"dtype": "string", "shape": [-1]},
        TOP_K_CLASS_IDS: {"dtype": "int64", "shape": [-1, k]},
        TOP_K_CLASS_NAMES: {"dtype": "string", "shape": [-1, k]},
        TOP_K_PROBABILITIES: {"dtype": "float32", "shape": [-1, k]},
    }
    signatures = {DEFAULT_SIGNATURE: {
        "inputs": {INPUT_KEY: {"dtype": "string", "shape": [-1]}}, "outputs": outputs}}
    if modality == "audio":
        signatures[WAVEFORM_SIGNATURE] = {
            "inputs": {WAVEFORM_KEY: {"dtype": "float32", "shape": [-1, samples or -1]}},
            "outputs": outputs,
        }
    if modality == "image":
        signatures[PIXELS_SIGNATURE] = {
            "inputs": {PIXELS_KEY: {"dtype": "uint8", "shape": [-1, -1, -1, 3]}},
            "outputs": outputs,
        }
    return signatures


def model_batch(
    model: keras.Model, inputs: Sequence[bytes | str], image_size: int | None,
    modality: str | None = None,
) -> tf.Tensor:
    """The batch `model` takes for raw inputs, decoded as in training.

    `image_size` None means text inputs, passed to the model as strings, unless
    `modality` is "audio" (WAV bytes decoded by `tfxfer.audio.decode`).
    """
    if modality == "audio":
        from tfxfer.audio.decode import decode_wav_bytes
        from tfxfer.audio.model import audio_front_end

        rate, samples = audio_front_end(model)
        return tf.stack([decode_wav_bytes(tf.constant(bytes(v)), rate, samples)
                         for v in inputs])
    if image_size is None:
        text = tf.constant([v.encode("utf-8") if isinstance(v, str) else v for v in inputs])
        return tf.expand_dims(text, -1) if len(model.inputs[0].shape) == 2 else text
    images = tf.stack([decode_image(tf.constant(bytes(v)), image_size) for v in inputs])
    return tf.cast(images, keras.backend.standardize_dtype(model.inputs[0].dtype))


def reference_probabilities(
    model: keras.Model, inputs: Sequence[bytes | str], image_size: int | None,
    modality: str | None = None,
) -> np.ndarray:
    """The Keras model's probabilities for raw inputs (`model_batch`)."""
    batch = model_batch(model, inputs, image_size, modality)
    return np.asarray(model(batch, training=False), dtype=np.float32)


def _saved_model_cli() -> str:
    beside = Path(sys.executable).with_name("saved_model_cli")
    found = str(beside) if beside.is_file() else shutil.which("saved_model_cli")
    if not found:
        raise VerificationError("saved_model_cli (installed with tensorflow) was not found.")
    return found


def _encode(value: bytes | str) -> Any:
    return value if isinstance(value, str) else {"b64": base64.b64encode(value).decode()}


def _start(command: list[str]) -> subprocess.Popen:
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _op_libraries(cases: Sequence[VerifyCase]) -> list[str]:
    return sorted({name for c in cases for name in import_op_libraries(c.saved_model)})


def _run_processes(cases: Sequence[VerifyCase], cli: bool, timeout: float):
    """Runs the child and the saved_model_cli calls at once; returns their outputs."""
    with tempfile.TemporaryDirectory(prefix="tfxfer-verify-") as scratch:
        request, response = Path(scratch, "request.json"), Path(scratch, "response.json")
        request.write_text(json.dumps({"imports": _op_libraries(cases), "cases": [
            {"dir": str(c.saved_model), "signature": DEFAULT_SIGNATURE,
             "inputs": [_encode(v) for v in c.inputs]} for c in cases]}))
        processes = [_start([sys.executable, "-I", str(CHILD_SCRIPT), str(request),
                             str(response)])]
        if cli:
            processes += [_start([_saved_model_cli(), "show", "--all", "--dir",
                                  str(c.saved_model)]) for c in cases]
        try:
            outputs = [p.communicate(timeout=timeout) for p in processes]
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        child, shows = processes[0], processes[1:]
        if child.returncode != 0 or not response.is_file():
            raise VerificationError(f"The verification process failed: {outputs[0][1][-3000:]}")
        for case, show, (_, err) in zip(cases, shows, outputs[1:]):
            if show.returncode != 0:
                raise VerificationError(
                    f"saved_model_cli show --all --dir {case.saved_model} failed: {err[-2000:]}")
        return json.loads(response.read_text()), [out for out, _ in outputs[1:]]


def _check_signatures(case: VerifyCase, signatures: dict[str, Any]) -> None:
    expected = expected_signatures(case.modality, len(case.class_names), case.top_k,
                                   case.samples)
    for name, spec in expected.items():
        if signatures.get(name) != spec:
            raise VerificationError(
                f"{case.saved_model}: signature {name!r} is {signatures.get(name)}; "
                f"expected {spec}"
            )


def _check_outputs(case: VerifyCase, outputs: dict[str, Any], tolerance: float) -> float:
    probabilities = np.asarray(outputs[PROBABILITIES], dtype=np.float32)
    if probabilities.shape != case.expected.shape:
        raise VerificationError(f"{case.saved_model}: probabilities have shape "
                                f"{probabilities.shape}; expected {case.expected.shape}")
    diff = float(np.max(np.abs(probabilities - case.expected))) if probabilities.size else 0.0
    if not diff <= tolerance:
        raise VerificationError(
            f"{case.saved_model}: served probabilities differ from the Keras model by "
            f"{diff:.3g} (> {tolerance:g})"
        )
    class_id = np.asarray(outputs[CLASS_ID])
    top_ids = np.asarray(outputs[TOP_K_CLASS_IDS]).reshape(len(class_id), -1)
    top_p = np.asarray(outputs[TOP_K_PROBABILITIES]).reshape(len(class_id), -1)
    names = list(case.class_names)
    checks = {
        "class_id is the argmax": np.array_equal(class_id, probabilities.argmax(axis=-1)),
        "class_name is the label of class_id":
            outputs[CLASS_NAME] == [names[i] for i in class_id],
        "top-k names are the labels of top-k ids":
            outputs[TOP_K_CLASS_NAMES] == [[names[i] for i in row] for row in top_ids],
        "top-k probabilities are those of the top-k ids": np.allclose(
            top_p, np.take_along_axis(probabilities, top_ids, axis=-1), atol=0),
        "top-k is sorted and starts at the maximum": bool(
            np.all(np.diff(top_p, axis=-1) <= 0)
            and np.allclose(top_p[:, 0], probabilities.max(axis=-1), atol=0)),
    }
    failed = [what for what, ok in checks.items() if not ok]
    if failed:
        raise VerificationError(f"{case.saved_model}: outputs are inconsistent: {failed}")
    return diff


def _check_cli(case: VerifyCase, output: str) -> list[str]:
    listed = re.findall(r"signature_def\['([^']+)'\]", output)
    wanted = list(expected_signatures(case.modality, len(case.class_names), case.top_k,
                                   case.samples))
    missing = [name for name in wanted if name not in listed]
    if missing:
        raise VerificationError(
            f"saved_model_cli show --all does not list {missing} for {case.saved_model}")
    return [name for name in listed if not name.startswith("__")]


def verify_saved_models(
    cases: Sequence[VerifyCase], *, tolerance: float = TOLERANCE, cli: bool = True,
    timeout: float = 600,
) -> list[VerifyReport]:
    """Verifies several exports with one fresh TensorFlow process (plus saved_model_cli).

    Raises:
        VerificationError: naming the export and the check that failed.
    """
    response, cli_outputs = _run_processes(cases, cli, timeout)
    if response["tfxfer_imported"]:
        raise VerificationError("The verification process imported tfxfer; it must not.")
    reports = []
    for i, (case, result) in enumerate(zip(cases, response["cases"])):
        if "error" in result:
            raise VerificationError(
                f"{case.saved_model} failed in a TensorFlow-only process: {result['error']}")
        _check_signatures(case, result["signatures"])
        diff = _check_outputs(case, result["outputs"], tolerance)
        listed = _check_cli(case, cli_outputs[i]) if cli else []
        reports.append(VerifyReport(case.saved_model, len(case.inputs), diff,
                                    result["signatures"], listed,
                                    cli_outputs[i] if cli else ""))
        logger.info("Verified %s: %d inputs, max |diff| %.3g", case.saved_model,
                    len(case.inputs), diff)
    return reports


def verify_export(
    saved_model: str | Path,
    model: keras.Model,
    class_names: Sequence[str],
    inputs: Sequence[bytes | str],
    *,
    modality: str,
    image_size: int | None = None,
    top_k: int | None = None,
    tolerance: float = TOLERANCE,
) -> VerifyReport:
    """Verifies one export of `model` on `inputs`.

    Args:
        saved_model: the export to check.
        model: the Keras model it was exported from.
        class_names: labels in class-id order.
        inputs: encoded images or text.
        modality: "image" or "text".
        image_size: side images are decoded to (image models).
        top_k: the exported K (default min(5, classes)).
        tolerance: largest allowed |probability difference|.

    Returns:
        The report; a failed check raises VerificationError.
    """
    if modality == "image" and not image_size:
        raise ValueError("Verifying an image export needs its image_size.")
    size = image_size if modality == "image" else None
    case = VerifyCase(
        Path(saved_model), list(inputs), reference_probabilities(model, inputs, size, modality),
        list(class_names), modality, top_k or min(DEFAULT_TOP_K, len(class_names)),
        int(model.inputs[0].shape[1]) if modality == "audio" else None,
    )
    return verify_saved_models([case], tolerance=tolerance)[0]
