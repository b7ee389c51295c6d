"""The cloud's garbage-collection pauses as its /metrics reports them (loopback needs no
token), for a benchmark to tell a tail made by collections from one made elsewhere."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

LONG_PAUSE_S = 0.05  # pauses longer than this are counted apart
SCRAPE_TIMEOUT = 10.0  # seconds


def gc_pauses(port: int) -> dict[str, list[float]]:
    """Per generation: [collections, seconds in them, collections over LONG_PAUSE_S]."""
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT) as response:  # noqa: S310 - ours
        text = response.read().decode()
    pauses: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "visant_gc_pause_seconds":
            continue
        for sample in family.samples:
            row = pauses.setdefault(sample.labels["generation"], [0, 0.0, 0])
            if sample.name.endswith("_count"):
                row[0] = int(sample.value)
            elif sample.name.endswith("_sum"):
                row[1] = sample.value
            elif sample.name.endswith("_bucket") and float(sample.labels["le"]) == LONG_PAUSE_S:
                row[2] = -int(sample.value)  # at most the bound; the count is added below
    for row in pauses.values():
        row[2] += row[0]
    return pauses


def gc_pauses_between(
    before: dict[str, list[float]], after: dict[str, list[float]]
) -> dict[str, dict[str, float]]:
    """What happened between two readings, per generation: collections, total ms, long ones."""
    delta = {}
    for generation, (count, seconds, long) in sorted(after.items()):
        count0, seconds0, long0 = before.get(generation, [0, 0.0, 0])
        delta[generation] = {
            "collections": count - count0,
            "total_ms": round(1000 * (seconds - seconds0), 1),
            f"over_{int(LONG_PAUSE_S * 1000)}ms": long - long0,
        }
    return delta
