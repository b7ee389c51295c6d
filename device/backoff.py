"""Capped exponential backoff with full jitter."""

from __future__ import annotations

import random


class Backoff:
    """Delays of ``uniform(0, min(cap, base * 2**attempt))``; ``reset()`` after a success.

    Full jitter spreads a fleet that lost the server at the same moment, so a restarted
    server is not hit by every device in the same second.
    """

    def __init__(self, base: float, cap: float, rng: random.Random | None = None) -> None:
        self.base = base
        self.cap = cap
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * (2**self.attempt))
        self.attempt = min(self.attempt + 1, 32)
        return self._rng.uniform(0, ceiling)

    def reset(self) -> None:
        self.attempt = 0
