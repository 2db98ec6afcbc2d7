"""Accelerator options: dtype policy and multi-device distribution.

Both are explicit options. On this project's reference CPU (AVX2, oneDNN on)
float32 without XLA is fastest; on GPUs mixed_float16 and several replicas pay.
"""

from __future__ import annotations

import logging

import keras
import tensorflow as tf

from tfxfer.runtime.distribute import multi_worker_strategy, wants_multi_worker

logger = logging.getLogger(__name__)


def set_precision(mixed_precision: bool) -> str:
    """Sets the global Keras dtype policy: mixed_float16 on GPU, mixed_bfloat16 on CPU."""
    policy = "float32"
    if mixed_precision:
        on_gpu = bool(tf.config.list_physical_devices("GPU"))
        policy = "mixed_float16" if on_gpu else "mixed_bfloat16"
        if not on_gpu:
            logger.warning("Mixed precision on CPU (%s) is usually slower than float32.", policy)
    keras.mixed_precision.set_global_policy(policy)
    return policy


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
