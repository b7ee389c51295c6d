"""Garbage-collection pauses of this process, as `visant_gc_pause_seconds{generation}`.

A collection stalls every stream and request of the instance for its duration. The callback
runs inside the collector, at any allocation, so it takes no lock and allocates nothing
tracked (a prometheus_client metric would take its lock, which the interrupted code may hold:
a deadlock); the scrape turns the plain counts into a histogram family.
"""

from __future__ import annotations

import gc
import time
from bisect import bisect_left
from typing import Any

from prometheus_client.core import HistogramMetricFamily

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
GENERATIONS = 3

# Per generation: collections in each bucket (the last: above every bucket), summed seconds.
_counts = [[0] * (len(BUCKETS) + 1) for _ in range(GENERATIONS)]
_sums = [0.0] * GENERATIONS
_began = [0.0]


def _time_collection(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _began[0] = time.perf_counter()
        return
    pause = time.perf_counter() - _began[0]
    generation = info["generation"]
    _counts[generation][bisect_left(BUCKETS, pause)] += 1
    _sums[generation] += pause


def install() -> None:
    """Time every collection from now on (idempotent)."""
    if _time_collection not in gc.callbacks:
        gc.callbacks.append(_time_collection)


def family() -> HistogramMetricFamily:
    """The pauses timed so far, one histogram per generation."""
    histogram = HistogramMetricFamily(
        "visant_gc_pause_seconds",
        "Garbage collections of this process by generation; each stalls the whole instance.",
        labels=["generation"],
    )
    for generation in range(GENERATIONS):
        cumulative, buckets = 0, []
        for bound, count in zip((*BUCKETS, float("inf")), _counts[generation], strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else str(bound), cumulative))
        histogram.add_metric([str(generation)], buckets, _sums[generation])
    return histogram
