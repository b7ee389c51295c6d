"""Run blocking calls (camera reads, inference, disk) off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def run_blocking(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` in a daemon thread and await its result.

    Not ``asyncio.to_thread``: its executor threads are joined at interpreter exit, so one
    RTSP read hung on a dead camera would keep a SIGTERMed agent alive. A daemon thread is
    abandoned instead, and the agent still exits promptly.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def deliver(setter: Callable[[Any], None], value: Any) -> None:
        if not future.done():
            setter(value)

    def target() -> None:
        try:
            result = fn(*args)
        except BaseException as exc:  # handed to the awaiting coroutine
            outcome: tuple[Callable[[Any], None], Any] = (future.set_exception, exc)
        else:
            outcome = (future.set_result, result)
        # The loop may already be closed when an abandoned call finally returns.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(deliver, *outcome)

    threading.Thread(target=target, name=f"blocking-{fn.__name__}", daemon=True).start()
    return await future
