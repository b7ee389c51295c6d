"""The one shape of every long-lived background component: start, stop, wait, grace, cancel.

A worker runs `run()` in one named task. `stop()` is idempotent: it sets the stop event, gives
the task `stop_grace` seconds to notice it (a pass in flight finishes its transaction), then
cancels it. Loops sleep with `wait()`, which returns early when a stop is asked, so no loop
ever holds shutdown up for a whole interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

from cloud.core.db import log_worker_failure

logger = logging.getLogger(__name__)


async def wait_for_event(event: asyncio.Event, seconds: float) -> bool:
    """Wait until `event` is set or `seconds` pass; True when it is set."""
    if not event.is_set() and seconds > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)
    return event.is_set()


async def wait_any(*events: asyncio.Event, seconds: float | None = None) -> None:
    """Return when any of `events` is set, or after `seconds` (None: no limit)."""
    waiters = {asyncio.ensure_future(event.wait()) for event in events}
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def finish_task(task: asyncio.Task[Any], grace: float, name: str) -> None:
    """Let `task` end within `grace` seconds, then cancel it; never raises."""
    try:
        await asyncio.wait_for(asyncio.shield(task), grace)
    except TimeoutError:
        logger.warning("%s did not stop in %.1fs; cancelling", name, grace)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    except asyncio.CancelledError:
        raise
    except Exception:  # noqa: BLE001 - the task's own failure was logged where it happened
        pass


class Worker:
    """Base of every background component; subclasses implement `run()`."""

    name = "worker"
    stop_grace = 5.0  # seconds a stopping `run()` may take before it is cancelled

    def __init__(self) -> None:
        self._stop_event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._side_tasks: set[asyncio.Task[Any]] = set()

    @property
    def stopping(self) -> bool:
        return self._stop_event.is_set()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Start `run()` in a task named after the worker (no-op when already running)."""
        if self._task is None:
            self._stop_event.clear()
            self._task = asyncio.create_task(self.run(), name=self.name)

    async def stop(self) -> None:
        """Idempotent: ask `run()` to end, wait `stop_grace`, then cancel it and side tasks."""
        self._stop_event.set()
        task, self._task = self._task, None
        if task is not None:
            await finish_task(task, self.stop_grace, self.name)
        for side in list(self._side_tasks):
            await finish_task(side, self.stop_grace, f"{self.name} side task")

    async def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`, returning early (True) when a stop was asked."""
        return await wait_for_event(self._stop_event, seconds)

    async def wait_stop_or(self, event: asyncio.Event, seconds: float | None = None) -> None:
        """Return when a stop is asked, `event` is set, or `seconds` pass."""
        await wait_any(self._stop_event, event, seconds=seconds)

    def spawn(self, coroutine: Coroutine[Any, Any, Any], name: str) -> None:
        """Run a short side task that `stop()` waits for; its failure is logged, not raised."""
        task = asyncio.create_task(coroutine, name=f"{self.name}-{name}")
        self._side_tasks.add(task)
        task.add_done_callback(self._side_task_done)

    def _side_task_done(self, task: asyncio.Task[Any]) -> None:
        self._side_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("%s failed", task.get_name(), exc_info=task.exception())

    async def run(self) -> None:
        raise NotImplementedError


class PeriodicWorker(Worker):
    """Runs `run_once()` every `interval` seconds; a failed pass is logged and retried."""

    interval = 60.0  # seconds
    failure_message = "background pass failed; retrying next interval"

    def __init__(self) -> None:
        super().__init__()
        self.passes = 0  # completed passes, for tests and logs

    async def run(self) -> None:
        while not self.stopping:
            try:
                await self.run_once()
                self.passes += 1
            except Exception:  # noqa: BLE001 - a database error must not end the loop
                log_worker_failure(logging.getLogger(type(self).__module__), self.failure_message)
            await self.wait(self.interval)

    async def run_once(self) -> Any:
        raise NotImplementedError
