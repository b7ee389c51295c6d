"""The SSE client against a real HTTP server (uvicorn on a free port)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from device.stream import Command, CommandStream, StreamRejected
from tests.device.conftest import DEVICE_ID, DEVICE_KEY, FakeCloud, envelope
from tests.support.waiting import async_wait_until


class Received:
    def __init__(self) -> None:
        self.commands: list[Command] = []

    async def __call__(self, command: Command) -> None:
        self.commands.append(command)

    @property
    def ids(self) -> list[str]:
        return [c.command_id for c in self.commands]


@contextlib.asynccontextmanager
async def running(stream: CommandStream) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(stream.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, StreamRejected):
            await asyncio.wait_for(task, 5)


def make_stream(cloud: FakeCloud, received: Received, **kwargs: object) -> CommandStream:
    options = {"read_timeout": 5.0, "reconnect_delay": 0.1, "api_key": DEVICE_KEY}
    options.update(kwargs)
    return CommandStream(cloud.url, DEVICE_ID, on_command=received, **options)  # type: ignore[arg-type]


async def test_commands_arrive_in_order_and_server_retry_sets_backoff_base(
    fake_cloud: FakeCloud,
) -> None:
    fake_cloud.retry_ms = 750
    fake_cloud.on_connect = [envelope("cfg_1", "config", version=1, config={})]
    received = Received()
    stream = make_stream(fake_cloud, received)
    async with running(stream):
        fake_cloud.live.put(envelope("trg_1"))
        await async_wait_until(lambda: len(received.commands) == 2)
    assert received.ids == ["cfg_1", "trg_1"]
    assert received.commands[1].payload["trigger_id"] == "trg_1"
    assert stream.backoff.base == pytest.approx(0.75)
    assert stream.last_event_id == "trg_1"


async def test_shutdown_event_reconnects_with_last_event_id(fake_cloud: FakeCloud) -> None:
    received = Received()
    async with running(make_stream(fake_cloud, received)):
        fake_cloud.live.put(envelope("trg_a"))
        await async_wait_until(lambda: received.ids == ["trg_a"])
        fake_cloud.live.put(("shutdown", "server shutting down"))
        await async_wait_until(lambda: len(fake_cloud.connections) == 2)
    assert "last-event-id" not in fake_cloud.connections[0]
    assert fake_cloud.connections[1]["last-event-id"] == "trg_a"


async def test_wrong_key_stops_with_stream_rejected_and_no_retry(fake_cloud: FakeCloud) -> None:
    stream = make_stream(fake_cloud, Received(), api_key="vsk_wrong")
    with pytest.raises(StreamRejected) as caught:
        await asyncio.wait_for(stream.run(), 5)
    assert caught.value.status_code == 401
    assert "invalid device key" in str(caught.value)
    assert len(fake_cloud.connections) == 1


async def test_unknown_device_stops_with_404(fake_cloud: FakeCloud) -> None:
    stream = CommandStream(fake_cloud.url, "other-cam", DEVICE_KEY, Received())
    with pytest.raises(StreamRejected) as caught:
        await asyncio.wait_for(stream.run(), 5)
    assert caught.value.status_code == 404


async def test_silent_stream_hits_read_timeout_and_reconnects(fake_cloud: FakeCloud) -> None:
    fake_cloud.keepalive = None
    async with running(make_stream(fake_cloud, Received(), read_timeout=0.5)):
        await async_wait_until(lambda: len(fake_cloud.connections) >= 2, within=5)


async def test_keepalive_comments_keep_the_stream_open(fake_cloud: FakeCloud) -> None:
    fake_cloud.keepalive = 0.1
    async with running(make_stream(fake_cloud, Received(), read_timeout=0.5)):
        await asyncio.sleep(1.5)
    assert len(fake_cloud.connections) == 1


async def test_server_errors_are_retried_with_growing_delays(fake_cloud: FakeCloud) -> None:
    fake_cloud.stream_status = 503
    async with running(make_stream(fake_cloud, Received(), reconnect_delay=0.05)):
        await asyncio.sleep(2.0)
    # Ceilings 0.05, 0.1, 0.2, 0.4, 0.8, 1.6...: a handful of attempts, not a hot loop.
    assert 2 <= len(fake_cloud.connections) <= 12


async def test_stream_resumes_after_the_server_restarts(fake_cloud: FakeCloud) -> None:
    received = Received()
    async with running(make_stream(fake_cloud, received)):
        await async_wait_until(lambda: len(fake_cloud.connections) == 1)
        await asyncio.to_thread(fake_cloud.stop)
        await asyncio.sleep(0.3)
        await asyncio.to_thread(fake_cloud.start)
        fake_cloud.live.put(envelope("trg_after"))
        began = time.monotonic()
        await async_wait_until(lambda: received.ids == ["trg_after"], within=10)
    assert time.monotonic() - began < 10
