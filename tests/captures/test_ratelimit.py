"""Per-device token buckets: bursts up to the per-minute rate, then refill over time."""

from __future__ import annotations

from cloud.captures.ratelimit import RateLimiter, retry_after_header


def test_burst_then_refusal_then_refill() -> None:
    limiter = RateLimiter(per_minute=60)  # one token per second
    assert all(limiter.acquire("cam", now=0.0) is None for _ in range(60))
    wait = limiter.acquire("cam", now=0.0)
    assert wait is not None and 0.9 < wait <= 1.0
    assert retry_after_header(wait) == {"Retry-After": "1"}
    assert limiter.acquire("other", now=0.0) is None, "buckets are per key"
    assert limiter.acquire("cam", now=1.0) is None
    assert limiter.acquire("cam", now=1.0) is not None


def test_idle_buckets_are_forgotten() -> None:
    limiter = RateLimiter(per_minute=60)
    for index in range(2000):
        limiter.acquire(f"cam{index}", now=float(index) * 0.001)
    limiter.acquire("late", now=1000.0)
    for index in range(1100):
        limiter.acquire("late", now=1000.0 + index)
    assert len(limiter._buckets) < 10
