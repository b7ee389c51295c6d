"""Snapshots saved off the event loop in groups: each save durable with its hash when it
returns, the saves that wait written together, one failure kept to its own upload, and a
cancelled caller's snapshot still written whole."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cloud.captures.grouped_writes import GroupedWrites
from cloud.captures.storage import FilesystemStore, snapshot_key
from cloud.core.ids import new_record_id
from tests.support.waiting import async_wait_until

DAY = datetime(2026, 12, 7, tzinfo=UTC)
WAIT = 30.0  # seconds: far above a thread's turn on a loaded machine


def _key() -> str:
    return snapshot_key("CAM", new_record_id(), DAY, "jpg")


def test_saves_in_flight_are_written_in_groups_each_with_its_hash(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path)
    snapshots = {_key(): f"snapshot {n}".encode() * 1000 for n in range(40)}

    async def save_all() -> list[str]:
        return await asyncio.gather(
            *(store.save(key, data, "image/jpeg") for key, data in snapshots.items())
        )

    digests = asyncio.run(save_all())
    assert digests == [hashlib.sha256(data).hexdigest() for data in snapshots.values()]
    for key, data in snapshots.items():
        assert store.get(key) == data
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == sorted(
        Path(key).name for key in snapshots
    )


def test_writes_that_wait_go_together_on_the_writer_threads() -> None:
    groups: list[list[int]] = []
    started, release = threading.Event(), threading.Event()

    def write_group(items: Sequence[int]) -> list[int | BaseException]:
        if not groups:
            started.set()
            release.wait(timeout=WAIT)  # the first group holds the thread: the rest wait
        groups.append(list(items))
        return [item * 2 for item in items]

    writes = GroupedWrites(write_group, threads=1, thread_name="test-writes")

    async def run() -> list[int]:
        first = asyncio.ensure_future(writes.write(0))
        assert await asyncio.to_thread(started.wait, WAIT)  # the first group is on the thread
        rest = [asyncio.ensure_future(writes.write(n)) for n in range(1, 10)]
        await asyncio.sleep(0)  # each has queued its item
        release.set()
        return await asyncio.gather(first, *rest)

    assert asyncio.run(run()) == [n * 2 for n in range(10)]
    assert groups == [[0], list(range(1, 10))]


def test_a_failed_snapshot_in_a_group_fails_only_its_own_save(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path)
    taken = _key()
    store.put(taken, b"first", "image/jpeg")
    keys = [_key(), taken, _key()]
    results = store.put_many([(key, b"new") for key in keys])
    assert isinstance(results[1], FileExistsError)
    assert results[0] == results[2] == hashlib.sha256(b"new").hexdigest()
    assert [store.get(key) for key in keys] == [b"new", b"first", b"new"]

    async def save_taken() -> None:
        await store.save(taken, b"again", "image/jpeg")

    with pytest.raises(FileExistsError):
        asyncio.run(save_taken())


def test_a_cancelled_save_is_still_written_whole(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path)
    key = _key()
    data = b"x" * 500_000

    def written() -> bool:
        path = Path(store.url_or_path(key))
        return path.exists() and path.stat().st_size == len(data)

    async def cancel_then_wait() -> None:
        save = asyncio.ensure_future(store.save(key, data, "image/jpeg"))
        await asyncio.sleep(0)  # its item is queued
        save.cancel()
        with pytest.raises(asyncio.CancelledError):
            await save
        await async_wait_until(written, WAIT)  # the write went on without its caller

    asyncio.run(cancel_then_wait())
    assert store.get(key) == data


def test_a_loop_closed_while_its_write_runs_leaves_the_threads_serving() -> None:
    started, release, finished = threading.Event(), threading.Event(), threading.Event()

    def write_group(items: Sequence[int]) -> list[int | BaseException]:
        if items == [0]:
            started.set()
            release.wait(timeout=WAIT)
            finished.set()
        return [item + 1 for item in items]

    writes = GroupedWrites(write_group, threads=1, thread_name="test-writes")

    async def leave_during_the_write() -> None:
        write = asyncio.ensure_future(writes.write(0))
        assert await asyncio.to_thread(started.wait, WAIT)
        write.cancel()  # the caller leaves; asyncio.run then closes this loop

    asyncio.run(leave_during_the_write())
    release.set()  # the group ends after its loop closed: nobody to answer there
    assert finished.wait(WAIT)

    async def write_again() -> int:
        return await writes.write(41)

    assert asyncio.run(write_again()) == 42  # the same thread, from a new loop


def test_a_group_that_fails_whole_answers_each_caller_and_the_thread_goes_on() -> None:
    calls: list[list[int]] = []

    def write_group(items: Sequence[int]) -> list[int | BaseException]:
        calls.append(list(items))
        if len(calls) == 1:
            raise OSError("disk gone")
        if len(calls) == 2:
            return []  # a result short: answered as a failure, not left waiting
        return [item for item in items]

    writes = GroupedWrites(write_group, threads=1, thread_name="test-writes")

    async def write(item: int) -> int:
        return await writes.write(item)

    with pytest.raises(OSError, match="disk gone"):
        asyncio.run(write(1))
    with pytest.raises(RuntimeError, match="0 results for a group of 1"):
        asyncio.run(write(2))
    assert asyncio.run(write(3)) == 3
