"""Request counts and latencies in Prometheus' text format, as TF Serving's monitoring exports.

    GET /monitoring/prometheus/metrics   (on the REST port)

    :tensorflow:serving:request_count{model_name, model_version, API, entrypoint, status}
    :tensorflow:serving:request_latency_bucket{model_name, model_version, API, entrypoint, le}
    :tensorflow:serving:request_latency_sum / _count

TF Serving's names, with the version as an extra label; latencies are in
microseconds, as TF Serving reports them. Only predict requests are counted.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict

PATH = "/monitoring/prometheus/metrics"
CONTENT_TYPE = "text/plain; version=0.0.4"
_COUNT = ":tensorflow:serving:request_count"
_LATENCY = ":tensorflow:serving:request_latency"
# Microseconds: 1 ms to 10 s.
BUCKETS = (1e3, 2.5e3, 5e3, 1e4, 2.5e4, 5e4, 1e5, 2.5e5, 5e5, 1e6, 2.5e6, 5e6, 1e7)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: tuple[tuple[str, str], ...]) -> str:
    return ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)


class Metrics:
    """Thread-safe counters and latency histograms of predict requests."""

    def __init__(self):
        self._lock = threading.Lock()
        self._counts: dict[tuple, int] = defaultdict(int)
        self._buckets: dict[tuple, list[int]] = {}
        self._sums: dict[tuple, float] = defaultdict(float)

    def observe(self, model: str, version: int | None, entrypoint: str, status: str,
                seconds: float) -> None:
        """Counts one predict request and its latency.

        Args:
            model: the model name requested.
            version: the version that answered (None: none did).
            entrypoint: "REST" or "GRPC".
            status: "OK" or the error code's name.
            seconds: wall time of the request.
        """
        key = (("model_name", model), ("model_version", "" if version is None else str(version)),
               ("API", "predict"), ("entrypoint", entrypoint))
        micros = seconds * 1e6
        with self._lock:
            self._counts[key + (("status", status),)] += 1
            buckets = self._buckets.setdefault(key, [0] * (len(BUCKETS) + 1))
            buckets[bisect.bisect_left(BUCKETS, micros)] += 1
            self._sums[key] += micros

    def render(self) -> str:
        """The metrics in Prometheus' text exposition format."""
        with self._lock:
            counts = dict(self._counts)
            histograms = {k: list(v) for k, v in self._buckets.items()}
            sums = dict(self._sums)
        lines = [f"# TYPE {_COUNT} counter"]
        lines += [f"{_COUNT}{{{_labels(k)}}} {v}" for k, v in sorted(counts.items())]
        lines.append(f"# TYPE {_LATENCY} histogram")
        for key, buckets in sorted(histograms.items()):
            total = 0
            for bound, count in zip((*BUCKETS, float("inf")), buckets):
                total += count
                le = "+Inf" if bound == float("inf") else f"{bound:g}"
                lines.append(f"{_LATENCY}_bucket{{{_labels(key + (('le', le),))}}} {total}")
            lines.append(f"{_LATENCY}_sum{{{_labels(key)}}} {sums[key]:.1f}")
            lines.append(f"{_LATENCY}_count{{{_labels(key)}}} {total}")
        return "\n".join(lines) + "\n"
