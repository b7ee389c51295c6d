"""The one free-port picker and the one polling wait of the test suite.

Every deadline a test passes here comes from the settings it runs under, with margin for a
loaded 2-core machine; a wait never replaces a condition with a bare sleep.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable

POLL_INTERVAL = 0.02  # seconds between checks


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(
    predicate: Callable[[], object],
    timeout: float = 10.0,
    describe: Callable[[], str] | None = None,
    interval: float = POLL_INTERVAL,
) -> None:
    """Poll `predicate` until it is truthy; fail after `timeout` seconds with `describe()`."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            detail = describe() if describe else ""
            raise AssertionError(f"condition not met within {timeout}s\n{detail[-4000:]}")
        time.sleep(interval)


async def async_wait_until(predicate: Callable[[], bool], within: float = 10.0) -> None:
    """`wait_until` for a coroutine: the event loop keeps running between checks."""
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, f"condition not met within {within}s"
        await asyncio.sleep(POLL_INTERVAL)


def wait_for_window_room(window_seconds: float, needed: float) -> None:
    """Return once at least ``needed`` seconds are left of the current fixed counting window.

    Rate limits count in windows starting at multiples of their length since the epoch
    (cloud/limits/counters.py); a test whose events must all be counted together starts here,
    so a window boundary cannot fall between them (a new window rightly counts afresh).
    """
    assert needed < window_seconds, "the events cannot fit in one window"

    def room() -> float:
        return window_seconds - time.time() % window_seconds

    wait_until(lambda: room() >= needed, needed + 5.0, lambda: f"{room():.1f}s left")
