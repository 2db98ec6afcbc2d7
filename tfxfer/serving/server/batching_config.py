"""Request batching settings (`BatchingConfig`), apart from the batcher itself.

The `tfxfer serve` command line takes its defaults from here; `batching.py` runs
signatures and imports TensorFlow, which the command line must not load to parse
its arguments.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BatchingConfig:
    """TF Serving's batching parameters that apply here.

    Attributes:
        max_batch_size: most rows in one graph call; a larger request runs alone.
        batch_timeout_micros: how long the first call of a batch waits for others.
    """

    max_batch_size: int = 32
    batch_timeout_micros: int = 2000

    def __post_init__(self):
        if self.max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1. Received: {self.max_batch_size}")
        if self.batch_timeout_micros < 0:
            raise ValueError(f"batch_timeout_micros must be >= 0. Received: "
                             f"{self.batch_timeout_micros}")
