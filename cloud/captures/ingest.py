"""Capture ingest: the upload admitted, its snapshot written, its row stored once."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloud.alerts.rules import cooldown_of, raise_detection_alerts
from cloud.auth.service import device_key_hash
from cloud.captures.evaluation import EvaluationError, evaluate
from cloud.captures.images import ImageInfo
from cloud.captures.metadata import CaptureMetadata
from cloud.captures.quiet_insert import CaptureRow, insert_unless_alerting
from cloud.captures.storage import SnapshotStore, snapshot_key
from cloud.captures.upload_batches import UploadAdmissions, UploadAsk, UploadBatchers
from cloud.captures.upload_checks import (
    IngestResult,
    lock_trigger,
    looked_up_repeat,
    looked_up_trigger,
    previous_upload,
    trigger_verdict,
)
from cloud.core.config import Settings
from cloud.core.db import driver_statements
from cloud.core.errors import ApiError
from cloud.core.ids import new_record_id
from cloud.events.notify import EventKind, bounded_payload
from cloud.metrics import registry as metrics
from cloud.models import Device, EvaluationStatus, TriggerType

logger = logging.getLogger(__name__)


def evaluation_of(
    device: Device, detections: list[dict[str, Any]], info: ImageInfo, now: datetime
) -> tuple[EvaluationStatus, dict[str, Any]]:
    """Evaluate on upload (cheap, in memory): completed with a result, or failed with an error."""
    try:
        return EvaluationStatus.COMPLETED, evaluate(
            device.config, detections, info.width, info.height, now
        )
    except EvaluationError as exc:
        logger.warning("evaluation failed for device %s: %s", device.device_id, exc)
        return EvaluationStatus.FAILED, {"error": str(exc), "evaluated_at": now.isoformat()}


async def _discard_snapshot(store: SnapshotStore, key: str) -> None:
    try:
        await asyncio.to_thread(store.delete, key)
    except Exception:  # noqa: BLE001 - an orphaned file is logged, never a client error
        logger.exception("could not delete orphaned snapshot %s", key)


async def _admit(
    admissions: UploadAdmissions,
    settings: Settings,
    device_key: str | None,
    metadata: CaptureMetadata,
) -> Device | IngestResult:
    """Authenticate, count the upload, find a repeat and check its trigger: one statement,
    shared with the uploads admitted at the same time."""
    key_hash = device_key_hash(settings, metadata.device_id, device_key)
    ask = UploadAsk(metadata.device_id, key_hash, metadata.capture_id, metadata.trigger_id)
    admission = await admissions.submit(ask)
    if isinstance(admission.answer, ApiError):
        raise admission.answer
    if (previous := looked_up_repeat(admission.row)) is not None:
        return previous
    if metadata.trigger_id is not None:
        checked = trigger_verdict(metadata.device_id, looked_up_trigger(admission.row))
        if checked is not None:
            return checked
    return admission.answer


async def ingest_capture(
    session_factory: async_sessionmaker[AsyncSession],
    batchers: UploadBatchers,
    store: SnapshotStore,
    settings: Settings,
    device_key: str | None,
    metadata: CaptureMetadata,
    image: bytes,
    info: ImageInfo,
) -> IngestResult:
    """Store a capture once; the same trigger_id or capture_id again returns the first record.

    Order: admit (one statement), evaluate and write the snapshot with no connection and no
    lock held, then store the row: in one statement when it raises no alert and its trigger
    is still open (quiet_insert), else in a transaction that locks the trigger, inserts and
    raises the alerts. Both statements are shared with the uploads under way at the same time
    (upload_batches.py). The file is deleted only when its row certainly does not exist (a
    refusal, or a failure before the transaction committed); a failed COMMIT, or a failed or
    abandoned wait for the one statement, may have stored it, so that file is left for the
    orphan sweep in retention.
    """
    admitted = await _admit(batchers.admissions, settings, device_key, metadata)
    if isinstance(admitted, IngestResult):
        return admitted
    device = admitted
    now = datetime.now(UTC)
    record_id = new_record_id()
    key = snapshot_key(device.device_id, record_id, now, info.format.extension)
    detections = [d.model_dump() for d in metadata.detections]
    # Evaluated here (Python work, some tens of us): on the write's thread it cost more in
    # passing the GIL back and forth than it took; the write hashes the bytes, which releases
    # the GIL (docs/performance.md).
    evaluation_status, evaluation_result = evaluation_of(device, detections, info, now)
    # Shielded: if this request is cancelled mid-write, the write still finishes and the
    # except below waits for it before deleting, so no file is left behind.
    write = asyncio.ensure_future(store.save(key, image, info.content_type))
    try:
        digest = await asyncio.shield(write)
    except BaseException:
        await asyncio.wait([write])
        await _discard_snapshot(store, key)
        raise
    event = bounded_payload(
        device.org_id,
        EventKind.CAPTURE,
        device.device_id,
        capture_id=record_id,
        trigger_id=metadata.trigger_id,
        alert=bool(evaluation_result.get("alert")),
    )
    names, since = cooldown_of(device, evaluation_result, now)
    row = CaptureRow(
        record_id=record_id,
        device_id=device.device_id,
        captured_at=metadata.captured_at,
        received_at=now,
        trigger_id=metadata.trigger_id,
        trigger_type=TriggerType.EVENT,
        trigger_label=metadata.trigger_label,
        evaluation_status=evaluation_status,
        evaluation_result=json.dumps(evaluation_result),
        metadata=json.dumps(metadata.metadata),
        detections=json.dumps(detections),
        snapshot_key=key,
        content_type=info.content_type,
        size_bytes=len(image),
        width=info.width,
        height=info.height,
        sha256=digest,
        client_capture_id=metadata.capture_id,
        matched_rules=json.dumps(names),
        cooldown_since=since,
        event=event,
    )
    try:
        stored_quietly = await batchers.rows.submit(row)
    except asyncpg.IntegrityConstraintViolationError:
        stored_quietly = False  # refused: the transaction finds out why
    except BaseException:
        logger.warning("capture %s may be stored; its file %s is left", record_id, key)
        raise
    if not stored_quietly:
        async with session_factory() as session:
            result = await _store_in_transaction(
                session, store, device, metadata, row, evaluation_result, detections, info, now
            )
        if result is not None:
            return result
    logger.debug(
        "capture %s stored for device %s trigger %s",
        record_id,
        metadata.device_id,
        metadata.trigger_id,
        extra={"device_id": metadata.device_id, "trigger_id": metadata.trigger_id},
    )
    metrics.count_upload(len(image))
    return IngestResult(record_id, evaluation_status, True)


async def _store_in_transaction(
    session: AsyncSession,
    store: SnapshotStore,
    device: Device,
    metadata: CaptureMetadata,
    row: CaptureRow,
    evaluation_result: dict[str, Any],
    detections: list[dict[str, Any]],
    info: ImageInfo,
    now: datetime,
) -> IngestResult | None:
    """The upload the one statement did not store: its trigger locked and judged, the capture
    inserted with its alerts, committed; None when stored, else the earlier upload's result."""
    record_id, key = row.record_id, row.snapshot_key
    try:
        result = await _insert(session, device.device_id, metadata, row)
    except BaseException:
        await asyncio.shield(_discard_snapshot(store, key))  # nothing was committed
        raise
    if result is not None:  # a concurrent try of the same upload won
        await session.rollback()
        await _discard_snapshot(store, key)
        return result
    if evaluation_result.get("alert"):
        # Same transaction: the alert and its outbox rows exist iff the capture does.
        await raise_detection_alerts(
            session,
            device,
            record_id,
            evaluation_result,
            detections,
            (key, info.content_type),
            now,
        )
    try:
        await session.commit()
    except BaseException:
        logger.warning("commit of capture %s failed; its file %s is left", record_id, key)
        raise
    return None


async def _insert(
    session: AsyncSession, device_id: str, metadata: CaptureMetadata, row: CaptureRow
) -> IngestResult | None:
    """Lock the trigger, then insert the capture (and close the trigger) and announce its
    event in this transaction with quiet_insert's statement, no rule left for it to check;
    None when inserted."""
    if metadata.trigger_id is not None:
        checked = await lock_trigger(session, device_id, metadata.trigger_id)
        if checked is not None:
            return checked
    try:
        async with driver_statements(await session.connection()) as driver:
            unchecked = replace(row, matched_rules="[]")
            if (await insert_unless_alerting(driver, [unchecked]))[0]:
                return None
    except asyncpg.IntegrityConstraintViolationError:
        pass
    # Refused, with no savepoint (two round trips per upload): the aborted transaction holds
    # only the trigger lock, so it is rolled back and the winner read afresh.
    await session.rollback()
    previous = await previous_upload(session, device_id, metadata.trigger_id, metadata.capture_id)
    if previous is not None:
        return previous
    # The device (and its triggers) deleted meanwhile.
    raise ApiError(409, "capture conflicts with a concurrent change")
