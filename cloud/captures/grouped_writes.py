"""Blocking writes done on threads of their own, in groups: one thread hop per group.

`asyncio.to_thread` per snapshot cost each upload a hand-over to a pool thread, a wake-up of
the event loop and the GIL passed back and forth around every call the thread made; at 32
uploads in flight that was ~0.2-0.3 ms of server CPU per upload (docs/performance.md). Here
the writes submitted while a group is on the thread wait and go together in the next one: one
hand-over and one wake-up per group, and the group's fsyncs can share the file system's
journal commit (FilesystemStore.put_many). Several groups are written at once, one a thread:
a disk absorbs parallel flushes better than one after another (here 141 KB files written
and fsynced alone: 1,214/s one at a time, 2,005/s in groups of 8 on one thread, 2,986/s in
groups of 4 on 4 threads). In the server 1, 2 and 4 threads gave the same uploads/s; groups
of one cost the most CPU and 2 threads the least. A write that finds a thread free goes at
once, as a group of one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

from cloud.core.batching import settle

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")

MAX_GROUP = 64  # items per group: bounds how long the last of them waits for the first


class GroupedWrites(Generic[ItemT, ResultT]):
    """Runs `write_group` (blocking; a result or the error raised, per item) on up to
    `threads` threads of its own, a group each."""

    def __init__(
        self,
        write_group: Callable[[Sequence[ItemT]], list[ResultT | BaseException]],
        threads: int,
        thread_name: str,
    ) -> None:
        self._write_group = write_group
        self._threads = threads
        self._thread_name = thread_name
        self._executor: ThreadPoolExecutor | None = None
        self._waiting: list[tuple[ItemT, asyncio.Future[ResultT]]] = []
        self._drainers: set[asyncio.Task[None]] = set()

    async def write(self, item: ItemT) -> ResultT:
        """Write `item` (done when this returns): its result, or what its write raised. A
        cancelled caller stops waiting, not the write."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ResultT] = loop.create_future()
        self._waiting.append((item, future))
        self._drainers = {d for d in self._drainers if not d.done() and d.get_loop() is loop}
        if len(self._drainers) < self._threads:
            self._drainers.add(loop.create_task(self._drain(), name=self._thread_name))
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting:
            group = self._waiting[:MAX_GROUP]
            del self._waiting[:MAX_GROUP]
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    self._threads, thread_name_prefix=self._thread_name
                )
            items = [item for item, _ in group]
            results: Sequence[ResultT | BaseException]
            try:
                results = await loop.run_in_executor(self._executor, self._write_group, items)
            except Exception as exc:  # noqa: BLE001 - the thread could not run the group
                results = [exc] * len(group)
            except BaseException:  # this task cancelled (the loop is closing)
                for _, future in group:
                    future.cancel()
                raise
            for (_, future), result in zip(group, results, strict=True):
                settle(future, result)
