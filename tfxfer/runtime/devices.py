"""Accelerator options: dtype policy and multi-device distribution.

Both are explicit options. On an AVX2-only CPU (oneDNN on) float32 without XLA is
fastest; a CPU with bfloat16 instructions (AVX512_BF16 or AMX) runs a transformer
1.3-1.4x faster in mixed_bfloat16 (docs/text.md); on GPUs mixed_float16 and several
replicas pay.
"""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import tensorflow as tf

from tfxfer.runtime.distribute import multi_worker_strategy, wants_multi_worker

logger = logging.getLogger(__name__)


def set_precision(mixed_precision: bool | str) -> str:
    """Sets the global Keras dtype policy and returns its name.

    True: mixed_float16 on a GPU, mixed_bfloat16 on a CPU (warned when the CPU has no
    bfloat16 instructions); "auto": the same where it pays (a GPU, or a CPU with
    bfloat16 instructions), else float32; False: float32.
    """
    on_gpu = bool(tf.config.list_physical_devices("GPU"))
    bfloat16_cpu = not on_gpu and cpu_has_bfloat16()
    if mixed_precision == "auto":
        mixed_precision = on_gpu or bfloat16_cpu
    policy = "float32"
    if mixed_precision:
        policy = "mixed_float16" if on_gpu else "mixed_bfloat16"
        if not on_gpu and not bfloat16_cpu:
            logger.warning("Mixed precision on a CPU without bfloat16 instructions (%s) is "
                           "usually slower than float32.", policy)
    keras.mixed_precision.set_global_policy(policy)
    logger.info("Dtype policy %s.", policy)
    return policy


def cpu_has_bfloat16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether the CPU has bfloat16 arithmetic (the avx512_bf16 or amx_bf16 flag)."""
    try:
        flags = Path(cpuinfo).read_text(errors="replace").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def distribution_strategy(setting: str) -> tf.distribute.Strategy:
    """The tf.distribute strategy for `train.distribute`.

    "auto" runs MultiWorkerMirroredStrategy when TF_CONFIG names several workers,
    else mirrors over all GPUs when there are at least two and otherwise uses
    the default (single-device) strategy; "mirrored" mirrors over the GPUs, or
    over the logical CPU devices when there is no GPU (how the distributed path is
    tested on CPU); "multi_worker" is MultiWorkerMirroredStrategy from TF_CONFIG
    (see `tfxfer.runtime.distribute`); "none" is the default strategy.
    """
    if wants_multi_worker(setting):  # before any device query: it must come first
        return multi_worker_strategy()
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    if setting == "none" or (setting == "auto" and len(gpus) < 2):
        return tf.distribute.get_strategy()
    devices = gpus or [d.name for d in tf.config.list_logical_devices("CPU")]
    strategy = tf.distribute.MirroredStrategy(devices)
    logger.info("MirroredStrategy over %d devices: %s", len(devices), devices)
    return strategy
