"""Request batching: concurrent predict calls on one signature run as one graph call.

As TF Serving's `--enable_batching` (its `max_batch_size` and
`batch_timeout_micros`): calls with the same servable, signature, output filter
and per-row input shapes queue together. The first call of an empty queue leads:
it waits until the queue holds `max_batch_size` rows or `batch_timeout_micros`
have passed, concatenates the inputs along the batch axis, runs the signature
once and hands every caller its rows of the outputs. Rows left over lead the
next batch. Unlike TF Serving, a batch whose graph call fails is retried one
call at a time, so one bad image fails only its own request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence

import numpy as np

from tfxfer.serving.server.batching_config import BatchingConfig
from tfxfer.serving.server.errors import ServingError
from tfxfer.serving.server.predict import run_signature
from tfxfer.serving.server.servable import Servable


class _Call:
    def __init__(self, inputs: Mapping[str, np.ndarray], rows: int):
        self.inputs = inputs
        self.rows = rows
        self.leader = False
        self.woken = threading.Event()
        self.result: dict[str, np.ndarray] | None = None
        self.error: BaseException | None = None

    def answer(self) -> dict[str, np.ndarray]:
        if self.error is not None:
            raise self.error
        return self.result


def _rows(inputs: Mapping[str, np.ndarray]) -> int | None:
    """The common batch size of the inputs, or None when they have none."""
    sizes = {a.shape[0] if a.ndim else None for a in inputs.values()}
    return sizes.pop() if len(sizes) == 1 and None not in sizes else None


class Batcher:
    """Merges concurrent `run_signature` calls (see the module docstring)."""

    def __init__(self, config: BatchingConfig):
        self.config = config
        self._cond = threading.Condition()
        self._queues: dict[tuple, list[_Call]] = {}

    def run(
        self,
        servable: Servable,
        signature_name: str,
        inputs: Mapping[str, np.ndarray],
        output_filter: Sequence[str] = (),
    ) -> dict[str, np.ndarray]:
        """`run_signature`, possibly merged with concurrent calls."""
        rows = _rows(inputs)
        if not rows or rows >= self.config.max_batch_size:
            return run_signature(servable, signature_name, inputs, output_filter)
        key = (id(servable), signature_name, tuple(output_filter),
               tuple(sorted((k, a.shape[1:], a.dtype.str) for k, a in inputs.items())))
        call = _Call(inputs, rows)
        with self._cond:
            queue = self._queues.setdefault(key, [])
            queue.append(call)
            call.leader = len(queue) == 1
            self._cond.notify_all()
        if not call.leader:
            call.woken.wait()
            if not call.leader:
                return call.answer()
        batch = self._collect(key)
        self._execute(servable, signature_name, output_filter, batch)
        return call.answer()

    def _collect(self, key: tuple) -> list[_Call]:
        """The leader's batch: waits for rows or the timeout, then takes up to the limit."""
        limit = self.config.max_batch_size
        deadline = time.monotonic() + self.config.batch_timeout_micros / 1e6
        with self._cond:
            queue = self._queues[key]
            while sum(c.rows for c in queue) < limit:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            batch, total = [], 0
            while queue and (not batch or total + queue[0].rows <= limit):
                call = queue.pop(0)
                batch.append(call)
                total += call.rows
            if queue:  # the rest waits for the next batch, led by its first call
                queue[0].leader = True
                queue[0].woken.set()
            else:
                del self._queues[key]
        return batch

    def _execute(self, servable, signature_name, output_filter, batch: list[_Call]) -> None:
        try:
            if len(batch) > 1:
                self._run_merged(servable, signature_name, output_filter, batch)
            else:
                self._run_alone(servable, signature_name, output_filter, batch[0])
        finally:
            for call in batch[1:]:
                call.woken.set()

    def _run_merged(self, servable, signature_name, output_filter, batch: list[_Call]) -> None:
        merged = {k: np.concatenate([c.inputs[k] for c in batch]) for k in batch[0].inputs}
        total = sum(c.rows for c in batch)
        try:
            outputs = run_signature(servable, signature_name, merged, output_filter)
        except ServingError:
            outputs = None  # e.g. one undecodable image: find out whose, one call at a time
        if outputs is None or any(np.ndim(v) == 0 or len(v) != total for v in outputs.values()):
            for call in batch:
                self._run_alone(servable, signature_name, output_filter, call)
            return
        start = 0
        for call in batch:
            call.result = {k: v[start:start + call.rows] for k, v in outputs.items()}
            start += call.rows

    @staticmethod
    def _run_alone(servable, signature_name, output_filter, call: _Call) -> None:
        try:
            call.result = run_signature(servable, signature_name, call.inputs, output_filter)
        except Exception as err:  # handed to the caller's thread, which raises it
            call.error = err
