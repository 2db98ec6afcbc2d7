"""Verification of a converted model against the Keras model on the test split.

The .tflite file is run with the LiteRT interpreter on every test image (one
at a time, as on a device) and compared with the Keras model on the same
decoded images: accuracy of both, top-1 agreement, the largest probability
difference. The export is refused when the converted model loses more accuracy
points than its quantization mode allows (`QuantizationSpec.max_accuracy_drop`),
or than one example, whichever is more: on a 180-image test split one flipped
example is 0.56 points, which a bound of 0.5 would otherwise refuse.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np

from tfxfer.lite.quantization import get_quantization
from tfxfer.lite.runtime import LiteClassifier
from tfxfer.utils.progress import progress

logger = logging.getLogger(__name__)


class LiteVerificationError(ValueError):
    """The converted model lost more accuracy than its quantization mode allows."""


@dataclass
class LiteVerifyReport:
    """How the converted model compares with the Keras model on labelled images.

    Attributes:
        split: which split the images came from ("test").
        examples: number of images.
        keras_accuracy: accuracy of the Keras model (0-1).
        tflite_accuracy: accuracy of the converted model (0-1).
        accuracy_drop_points: (keras - tflite) accuracy in points (0-100).
        max_accuracy_drop: the bound applied, in points: the mode's bound or one
            example (100 / examples), whichever is larger.
        top1_agreement: share of images where both predict the same class.
        max_abs_diff: largest |probability difference| over all images and classes.
        mean_abs_diff: mean |probability difference|.
        passed: accuracy_drop_points <= max_accuracy_drop.
    """

    split: str
    examples: int
    keras_accuracy: float
    tflite_accuracy: float
    accuracy_drop_points: float
    max_accuracy_drop: float
    top1_agreement: float
    max_abs_diff: float
    mean_abs_diff: float
    passed: bool

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        return (
            f"{self.split} split, {self.examples} images: accuracy {self.tflite_accuracy:.4f} "
            f"(Keras {self.keras_accuracy:.4f}, drop {self.accuracy_drop_points:+.2f} points, "
            f"bound {self.max_accuracy_drop:.2f}), top-1 agreement {self.top1_agreement:.4f}, "
            f"max |probability difference| {self.max_abs_diff:.3g}"
        )


def compare(
    keras_probabilities: np.ndarray, tflite_probabilities: np.ndarray, labels: np.ndarray,
    quantization: str, split: str = "test",
) -> LiteVerifyReport:
    """The report for two sets of probabilities [N, C] of the same labelled images."""
    if keras_probabilities.shape != tflite_probabilities.shape:
        raise ValueError(f"Probabilities of different shapes: {keras_probabilities.shape} and "
                         f"{tflite_probabilities.shape}")
    if len(labels) == 0:
        raise ValueError("Nothing to verify on: the split is empty.")
    labels = np.asarray(labels)
    keras_top, lite_top = keras_probabilities.argmax(1), tflite_probabilities.argmax(1)
    keras_accuracy = float(np.mean(keras_top == labels))
    lite_accuracy = float(np.mean(lite_top == labels))
    drop = 100.0 * (keras_accuracy - lite_accuracy)
    bound = max(get_quantization(quantization).max_accuracy_drop, 100.0 / len(labels))
    diff = np.abs(keras_probabilities.astype(np.float64) - tflite_probabilities)
    return LiteVerifyReport(
        split=split, examples=int(len(labels)), keras_accuracy=keras_accuracy,
        tflite_accuracy=lite_accuracy, accuracy_drop_points=drop, max_accuracy_drop=bound,
        top1_agreement=float(np.mean(keras_top == lite_top)), max_abs_diff=float(diff.max()),
        mean_abs_diff=float(diff.mean()), passed=drop <= bound + 1e-9,
    )


def verify(
    classifier: LiteClassifier, images: np.ndarray, labels: np.ndarray,
    keras_probabilities: np.ndarray, quantization: str, split: str = "test",
) -> LiteVerifyReport:
    """Runs `classifier` on `images` and compares it with the Keras probabilities."""
    bar = progress(images, total=len(images), desc=f"verifying {quantization} on {split}",
                   unit="image")
    lite = np.stack([classifier.predict_one(image) for image in bar])  # batch 1, as on a phone
    report = compare(keras_probabilities, lite, labels, quantization, split)
    logger.info("LiteRT %s: %s", quantization, report.summary())
    return report
