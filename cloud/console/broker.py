"""In-process fan-out of the console's change events to the open browser streams.

The instance's one LISTEN connection (the hub's) hands every payload of EVENTS_CHANNEL to
`publish` while at least one browser stream is open here (`on_demand`); each open browser
stream has a bounded queue and sees only its own org's events.
A stream that falls behind gets one `resync` (reload what you show) instead of a backlog.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from cloud.core.errors import ApiError
from cloud.events.notify import parse_event

logger = logging.getLogger(__name__)

QUEUE_SIZE = 256  # events a stream may be behind before it is told to resync
RESYNC: dict[str, Any] = {"kind": "resync"}
CLOSED: dict[str, Any] = {"kind": "closed"}


class Subscription:
    """One open browser stream: the events of its org, in order."""

    def __init__(self, broker: EventBroker, org_id: str, user_id: uuid.UUID) -> None:
        self.org_id = org_id
        self.user_id = user_id
        self._broker = broker
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self._behind = False
        self._closed = False
        self.live = False  # told `hello`: events are promised from here on

    def offer(self, event: dict[str, Any]) -> None:
        if event is CLOSED:
            self._closed = True
        if self._behind:
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self._behind = True

    async def next(self) -> dict[str, Any]:
        """The next event; `resync` after an overflow (the backlog is dropped)."""
        if self._closed:
            return CLOSED
        if self._behind:
            while not self._queue.empty():
                self._queue.get_nowait()
            self._behind = False
            return RESYNC
        return await self._queue.get()

    def close(self) -> None:
        self._broker.unsubscribe(self)


class EventBroker:
    """Subscriptions by org, capped per user; `publish` runs on the event loop's thread."""

    def __init__(self, streams_per_user: int) -> None:
        self._streams_per_user = streams_per_user
        # Told when the first stream opens (True) and the last one ends (False): the
        # instance hears EVENTS_CHANNEL only while it has a stream to feed (cloud/app.py).
        self.on_demand: Callable[[bool], None] | None = None
        self._by_org: dict[str, set[Subscription]] = defaultdict(set)
        self._per_user: dict[uuid.UUID, int] = defaultdict(int)
        self.closing = False
        self.published = 0

    @property
    def open_streams(self) -> int:
        return sum(self._per_user.values())

    def subscribe(self, org_id: uuid.UUID, user_id: uuid.UUID) -> Subscription:
        """A new subscription; 429 past the per-user cap, 503 while shutting down."""
        if self.closing:
            raise ApiError(503, "server is shutting down")
        if self._per_user.get(user_id, 0) >= self._streams_per_user:
            raise ApiError(
                429,
                f"too many open console pages for this user (limit {self._streams_per_user})",
                {"Retry-After": "30"},
            )
        subscription = Subscription(self, str(org_id), user_id)
        first = not self._per_user
        self._by_org[subscription.org_id].add(subscription)
        self._per_user[user_id] += 1
        if first and self.on_demand is not None:
            self.on_demand(True)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subscribers = self._by_org.get(subscription.org_id)
        if subscribers is None or subscription not in subscribers:
            return
        subscribers.discard(subscription)
        if not subscribers:
            del self._by_org[subscription.org_id]
        self._per_user[subscription.user_id] -= 1
        if self._per_user[subscription.user_id] <= 0:
            del self._per_user[subscription.user_id]
        if not self._per_user and self.on_demand is not None:
            self.on_demand(False)

    def publish(self, payload: str) -> None:
        """A NOTIFY payload of EVENTS_CHANNEL: offered to its org's subscriptions."""
        event = parse_event(payload)
        if event is None:
            return
        self.published += 1
        for subscription in tuple(self._by_org.get(event["org_id"], ())):
            subscription.offer(event)

    def resync_all(self) -> None:
        """After the listener reconnected: events may have been missed; pages reload."""
        self._resync(lambda _: True)

    def resync_live(self) -> None:
        """The instance began hearing events only now: streams that said `hello` before
        (their wait for it ran out) may have missed some; those still waiting missed none."""
        self._resync(lambda subscription: subscription.live)

    def _resync(self, which: Callable[[Subscription], bool]) -> None:
        for subscribers in tuple(self._by_org.values()):
            for subscription in tuple(subscribers):
                if which(subscription):
                    subscription.offer(RESYNC)

    def close_all(self) -> None:
        """Shutdown: every stream ends (the browser reconnects to another instance)."""
        self.closing = True
        for subscribers in tuple(self._by_org.values()):
            for subscription in tuple(subscribers):
                subscription.offer(CLOSED)
