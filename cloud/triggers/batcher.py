"""Manual trigger requests stored in batches: one statement, one commit, for all that wait.

Each request is one call of `visant_manual_trigger()` (migration
0008_manual_trigger_function has its rules). Requests that arrive while the batcher's
connections are busy wait and go together in the next statement, one call per request over
`unnest` (cloud/core/batching.py has the lanes): under load the round trips, commits and pool
checkouts per trigger fall with the rate instead of the pool overflowing (a new connection per
request, each preparing its statements again). At a low rate a request finds a connection free
and goes alone, at once.

Calls run in device id order, so two batches (of this or another instance) take the per-device
cap locks in the same order and cannot deadlock; the presence writes of stream openings lock
in that order too.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from cloud.core.batching import StatementBatcher
from cloud.metrics.registry import MANUAL_TRIGGER_BATCH

# The per-request columns, in the order of TriggerAsk's fields and of the arrays sent.
_COLUMNS = (
    ("device_id", "text"),
    ("org_id", "uuid"),
    ("trigger_id", "text"),
    ("label", "text"),
    ("now", "timestamptz"),
    ("expires_at", "timestamptz"),
    ("user_id", "uuid"),
    ("command_message", "text"),
    ("event", "text"),
    ("audit_id", "uuid"),
    ("actor_email", "text"),
    ("audit_details", "text"),
)
_ARRAYS = ", ".join(f"${n}::{kind}[]" for n, (_, kind) in enumerate(_COLUMNS, start=1))
_NAMES = ", ".join(name for name, _ in _COLUMNS)
_BATCH_SQL = (
    f"SELECT r.found, r.instance_id, r.open_count, r.first_expiry, r.stored "
    f"FROM unnest({_ARRAYS}) WITH ORDINALITY AS a({_NAMES}, n) "
    "CROSS JOIN LATERAL visant_manual_trigger("
    "$13, a.device_id, a.org_id, $14, $15, a.trigger_id, a.label, a.now, a.expires_at, "
    "a.user_id, $16, $17, $18, a.command_message, $19, a.event, a.audit_id, a.actor_email, "
    "$20, a.audit_details::jsonb) AS r ORDER BY a.n"
)


@dataclass(frozen=True)
class TriggerAsk:
    """One request's own values (the fields are _COLUMNS, in order)."""

    device_id: str
    org_id: uuid.UUID
    trigger_id: str
    label: str | None
    now: datetime
    expires_at: datetime
    user_id: uuid.UUID
    command_message: str
    event: str
    audit_id: uuid.UUID
    actor_email: str
    audit_details: str


@dataclass(frozen=True)
class BatchConstants:
    """What every request of this instance shares (the function's other arguments)."""

    cap_lock: int
    presence_window: timedelta
    this_instance: str | None
    cap: int
    instance_channel_prefix: str
    shared_channel: str
    events_channel: str
    audit_action: str


@dataclass(frozen=True)
class TriggerOutcome:
    """visant_manual_trigger()'s row for one request."""

    found: bool
    instance_id: str | None
    open_count: int
    first_expiry: datetime | None
    stored: bool


class ManualTriggerBatcher(StatementBatcher[TriggerAsk, TriggerOutcome]):
    """Stores manual triggers on up to `connections` pooled connections, `max_batch` a time."""

    name = "manual triggers"

    def __init__(
        self, engine: AsyncEngine, constants: BatchConstants, connections: int, max_batch: int
    ) -> None:
        super().__init__(engine, connections, max_batch, MANUAL_TRIGGER_BATCH.observe)
        self._constants = constants

    @property
    def instance_id(self) -> str | None:
        """The instance storing: it hands the command over itself when it holds the stream,
        and hears of the delivery (a command message's `reply_to`)."""
        return self._constants.this_instance

    def _order(self, batch: list[tuple[TriggerAsk, asyncio.Future[TriggerOutcome]]]) -> None:
        batch.sort(key=lambda waiting: waiting[0].device_id)  # the cap locks' order

    async def _run(self, asks: list[TriggerAsk], driver: Any) -> list[TriggerOutcome]:
        columns = [[getattr(ask, name) for ask in asks] for name, _ in _COLUMNS]
        c = self._constants
        rows = await driver.fetch(
            _BATCH_SQL,
            *columns,
            c.cap_lock,
            c.presence_window,
            c.this_instance,
            c.cap,
            c.instance_channel_prefix,
            c.shared_channel,
            c.events_channel,
            c.audit_action,
        )
        return [TriggerOutcome(*row.values()) for row in rows]
