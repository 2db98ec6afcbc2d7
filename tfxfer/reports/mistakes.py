"""The most confident mistakes: for text runs, the table that stands in for the grid."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tfxfer.reports.rundata import Predictions


def most_confident_mistakes(
    predictions: Predictions, class_names: Sequence[str], top: int = 20
) -> list[dict]:
    """Wrong predictions, the most confident first.

    Args:
        predictions: the run's test predictions.
        class_names: label of each class id.
        top: at most this many rows.

    Returns:
        Dicts with `row` (index in predictions.csv), `input` (the text or file,
        "" when not recorded), `true`, `predicted` and `confidence`.
    """
    wrong = np.flatnonzero(~predictions.correct)
    confidence = predictions.confidence
    wrong = wrong[np.argsort(-confidence[wrong], kind="stable")][:top]
    inputs = predictions.inputs
    return [
        {
            "row": int(r),
            "input": inputs[r] if inputs is not None else "",
            "true": class_names[predictions.y_true[r]],
            "predicted": class_names[predictions.y_pred[r]],
            "confidence": float(confidence[r]),
        }
        for r in wrong
    ]
