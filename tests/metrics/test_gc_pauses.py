"""visant_gc_pause_seconds: every collection timed, in cumulative buckets per generation."""

from __future__ import annotations

import gc

from cloud.metrics import gc_pauses


def _samples() -> dict[tuple[str, str, str], float]:
    return {
        (sample.name, sample.labels["generation"], sample.labels.get("le", "")): sample.value
        for sample in gc_pauses.family().samples
    }


def test_a_collection_is_counted_in_its_generation_and_buckets_are_cumulative() -> None:
    gc_pauses.install()
    gc_pauses.install()  # idempotent: one callback
    assert gc.callbacks.count(gc_pauses._time_collection) == 1
    before = _samples()
    gc.collect()
    after = _samples()
    count = "visant_gc_pause_seconds_count"
    assert after[(count, "2", "")] >= before[(count, "2", "")] + 1
    assert (
        after[("visant_gc_pause_seconds_sum", "2", "")]
        > before[("visant_gc_pause_seconds_sum", "2", "")]
    )
    for generation in ("0", "1", "2"):
        buckets = [
            value
            for (name, gen, _), value in after.items()
            if name == "visant_gc_pause_seconds_bucket" and gen == generation
        ]
        assert buckets == sorted(buckets)
        assert buckets[-1] == after[(count, generation, "")]
