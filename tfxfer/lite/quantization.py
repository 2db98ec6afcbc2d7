"""The quantization modes of an on-device (LiteRT / TFLite) export.

One frozen spec per mode, looked up by name:

    none      float32 weights and activations             (reference)
    float16   float16 weights, float32 compute             about 1/2 the size
    dynamic   int8 weights, float activations (quantized    about 1/4 the size
              on the fly per tensor)
    int8      int8 weights and activations, calibrated on   about 1/4 the size,
              a representative set; uint8 or int8 input      integer-only kernels
              and output with scale / zero point

`max_accuracy_drop` is how many accuracy points the converted model may lose
against the Keras model on the run's test split before the export refuses to
publish (without `--force`); a drop of one example is always allowed (on a
180-image test split one example is 0.56 points).
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_QUANTIZATION = "dynamic"
# Training images the int8 mode calibrates on ("a few hundred").
DEFAULT_REPRESENTATIVE_EXAMPLES = 300
INT8_IO_TYPES = ("uint8", "int8")


@dataclass(frozen=True)
class QuantizationSpec:
    """How one quantization mode converts and how much accuracy it may lose.

    Attributes:
        name: the mode's name (`--quantize NAME`).
        description: one line for help texts and reports.
        max_accuracy_drop: accuracy points (0-100) the export may lose on the
            test split against the Keras model.
        needs_representative: calibration data are needed (full-integer).
    """

    name: str
    description: str
    max_accuracy_drop: float
    needs_representative: bool = False


QUANTIZATIONS: dict[str, QuantizationSpec] = {
    spec.name: spec
    for spec in (
        QuantizationSpec("none", "float32 weights and activations", 0.5),
        QuantizationSpec("float16", "float16 weights, float32 compute", 0.5),
        QuantizationSpec("dynamic", "int8 weights, float activations (dynamic range)", 1.0),
        QuantizationSpec(
            "int8", "int8 weights and activations, integer input/output (full integer)", 2.0,
            needs_representative=True,
        ),
    )
}


def list_quantizations() -> list[str]:
    return list(QUANTIZATIONS)


def get_quantization(name: str) -> QuantizationSpec:
    """The spec of mode `name`; an error listing the valid names otherwise."""
    try:
        return QUANTIZATIONS[name]
    except KeyError:
        raise ValueError(
            f"Unknown quantization {name!r}; expected one of {', '.join(QUANTIZATIONS)}."
        ) from None


def validate_io_type(io_type: str) -> str:
    if io_type not in INT8_IO_TYPES:
        raise ValueError(
            f"The int8 input/output type must be one of {', '.join(INT8_IO_TYPES)}. "
            f"Received: {io_type!r}"
        )
    return io_type
