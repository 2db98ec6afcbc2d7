"""oneDNN on CPU by default: decided by the entry points before TensorFlow is imported.

TensorFlow turns its oneDNN kernels on by default only on some CPUs (not on AVX2
machines without AVX-512, such as this project's reference CPU), and reads
`TF_ENABLE_ONEDNN_OPTS` once, when it is imported. On such a CPU MobileNetV2
inference runs about 1.7x faster with oneDNN (see `bench/onednn.py`). So the
`tfxfer` command line and the apps call `enable_onednn_default()` first thing:

- an explicit `TF_ENABLE_ONEDNN_OPTS` (any value) always wins;
- when a GPU is in use it is left unset (TensorFlow's GPU default);
- otherwise it is set to "1".

GPU detection must not import TensorFlow (that would be too late). A GPU counts as
in use when the NVIDIA driver lists a GPU under /proc/driver/nvidia/gpus and
`CUDA_VISIBLE_DEVICES` does not hide every device ("" or "-1"). `nvidia-smi` on the
PATH is not used: it is often installed without a usable GPU. Other accelerators
(ROCm, TPU) are not detected; set the variable yourself there.

The decision is kept for the run records (`onednn_record()`, written to phases.json).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

ENV = "TF_ENABLE_ONEDNN_OPTS"
NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")

_decision: str | None = None


def gpu_in_use(nvidia_gpus: Path = NVIDIA_GPUS) -> bool:
    """Whether a CUDA GPU will be visible to TensorFlow, decided without importing it."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    try:
        return any(nvidia_gpus.iterdir())
    except OSError:
        return False


def enable_onednn_default(nvidia_gpus: Path = NVIDIA_GPUS) -> str:
    """Sets TF_ENABLE_ONEDNN_OPTS=1 unless the user set it or a GPU is in use.

    Call it before TensorFlow is imported (entry points only: it changes the process
    environment). Returns and remembers the decision, one of "user", "gpu",
    "tensorflow already imported" or "tfxfer default".
    """
    global _decision
    if ENV in os.environ:
        _decision = "user"
    elif "tensorflow" in sys.modules:
        _decision = "tensorflow already imported"
    elif gpu_in_use(nvidia_gpus):
        _decision = "gpu"
    else:
        os.environ[ENV] = "1"
        _decision = "tfxfer default"
    logger.info("oneDNN: %s=%s (%s)", ENV, os.environ.get(ENV, "unset"), _decision)
    return _decision


def onednn_record() -> dict[str, str | None]:
    """What the run used: the variable's value and who decided it."""
    return {
        ENV: os.environ.get(ENV),
        "decided_by": _decision or "not an entry point (TensorFlow's default unless set)",
    }
