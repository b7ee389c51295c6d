"""Blocking writes done on threads of their own, in groups: one thread hop per group.

`asyncio.to_thread` per snapshot cost each upload a hand-over to a pool thread, a wake-up of
the event loop and the GIL passed back and forth around every call the thread made; at 32
uploads in flight that was ~0.2-0.3 ms of server CPU per upload (docs/performance.md). Here
the writes submitted while the threads are busy wait in a queue, and a thread that ends its
group takes all that waits as its next: one hand-over and one loop wake-up per group, and the
group's fsyncs share the file system's journal commit (FilesystemStore.put_many). The threads
take their groups themselves, so a group starts as soon as a thread is free, not when the
event loop next gets round to it between the other uploads' work. Several
groups are written at once, one a thread: here 141 KB files written and fsynced alone did
1,214/s one at a time, 2,005/s in groups of 8 on one thread, 2,986/s in groups of 4 on 4
threads; in the server 1, 2 and 4 threads gave the same uploads/s, groups of one cost the
most CPU and 2 threads the least. A write that finds a thread free goes at once, as a group
of one.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from cloud.core.batching import settle

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")

MAX_GROUP = 64  # items per group: bounds how long the last of them waits for the first

_Waiting = tuple[ItemT, "asyncio.Future[ResultT]"]


class GroupedWrites(Generic[ItemT, ResultT]):
    """Runs `write_group` (blocking; a result or the error raised, per item) on `threads`
    threads of its own, a group each. The threads take their work from a thread-safe queue
    themselves: a thread that ends a group starts the next at once, without waiting for the
    event loop's turn, and the loop is woken once per group, to answer all of it."""

    def __init__(
        self,
        write_group: Callable[[Sequence[ItemT]], list[ResultT | BaseException]],
        threads: int,
        thread_name: str,
    ) -> None:
        self._write_group = write_group
        self._threads = threads
        self._thread_name = thread_name
        self._queue: queue.SimpleQueue[_Waiting[ItemT, ResultT]] = queue.SimpleQueue()
        self._started = False
        self._start_lock = threading.Lock()

    async def write(self, item: ItemT) -> ResultT:
        """Write `item` (done when this returns): its result, or what its write raised. A
        cancelled caller stops waiting, not the write."""
        future: asyncio.Future[ResultT] = asyncio.get_running_loop().create_future()
        if not self._started:
            self._start_threads()
        self._queue.put((item, future))
        return await future

    def _start_threads(self) -> None:
        with self._start_lock:
            if self._started:
                return
            for number in range(self._threads):
                # Daemon: idle, they wait on the queue for good. A server stops only after its
                # requests (and so their writes) ended; a file a killed process cut short is
                # named by no row, and retention's orphan sweep removes it.
                name = f"{self._thread_name}-{number}"
                threading.Thread(target=self._run, name=name, daemon=True).start()
            self._started = True

    def _run(self) -> None:
        while True:
            group = [self._queue.get()]
            while len(group) < MAX_GROUP:
                try:
                    group.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            results: Sequence[ResultT | BaseException]
            try:
                results = self._write_group([item for item, _ in group])
                if len(results) != len(group):  # would leave callers unanswered for good
                    raise RuntimeError(f"{len(results)} results for a group of {len(group)}")
            except Exception as exc:  # noqa: BLE001 - the whole group failed: each caller hears
                results = [exc] * len(group)
            _answer(group, results)


def _answer(group: Sequence[_Waiting[ItemT, ResultT]], results: Sequence[object]) -> None:
    """Hand each waiting caller its result on its own event loop: one wake-up per loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[ResultT], object]]] = {}
    for (_, future), result in zip(group, results, strict=True):
        by_loop.setdefault(future.get_loop(), []).append((future, result))
    for loop, answers in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle_all, answers)
        except RuntimeError:  # that loop is closed: nobody waits there any more
            continue


def _settle_all(answers: Sequence[tuple[asyncio.Future[ResultT], object]]) -> None:
    for future, result in answers:
        settle(future, result)
