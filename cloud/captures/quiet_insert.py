"""The common upload stored in one autocommitted statement on the driver connection: the
capture, its trigger closed and its console event, when it raises no alert.

An upload raises no alert when it matched no rule, or when every rule it matched is in its
cooldown for the device (a person standing in a zone: every upload matches, one alerts). The
statement checks that itself, so such an upload costs one round trip, where the transaction
(BEGIN, trigger lock, INSERT, cooldown read, COMMIT) took five. When the statement stores
nothing (an alert is due, or the trigger was closed or taken since admission) the caller
stores the upload in that transaction, which gives the alert or the trigger's verdict; the
transaction's INSERT is this same statement with no rule left to check.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg

from cloud.events.notify import EVENTS_CHANNEL

# True when none of the matched rules ($16) is outside its cooldown: each has a detection
# alert of this device raised after $17 (the index ix_alerts_detection_cooldown serves it).
_QUIET = """
    gate AS (SELECT NOT EXISTS (
        SELECT FROM unnest($16::text[]) AS matched(rule)
        WHERE NOT EXISTS (
            SELECT FROM alerts
            WHERE alerts.kind = 'detection' AND alerts.device_id = $2::text
              AND alerts.rule = matched.rule AND alerts.created_at > $17::timestamptz)
    ) AS quiet)"""

_COLUMNS = """record_id, device_id, captured_at, received_at, trigger_id, trigger_type,
    trigger_label, evaluation_status, evaluation_result, metadata, detections, snapshot_key,
    content_type, size_bytes, width, height, sha256, client_capture_id"""

# The values after trigger_label; parameters $1-$15 in every variant.
_VALUES_TAIL = """$5::text, $6::jsonb, $7::jsonb, $8::jsonb, $9::text, $10::text,
    $11::integer, $12::integer, $13::integer, $14::text, $15::text"""

# The console event ($18 channel, $19 payload) only for a stored capture.
_ANNOUNCED = """
    announced AS (SELECT visant_notify_heard($18::text, $19::text) FROM new_capture)
SELECT (SELECT record_id FROM new_capture) AS record_id,
       (SELECT count(*) FROM announced) AS announced"""

# An event capture: $20 trigger label, $21 trigger type.
_EVENT_CAPTURE = f"""
WITH {_QUIET},
new_capture AS (
    INSERT INTO captures ({_COLUMNS})
    SELECT $1::text, $2::text, $3::timestamptz, $4::timestamptz, NULL, $21::text, $20::text,
           {_VALUES_TAIL}
    FROM gate WHERE gate.quiet
    RETURNING record_id),
{_ANNOUNCED}
"""

# A trigger's capture ($21 trigger id): the trigger moves to executed only while it is still
# this device's and open (the UPDATE waits for a concurrent upload's lock and re-checks), and
# the capture is inserted only with it, taking the trigger's type and, unless the upload
# named one ($20), its label.
_TRIGGER_CAPTURE = f"""
WITH {_QUIET},
closed_trigger AS (
    UPDATE scheduled_triggers AS t
    SET status = 'executed', executed_at = $4::timestamptz, finished_at = $4::timestamptz,
        capture_id = $1::text
    FROM gate
    WHERE gate.quiet AND t.trigger_id = $21::text AND t.device_id = $2::text
      AND t.status IN ('pending', 'sent')
    RETURNING t.trigger_type, t.trigger_label),
new_capture AS (
    INSERT INTO captures ({_COLUMNS})
    SELECT $1::text, $2::text, $3::timestamptz, $4::timestamptz, $21::text,
           closed_trigger.trigger_type,
           coalesce(nullif($20::text, ''), closed_trigger.trigger_label),
           {_VALUES_TAIL}
    FROM closed_trigger
    RETURNING record_id),
{_ANNOUNCED}
"""


async def insert_unless_alerting(
    driver: Any,
    values: dict[str, Any],
    matched_rules: list[str],
    cooldown_since: datetime,
    event: str,
) -> bool:
    """Whether the capture `values` (the captures columns) was stored, its trigger closed and
    `event` announced, in one statement: not when one of `matched_rules` is out of its
    cooldown since `cooldown_since`, the trigger is no longer open, or the statement was
    refused (a repeat of the same upload won meanwhile, the device was deleted); the
    transaction sorts those out. Any other failure is raised, and the capture may then exist
    (an autocommitted statement whose answer was lost). Inside a transaction on `driver`, a
    refusal leaves it aborted, for the caller to roll back."""
    trigger_id = values["trigger_id"]
    statement = _EVENT_CAPTURE if trigger_id is None else _TRIGGER_CAPTURE
    # $21: the event capture's type, or the trigger whose type and label the capture takes.
    type_or_trigger = values["trigger_type"] if trigger_id is None else trigger_id
    try:
        row = await driver.fetchrow(
            statement,
            values["record_id"],
            values["device_id"],
            values["captured_at"],
            values["received_at"],
            values["evaluation_status"],
            json.dumps(values["evaluation_result"]),
            json.dumps(values["metadata"]),
            json.dumps(values["detections"]),
            values["snapshot_key"],
            values["content_type"],
            values["size_bytes"],
            values["width"],
            values["height"],
            values["sha256"],
            values["client_capture_id"],
            matched_rules,
            cooldown_since,
            EVENTS_CHANNEL,
            event,
            values["trigger_label"],
            type_or_trigger,
        )
    except asyncpg.IntegrityConstraintViolationError:
        return False
    return row["record_id"] is not None
