from __future__ import annotations

import random

from device.backoff import Backoff


def test_delays_are_full_jitter_under_a_growing_capped_ceiling() -> None:
    backoff = Backoff(base=1.0, cap=10.0, rng=random.Random(1))
    ceilings = [1, 2, 4, 8, 10, 10, 10]
    for ceiling in ceilings:
        assert 0 <= backoff.next_delay() <= ceiling


def test_delays_spread_across_the_whole_range() -> None:
    backoff = Backoff(base=8.0, cap=8.0, rng=random.Random(2))
    delays = [backoff.next_delay() for _ in range(200)]
    assert min(delays) < 1.0 and max(delays) > 7.0


def test_reset_starts_again_from_the_base() -> None:
    backoff = Backoff(base=1.0, cap=60.0, rng=random.Random(3))
    for _ in range(6):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() <= 1.0
