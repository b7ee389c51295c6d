"""Server-sent events: wire encoding and the bounded per-stream mailbox."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass
from typing import Any

from cloud.hub.envelopes import DEVICE_COMMAND_TYPES

KEEPALIVE_EVENT = b": keepalive\n\n"
SEEN_IDS_KEPT = 512  # command ids remembered per stream for de-duplication


@dataclass(frozen=True, slots=True)
class Command:
    """One command ready for the wire: its id, type, expiry and encoded event bytes."""

    command_id: str
    type: str
    manual: bool
    expires_at: str | None
    data: bytes
    envelope: dict[str, Any]
    reply_to: str | None = None  # the instance waiting to hear it was delivered, if another

    @classmethod
    def from_envelope(cls, envelope: dict[str, Any], reply_to: str | None = None) -> Command:
        body = json.dumps(envelope, separators=(",", ":"))
        command_id = envelope["command_id"]
        kind = envelope["type"]
        payload = envelope.get("payload") or {}
        return cls(
            command_id=command_id,
            type=kind,
            # A user waits for these (manual triggers, device commands): confirm delivery.
            manual=payload.get("trigger_type") == "manual" or kind in DEVICE_COMMAND_TYPES,
            expires_at=envelope.get("expires_at"),
            data=f"event: {kind}\nid: {command_id}\ndata: {body}\n\n".encode(),
            envelope=envelope,
            reply_to=reply_to,
        )


def retry_event(retry_ms: int) -> bytes:
    return f"retry: {retry_ms}\n\n".encode()


def shutdown_event(reason: str) -> bytes:
    body = json.dumps({"reason": reason})
    return f"event: shutdown\ndata: {body}\n\n".encode()


class StreamClosed(Exception):
    """The mailbox was closed; `reason` says why (sent to the client when it makes sense)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Mailbox:
    """A bounded queue of commands for one stream, closable from any coroutine.

    Deliberately not an `asyncio.Queue`: closing must win over a full queue (a slow client is
    dropped, not waited for), and an idle stream should cost a deque and no pending timer task;
    the keepalive timeout is one `call_later` handle while waiting (the 10,000-stream target).
    """

    __slots__ = ("_items", "_maxsize", "_waiter", "_seen", "_seen_order", "closed_reason")

    def __init__(self, maxsize: int) -> None:
        self._items: deque[Command] = deque()
        self._maxsize = maxsize
        self._waiter: asyncio.Future[None] | None = None
        self._seen: set[str] = set()
        self._seen_order: deque[str] = deque()
        self.closed_reason: str | None = None

    def offer(self, command: Command) -> bool:
        """Queue a command unless already queued or sent here; False when the queue is full."""
        if self.closed_reason is not None:
            return True
        if command.command_id in self._seen:
            return True
        if len(self._items) >= self._maxsize:
            return False
        self._remember(command.command_id)
        self._items.append(command)
        self._wake()
        return True

    def drain(self) -> list[Command]:
        """Every queued command, removed from the queue."""
        items = list(self._items)
        self._items.clear()
        return items

    def close(self, reason: str) -> None:
        if self.closed_reason is None:
            self.closed_reason = reason
            self._wake()

    async def next(self, idle_seconds: float) -> Command | None:
        """The next command, None after `idle_seconds` idle; raises StreamClosed once closed."""
        if self.closed_reason is not None:
            raise StreamClosed(self.closed_reason)
        if not self._items:
            loop = asyncio.get_running_loop()
            waiter = loop.create_future()
            self._waiter = waiter
            timer = loop.call_later(idle_seconds, _resolve, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
            if self.closed_reason is not None:
                raise StreamClosed(self.closed_reason)
        return self._items.popleft() if self._items else None

    def _remember(self, command_id: str) -> None:
        self._seen.add(command_id)
        self._seen_order.append(command_id)
        if len(self._seen_order) > SEEN_IDS_KEPT:
            self._seen.discard(self._seen_order.popleft())

    def _wake(self) -> None:
        if self._waiter is not None:
            _resolve(self._waiter)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
