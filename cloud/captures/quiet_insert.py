"""The common upload stored in one autocommitted statement: the capture, its trigger closed
and its console event, when it raises no alert; the uploads that wait share that statement.

An upload raises no alert when it matched no rule, or when every rule it matched is in its
cooldown for the device (a person standing in a zone: every upload matches, one alerts). The
statement checks that itself, so such an upload costs one round trip, where the transaction
(BEGIN, trigger lock, INSERT, cooldown read, COMMIT) took five. When the statement stores
nothing for an upload (an alert is due, or the trigger was closed or taken since admission)
the caller stores it in that transaction, which gives the alert or the trigger's verdict; the
transaction's INSERT is this same statement with no rule left to check.

Uploads that arrive while the statement's lanes are busy go together in the next one
(CaptureRows, cloud/core/batching.py): one round trip and one commit for all of them. The
statement is refused whole when one of its rows breaks a constraint (the same capture id
stored meanwhile, the device deleted); the batcher then runs each row alone, and the one
refused row is left for the transaction to sort out.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from cloud.core.batching import StatementBatcher
from cloud.events.notify import EVENTS_CHANNEL
from cloud.metrics.registry import UPLOAD_BATCH


@dataclass(frozen=True)
class CaptureRow:
    """One upload's capture row and what its statement checks and announces."""

    record_id: str
    device_id: str
    captured_at: datetime
    received_at: datetime
    trigger_id: str | None
    trigger_type: str  # an event capture's; a trigger's capture takes its trigger's
    trigger_label: str | None  # None or "": a trigger's capture takes its trigger's
    evaluation_status: str
    evaluation_result: str  # JSON
    metadata: str  # JSON
    detections: str  # JSON
    snapshot_key: str
    content_type: str
    size_bytes: int
    width: int
    height: int
    sha256: str
    client_capture_id: str | None
    matched_rules: str  # JSON array: stored only while each is in its cooldown
    cooldown_since: datetime  # a matched rule's alert after this keeps it in its cooldown
    event: str  # the console event announcing the capture


# One array parameter per field, in order, typed from its annotation.
_PG_TYPES = {"str": "text", "int": "integer", "datetime": "timestamptz"}
_COLUMNS = [(f.name, _PG_TYPES[str(f.type).removesuffix(" | None")]) for f in fields(CaptureRow)]
_ARRAYS = ", ".join(f"${n}::{kind}[]" for n, (_, kind) in enumerate(_COLUMNS, start=1))
_EVENTS_CHANNEL = len(_COLUMNS) + 1  # the parameter after the arrays

# `quiet`: the rows none of whose matched rules is outside its cooldown (each has a detection
# alert of the device raised after cooldown_since; ix_alerts_detection_cooldown serves it).
# A trigger's row moves its trigger to executed only while the trigger is still this device's
# and open (the UPDATE waits for a concurrent upload's lock and re-checks), and its capture
# is inserted only with it. Rows come back in the order given, `stored` true or false.
_STATEMENT = f"""
WITH a AS (
    SELECT * FROM unnest({_ARRAYS})
    WITH ORDINALITY AS a({", ".join(name for name, _ in _COLUMNS)}, n)),
quiet AS (
    SELECT a.* FROM a WHERE NOT EXISTS (
        SELECT FROM jsonb_array_elements_text(a.matched_rules::jsonb) AS matched(rule)
        WHERE NOT EXISTS (
            SELECT FROM alerts
            WHERE alerts.kind = 'detection' AND alerts.device_id = a.device_id
              AND alerts.rule = matched.rule AND alerts.created_at > a.cooldown_since))),
closed_trigger AS (
    UPDATE scheduled_triggers AS t
    SET status = 'executed', executed_at = q.received_at, finished_at = q.received_at,
        capture_id = q.record_id
    FROM quiet AS q
    WHERE t.trigger_id = q.trigger_id AND t.device_id = q.device_id
      AND t.status IN ('pending', 'sent')
    RETURNING q.n, t.trigger_type, t.trigger_label),
new_capture AS (
    INSERT INTO captures (record_id, device_id, captured_at, received_at, trigger_id,
        trigger_type, trigger_label, evaluation_status, evaluation_result, metadata,
        detections, snapshot_key, content_type, size_bytes, width, height, sha256,
        client_capture_id)
    SELECT q.record_id, q.device_id, q.captured_at, q.received_at, q.trigger_id,
           coalesce(c.trigger_type, q.trigger_type),
           CASE WHEN q.trigger_id IS NULL THEN q.trigger_label
                ELSE coalesce(nullif(q.trigger_label, ''), c.trigger_label) END,
           q.evaluation_status, q.evaluation_result::jsonb, q.metadata::jsonb,
           q.detections::jsonb, q.snapshot_key, q.content_type, q.size_bytes, q.width,
           q.height, q.sha256, q.client_capture_id
    FROM quiet AS q LEFT JOIN closed_trigger AS c ON c.n = q.n
    WHERE q.trigger_id IS NULL OR c.n IS NOT NULL
    ORDER BY q.n
    RETURNING record_id),
announced AS (
    SELECT visant_notify_heard(${_EVENTS_CHANNEL}::text, a.event)
    FROM new_capture JOIN a USING (record_id))
SELECT new_capture.record_id IS NOT NULL AS stored,
       (SELECT count(*) FROM announced) AS announced
FROM a LEFT JOIN new_capture USING (record_id)
ORDER BY a.n
"""


async def insert_unless_alerting(driver: Any, rows: list[CaptureRow]) -> list[bool]:
    """Whether each row was stored, its trigger closed and its event announced, in one
    statement: not a row one of whose matched rules is out of its cooldown, or whose trigger
    is no longer open. A constraint broken by any row (a repeat of the same upload won
    meanwhile, the device was deleted) refuses the statement whole:
    asyncpg.IntegrityConstraintViolationError. Inside a transaction on `driver` that leaves it
    aborted, for the caller to roll back; any other failure of an autocommitted statement
    may have stored the rows (its answer was lost)."""
    columns = [[getattr(row, name) for row in rows] for name, _ in _COLUMNS]
    return [record["stored"] for record in await driver.fetch(_STATEMENT, *columns, EVENTS_CHANNEL)]


class CaptureRows(StatementBatcher[CaptureRow, bool]):
    """Stores quiet uploads' rows, those that wait together; `submit` answers `stored`."""

    name = "capture rows"

    def __init__(self, engine: AsyncEngine, connections: int, max_batch: int) -> None:
        super().__init__(engine, connections, max_batch, UPLOAD_BATCH.labels("row").observe)

    def _order(self, batch: list[tuple[CaptureRow, asyncio.Future[bool]]]) -> None:
        # Triggers are locked in one order, so two batches cannot deadlock over them.
        batch.sort(key=lambda waiting: waiting[0].trigger_id or "")

    async def _run(self, asks: list[CaptureRow], driver: Any) -> list[bool]:
        return await insert_unless_alerting(driver, asks)
