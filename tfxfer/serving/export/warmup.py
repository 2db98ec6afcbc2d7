"""TF Serving warmup requests: `assets.extra/tf_serving_warmup_requests`.

TF Serving replays these requests when it loads a version, before marking it
available, so the first real request does not pay for graph initialisation.
The file is a TFRecord of `tensorflow.serving.PredictionLog` protos, each
holding a `PredictRequest` (https://www.tensorflow.org/tfx/serving/saved_model_warmup).
`tfxfer.serving.contract.read_warmup` reads them back (as `tfxfer serve` does).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from tfxfer.serving.client import grpc_predict_request
from tfxfer.serving.contract import warmup_path


def write_warmup(
    saved_model_dir: str | Path, values: Sequence[bytes | str], model_name: str
) -> int:
    """Writes one single-input request per value and one request with all of them.

    Returns:
        The number of records written.
    """
    if not values:
        raise ValueError("Warmup needs at least one example input. Received: none")
    path = warmup_path(saved_model_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    batches = [[v] for v in values] + ([list(values)] if len(values) > 1 else [])
    with tf.io.TFRecordWriter(str(path)) as writer:
        for batch in batches:
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(
                    request=grpc_predict_request(batch, model_name)
                )
            )
            writer.write(log.SerializeToString())
    return len(batches)
