"""Per-key token buckets in memory: one instance's view (N instances allow N times the rate)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

PRUNE_EVERY = 1024  # acquisitions between sweeps of idle, full buckets


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Allows `per_minute` events per key, in bursts of up to `per_minute`."""

    def __init__(self, per_minute: int) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0  # tokens per second
        self._buckets: dict[str, _Bucket] = {}
        self._since_prune = 0

    def acquire(self, key: str, now: float | None = None) -> float | None:
        """Take one token: None when allowed, else the seconds to wait before retrying."""
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self.capacity, now)
        else:
            bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
        self._since_prune += 1
        if self._since_prune >= PRUNE_EVERY:
            self._prune(now)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return (1.0 - bucket.tokens) / self.rate

    def _prune(self, now: float) -> None:
        """Forget keys whose bucket has refilled: memory follows active keys only."""
        self._since_prune = 0
        full_after = self.capacity / self.rate
        idle = [key for key, b in self._buckets.items() if now - b.updated >= full_after]
        for key in idle:
            del self._buckets[key]


def retry_after_header(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}
