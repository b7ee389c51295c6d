"""What an upload is checked against: an earlier try of it (same capture id), and the trigger
it names (read unlocked when admitting it, then locked when storing it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.auth.device_admission import AdmissionLookups
from cloud.core.errors import ApiError
from cloud.models import (
    OPEN_TRIGGER_STATUSES,
    Capture,
    EvaluationStatus,
    Trigger,
    TriggerStatus,
)


@dataclass(frozen=True)
class IngestResult:
    record_id: str
    evaluation_status: EvaluationStatus
    created: bool


@dataclass(frozen=True)
class TriggerState:
    """What an upload needs to know of the trigger it names (None fields: no such trigger)."""

    device_id: str | None
    status: str | None
    capture_id: str | None
    capture_status: str | None  # of the capture that closed it, when visible


def trigger_verdict(device_id: str, state: TriggerState) -> IngestResult | None:
    """None for the device's open trigger, the result of the upload that already closed it,
    or the refusal (404 not this device's, 409 terminal without a capture)."""
    if state.device_id is None or state.device_id != device_id:
        raise ApiError(404, "trigger not found")
    if state.capture_id is not None and state.capture_status is not None:
        return IngestResult(state.capture_id, EvaluationStatus(state.capture_status), False)
    status = TriggerStatus(state.status)
    if status not in OPEN_TRIGGER_STATUSES:
        raise ApiError(409, f"trigger is {status.value}; it takes no capture")
    return None


# The trigger locked against a concurrent upload or the reaper, with the capture that already
# closed it (if any), in one round trip.
_LOCK_TRIGGER = (
    sa.select(
        Trigger.device_id,
        Trigger.status,
        Trigger.capture_id,
        Capture.evaluation_status,
    )
    .outerjoin(Capture, Capture.record_id == Trigger.capture_id)
    .where(Trigger.trigger_id == sa.bindparam("trigger_id"))
    .with_for_update(of=Trigger)
)


async def lock_trigger(
    session: AsyncSession, device_id: str, trigger_id: str
) -> IngestResult | None:
    """Lock the trigger: None when it is the device's and open, else the result of the upload
    that already closed it (or the refusal, as trigger_verdict)."""
    row = (await session.execute(_LOCK_TRIGGER, {"trigger_id": trigger_id})).one_or_none()
    if row is None:
        raise ApiError(404, "trigger not found")
    capture_status = row.evaluation_status
    if row.capture_id is not None and capture_status is None:
        # We waited for the lock while another upload closed this trigger: the re-checked
        # trigger row is current, but the joined capture is not in this statement's snapshot.
        capture_status = await session.scalar(
            sa.select(Capture.evaluation_status).where(Capture.record_id == row.capture_id)
        )
    return trigger_verdict(
        device_id, TriggerState(row.device_id, row.status, row.capture_id, capture_status)
    )


# Read in the admission's statement: the record an earlier try of this upload stored (same
# capture id) and the trigger it names, unlocked (a repeat or a refused trigger then costs no
# snapshot write). Per upload: its capture id and trigger id (NULL: none).
UPLOAD_LOOKUPS = AdmissionLookups(
    arrays=(("capture_id", "text"), ("trigger_id", "text")),
    columns=""",
        p.record_id AS previous_id, p.evaluation_status AS previous_status,
        t.device_id AS trigger_device_id, t.status AS trigger_status,
        t.capture_id AS trigger_capture_id, tc.evaluation_status AS trigger_capture_status""",
    joins="""
    LEFT JOIN captures AS p
        ON p.device_id = d.device_id AND p.client_capture_id = asked.capture_id
    LEFT JOIN scheduled_triggers AS t ON t.trigger_id = asked.trigger_id
    LEFT JOIN captures AS tc ON tc.record_id = t.capture_id""",
)


def looked_up_repeat(row: Mapping[str, Any]) -> IngestResult | None:
    """From an UPLOAD_LOOKUPS row: the record an earlier try of this upload stored, if any."""
    if row["previous_id"] is None:
        return None
    return IngestResult(row["previous_id"], EvaluationStatus(row["previous_status"]), False)


def looked_up_trigger(row: Mapping[str, Any]) -> TriggerState:
    """From an UPLOAD_LOOKUPS row: the named trigger as it was read, unlocked."""
    return TriggerState(
        row["trigger_device_id"],
        row["trigger_status"],
        row["trigger_capture_id"],
        row["trigger_capture_status"],
    )


async def previous_upload(
    session: AsyncSession, device_id: str, trigger_id: str | None, capture_id: str | None
) -> IngestResult | None:
    """The record an earlier try of this upload stored (same capture id), if any."""
    if capture_id is None:
        return None
    row = (
        await session.execute(
            sa.select(Capture.record_id, Capture.evaluation_status).where(
                Capture.device_id == device_id, Capture.client_capture_id == capture_id
            )
        )
    ).one_or_none()
    return None if row is None else IngestResult(row.record_id, row.evaluation_status, False)
