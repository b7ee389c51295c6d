"""The device stream through sse-starlette's EventSourceResponse (`VISANT_STREAM_IMPL`).

Kept to measure against CommandStreamResponse in the same run (scripts/bench/push.py
`--impl sse-starlette`); docs/performance.md has the figures and why ours is the default.
Same guarantees: `retry:` first, `sent` recorded only once the event's bytes were handed to
the server (the generator resumes after sse-starlette sent what it yielded), the mailbox's
close reason as a final `shutdown` event.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from sse_starlette.sse import EventSourceResponse

from cloud.hub import close_reasons
from cloud.hub.hub import CommandHub, LocalStream, is_expired
from cloud.hub.mailbox import StreamClosed, retry_event, shutdown_event

_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse_starlette_response(
    hub: CommandHub, stream: LocalStream, keepalive: float, retry_ms: int, send_timeout: float
) -> EventSourceResponse:
    """An EventSourceResponse over the stream's mailbox; its own ping task sends keepalives."""
    return EventSourceResponse(
        _events(hub, stream, keepalive, retry_ms),
        headers=_HEADERS,
        ping=int(max(1, keepalive)),
        send_timeout=send_timeout,
    )


async def _events(
    hub: CommandHub, stream: LocalStream, keepalive: float, retry_ms: int
) -> AsyncIterator[bytes]:
    try:
        yield retry_event(retry_ms)
        while True:
            try:
                command = await stream.mailbox.next(keepalive)
            except StreamClosed as closed:
                if closed.reason not in close_reasons.SILENT:
                    yield shutdown_event(closed.reason)
                return
            if command is not None and not is_expired(command):
                yield command.data
                hub.written(stream, command)  # resumed: the bytes went out
    finally:
        stream.mailbox.close(close_reasons.DISCONNECTED)
        hub.end_stream(stream)
