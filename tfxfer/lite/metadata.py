"""What travels with the .tflite file: labels and a description of its input and output.

    labels.txt          class names, one per line, in class-id order (output index i)
    tflite_report.json  "input"/"output": dtype, shape, scale and zero point, and how
                        the app feeds the model (see `io_description`)

Why the labels are not embedded as TFLite metadata: the writers that embed
them need packages that do not install beside TensorFlow 2.21 (checked on
Python 3.11 with pip): `tflite-support` 0.4.4 (2023, last release) pins
protobuf 3.20 while TensorFlow 2.21 needs protobuf >= 6.31.1; MediaPipe 0.10.x
(whose `mediapipe.tasks` metadata writers replaced it) pins protobuf < 5 and
numpy < 2; MediaPipe 1.2.3 installs, but its wheel lacks the compiled
`mediapipe.tasks.cc.metadata.python._pywrap_metadata_version` that its
`metadata_writers` import, so they fail at import. `ai-edge-litert` 2.3 ships
no metadata writer. An app reads labels.txt (Android: an asset; iOS: a bundle
resource) and the input description below.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tfxfer.lite.runtime import TensorInfo

LABELS_FILE = "labels.txt"


def write_labels(directory: str | Path, class_names: Sequence[str]) -> Path:
    """Writes labels.txt (one class name per line, in output order)."""
    bad = [n for n in class_names if not n or "\n" in n or "\r" in n]
    if bad:
        raise ValueError(f"Labels must be non-empty single lines. Received: {bad}")
    path = Path(directory, LABELS_FILE)
    path.write_text("".join(f"{name}\n" for name in class_names))
    return path


def read_labels(path: str | Path) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Labels file not found: {path} (pass --labels FILE)")
    return path.read_text().splitlines()


def io_description(input_info: TensorInfo, output_info: TensorInfo, backbone: str) -> dict:
    """How an app feeds the model and reads its output, for tflite_report.json."""
    if input_info.quantized:
        feed = (f"RGB pixels p (0-255) quantized as round(p / {input_info.scale:g} + "
                f"{input_info.zero_point}) in {input_info.dtype}")
    else:
        feed = "RGB pixels 0-255 as uint8, no normalisation"
    if output_info.quantized:
        read = (f"probability = (q - {output_info.zero_point}) * {output_info.scale:g}, "
                "index i is line i of labels.txt")
    else:
        read = "float32 probabilities, index i is line i of labels.txt"
    side = input_info.shape[1]
    resize = ("any size: the model resizes" if side < 0
              else f"resized by the app to {side}x{side} (the whole image, not cropped)")
    return {
        "input": {**input_info.to_dict(), "feed": feed, "image": resize,
                  "preprocessing": f"inside the model ({backbone} preprocess_input)"},
        "output": {**output_info.to_dict(), "read": read},
    }
