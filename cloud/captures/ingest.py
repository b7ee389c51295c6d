"""Capture ingest: one transaction stores the capture and closes its trigger."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cloud.alerts.rules import cooldown_of, raise_detection_alerts
from cloud.auth.device_admission import authenticate_and_count
from cloud.captures.evaluation import EvaluationError, evaluate
from cloud.captures.images import ImageInfo
from cloud.captures.metadata import CaptureMetadata
from cloud.captures.quiet_insert import insert_unless_alerting
from cloud.captures.storage import SnapshotStore, snapshot_key
from cloud.captures.upload_checks import (
    UPLOAD_LOOKUPS,
    IngestResult,
    lock_trigger,
    looked_up_repeat,
    looked_up_trigger,
    previous_upload,
    trigger_verdict,
)
from cloud.core.config import Settings
from cloud.core.db import bound_engine, driver_statements, pooled_driver
from cloud.core.errors import ApiError
from cloud.core.ids import new_record_id
from cloud.events.notify import EventKind, bounded_payload
from cloud.limits.counters import Limit
from cloud.metrics import registry as metrics
from cloud.models import (
    Device,
    EvaluationStatus,
    TriggerType,
)

logger = logging.getLogger(__name__)


def upload_limit(settings: Settings) -> Limit:
    return Limit("uploads", settings.uploads_per_device_per_minute, 60)


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


@dataclass(frozen=True)
class StoredSnapshot:
    evaluation_status: EvaluationStatus
    evaluation_result: dict[str, Any]
    sha256: str


def _evaluate_and_store(
    device: Device,
    detections: list[dict[str, Any]],
    info: ImageInfo,
    now: datetime,
    store: SnapshotStore,
    key: str,
    image: bytes,
) -> StoredSnapshot:
    """Evaluate, hash and write the snapshot (blocking: one thread hop for all three)."""
    status, result = evaluation_of(device, detections, info, now)
    digest = hashlib.sha256(image).hexdigest()
    store.put(key, image, info.content_type)
    return StoredSnapshot(status, result, digest)


async def _discard_snapshot(store: SnapshotStore, key: str) -> None:
    try:
        await asyncio.to_thread(store.delete, key)
    except Exception:  # noqa: BLE001 - an orphaned file is logged, never a client error
        logger.exception("could not delete orphaned snapshot %s", key)


async def _admit(
    engine: AsyncEngine, settings: Settings, device_key: str | None, metadata: CaptureMetadata
) -> Device | IngestResult:
    """Authenticate, count the upload, find a repeat and check its trigger: one statement."""
    async with pooled_driver(engine) as driver:
        device, row = await authenticate_and_count(
            driver,
            settings,
            metadata.device_id,
            device_key,
            upload_limit(settings),
            "too many uploads from this device",
            UPLOAD_LOOKUPS,
            (metadata.capture_id, metadata.trigger_id),
        )
    if (previous := looked_up_repeat(row)) is not None:
        return previous
    if metadata.trigger_id is not None:
        checked = trigger_verdict(device.device_id, looked_up_trigger(row))
        if checked is not None:
            return checked
    return device


async def ingest_capture(
    session_factory: async_sessionmaker[AsyncSession],
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
    raises the alerts. The file is deleted only when its row certainly does not exist (a
    refusal, or a failure before anything was sent or committed); a failed COMMIT or a lost
    answer to the one statement may have stored it, so that file is left for the orphan sweep
    in retention.
    """
    engine = bound_engine(session_factory)
    admitted = await _admit(engine, settings, device_key, metadata)
    if isinstance(admitted, IngestResult):
        return admitted
    device = admitted
    now = datetime.now(UTC)
    record_id = new_record_id()
    key = snapshot_key(device.device_id, record_id, now, info.format.extension)
    detections = [d.model_dump() for d in metadata.detections]
    # Shielded: if this request is cancelled mid-write, the thread still finishes and the
    # except below waits for it before deleting, so no file is left behind.
    write = asyncio.ensure_future(
        asyncio.to_thread(_evaluate_and_store, device, detections, info, now, store, key, image)
    )
    try:
        stored = await asyncio.shield(write)
    except BaseException:
        await asyncio.wait([write])
        await _discard_snapshot(store, key)
        raise
    evaluation_status, evaluation_result = stored.evaluation_status, stored.evaluation_result
    values = {
        "record_id": record_id,
        "device_id": device.device_id,
        "captured_at": metadata.captured_at,
        "received_at": now,
        "trigger_id": metadata.trigger_id,
        "trigger_type": TriggerType.EVENT,
        "trigger_label": metadata.trigger_label,
        "evaluation_status": evaluation_status,
        "evaluation_result": evaluation_result,
        "metadata": metadata.metadata,  # the column's name (attribute capture_metadata)
        "detections": detections,
        "snapshot_key": key,
        "content_type": info.content_type,
        "size_bytes": len(image),
        "width": info.width,
        "height": info.height,
        "sha256": stored.sha256,
        "client_capture_id": metadata.capture_id,
    }
    event = bounded_payload(
        device.org_id,
        EventKind.CAPTURE,
        device.device_id,
        capture_id=record_id,
        trigger_id=metadata.trigger_id,
        alert=bool(evaluation_result.get("alert")),
    )
    names, since = cooldown_of(device, evaluation_result, now)
    sent = False
    try:
        async with pooled_driver(engine) as driver:
            sent = True
            stored_quietly = await insert_unless_alerting(driver, values, names, since, event)
    except BaseException:
        if not sent:  # no connection: nothing was stored
            await asyncio.shield(_discard_snapshot(store, key))
        else:
            logger.warning("capture %s may be stored; its file %s is left", record_id, key)
        raise
    if not stored_quietly:
        async with session_factory() as session:
            result = await _store_in_transaction(
                session, store, device, metadata, values, event, detections, info, now
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
    values: dict[str, Any],
    event: str,
    detections: list[dict[str, Any]],
    info: ImageInfo,
    now: datetime,
) -> IngestResult | None:
    """The upload the one statement did not store: its trigger locked and judged, the capture
    inserted with its alerts, committed; None when stored, else the earlier upload's result."""
    record_id, key = values["record_id"], values["snapshot_key"]
    try:
        result = await _insert(session, device.device_id, metadata, values, event)
    except BaseException:
        await asyncio.shield(_discard_snapshot(store, key))  # nothing was committed
        raise
    if result is not None:  # a concurrent try of the same upload won
        await session.rollback()
        await _discard_snapshot(store, key)
        return result
    evaluation_result = values["evaluation_result"]
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
    session: AsyncSession,
    device_id: str,
    metadata: CaptureMetadata,
    values: dict[str, Any],
    event: str,
) -> IngestResult | None:
    """Lock the trigger, then insert the capture (and close the trigger) and announce `event`
    in this transaction with quiet_insert's statement, no rule left for it to check; None when
    inserted."""
    if metadata.trigger_id is not None:
        checked = await lock_trigger(session, device_id, metadata.trigger_id)
        if checked is not None:
            return checked
    async with driver_statements(await session.connection()) as driver:
        if await insert_unless_alerting(driver, values, [], values["received_at"], event):
            return None
    # Refused, with no savepoint (two round trips per upload): the aborted transaction holds
    # only the trigger lock, so it is rolled back and the winner read afresh.
    await session.rollback()
    previous = await previous_upload(session, device_id, metadata.trigger_id, metadata.capture_id)
    if previous is not None:
        return previous
    # The device (and its triggers) deleted meanwhile.
    raise ApiError(409, "capture conflicts with a concurrent change")
