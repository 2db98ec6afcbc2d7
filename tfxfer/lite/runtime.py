"""Runs an exported .tflite classifier with the LiteRT interpreter.

`ai-edge-litert` is LiteRT's own Python runtime (the interpreter an app links
is the same C++ code); it applies the XNNPACK delegate on CPU by default. When
it is not installed, TensorFlow's bundled `tf.lite.Interpreter` is used (same
kernels, deprecated in favour of LiteRT) and a warning says so.

`LiteClassifier` hides the input/output types: it takes uint8 RGB images and
returns float32 probabilities, quantizing the input and dequantizing the output
of a full-integer model with the scale and zero point stored in the model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)


def interpreter_class():
    """LiteRT's `Interpreter`, or TensorFlow's when `ai-edge-litert` is missing."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        logger.warning("ai-edge-litert is not installed; using tf.lite.Interpreter "
                       "(pip install ai-edge-litert)")
        return tf.lite.Interpreter
    return Interpreter


@dataclass(frozen=True)
class TensorInfo:
    """Type, shape and quantization (scale, zero point; (0, 0) = float) of one tensor."""

    dtype: str
    shape: tuple[int, ...]
    scale: float
    zero_point: int

    @classmethod
    def from_details(cls, details: dict) -> TensorInfo:
        scale, zero_point = details["quantization"]
        shape = tuple(int(d) for d in details.get("shape_signature", details["shape"]))
        return cls(np.dtype(details["dtype"]).name, shape, float(scale), int(zero_point))

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0

    def to_dict(self) -> dict:
        return {"dtype": self.dtype, "shape": list(self.shape), "scale": self.scale,
                "zero_point": self.zero_point}


class LiteClassifier:
    """A .tflite classifier: uint8 RGB images in, float32 probabilities out.

    Args:
        model: path of the .tflite file, or its bytes.
        num_threads: interpreter threads (None: the runtime's default).
    """

    def __init__(self, model: str | Path | bytes, num_threads: int | None = None) -> None:
        interpreter = interpreter_class()
        if isinstance(model, (bytes, bytearray)):
            self.interpreter = interpreter(model_content=bytes(model), num_threads=num_threads)
        else:
            if not Path(model).is_file():
                raise FileNotFoundError(f"LiteRT model not found: {model}")
            self.interpreter = interpreter(model_path=str(model), num_threads=num_threads)
        self.interpreter.allocate_tensors()
        inputs = self.interpreter.get_input_details()
        outputs = self.interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(f"Expected one input and one output; the model has {len(inputs)} "
                             f"and {len(outputs)}.")
        self._input, self._output = inputs[0], outputs[0]
        self.input = TensorInfo.from_details(self._input)
        self.output = TensorInfo.from_details(self._output)
        self._shape = tuple(self._input["shape"])

    @property
    def image_size(self) -> int | None:
        """The side the model takes, or None when it takes any size (resize in the model)."""
        side = self.input.shape[1]
        return None if side < 0 else side

    def _quantize(self, image: np.ndarray) -> np.ndarray:
        info = self.input
        if not info.quantized:
            return image.astype(info.dtype)
        limits = np.iinfo(info.dtype)
        values = np.round(image.astype(np.float32) / info.scale + info.zero_point)
        return np.clip(values, limits.min, limits.max).astype(info.dtype)

    def _dequantize(self, values: np.ndarray) -> np.ndarray:
        info = self.output
        if not info.quantized:
            return values.astype(np.float32)
        return ((values.astype(np.float32) - info.zero_point) * info.scale).astype(np.float32)

    def predict_one(self, image: np.ndarray) -> np.ndarray:
        """Probabilities [C] of one uint8 image [H, W, 3] (S x S unless resized in the model)."""
        batch = self._quantize(np.asarray(image)[None])
        if batch.shape != self._shape:
            if self.image_size is not None:
                raise ValueError(f"The model takes {self.image_size}x{self.image_size} images. "
                                 f"Received: {image.shape[0]}x{image.shape[1]}")
            self.interpreter.resize_tensor_input(self._input["index"], batch.shape)
            self.interpreter.allocate_tensors()
            self._shape = batch.shape
        self.interpreter.set_tensor(self._input["index"], batch)
        self.interpreter.invoke()
        return self._dequantize(self.interpreter.get_tensor(self._output["index"])[0])

    def predict(self, images) -> np.ndarray:
        """Probabilities [N, C] of uint8 images, one invocation each (batch 1, as on a phone)."""
        return np.stack([self.predict_one(image) for image in images])
