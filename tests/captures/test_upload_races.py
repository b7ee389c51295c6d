"""Uploads whose trigger or capture id changes hands while their snapshot is written: the
one-statement store finds nothing to do and the transaction gives the right answer; an
alerting upload is stored with its alert and its trigger closed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from cloud.captures.storage import FilesystemStore
from cloud.core.config import Settings
from cloud.models import Alert, AlertKind, Capture, Trigger, TriggerStatus
from tests.support.alerts import PERSON, door_rules
from tests.support.captures import (
    ActsOnFirstPut,
    capture_metadata,
    jpeg_bytes,
    make_trigger,
    snapshot_files,
    upload_multipart,
)
from tests.support.factories import Factory
from tests.support.live_server import LiveServer


def _act_on_first_put(server: LiveServer, settings: Settings, action: Callable[[], None]) -> None:
    assert server.app is not None
    server.app.state.snapshot_store = ActsOnFirstPut(
        FilesystemStore(settings.snapshots_dir), action
    )


def test_a_trigger_expired_meanwhile_is_409_and_leaves_nothing(
    live_server: LiveServer, factory: Factory, db: sessionmaker[Session], settings: Settings
) -> None:
    device = factory.device()
    trigger_id = make_trigger(db, device.device_id, TriggerStatus.SENT)

    def expire() -> None:
        with db() as session:
            session.execute(
                sa.update(Trigger)
                .where(Trigger.trigger_id == trigger_id)
                .values(status=TriggerStatus.EXPIRED, finished_at=datetime.now(UTC))
            )
            session.commit()

    _act_on_first_put(live_server, settings, expire)
    with live_server.client() as client:
        response = upload_multipart(
            client, device.headers, capture_metadata(device.device_id, trigger_id), jpeg_bytes()
        )
    assert response.status_code == 409, response.text
    assert response.json()["detail"] == "trigger is expired; it takes no capture"
    with db() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Capture)) == 0
        assert session.get(Trigger, trigger_id).status is TriggerStatus.EXPIRED  # type: ignore[union-attr]
    assert snapshot_files(settings) == []


def test_a_trigger_taken_meanwhile_answers_the_winners_record(
    live_server: LiveServer, factory: Factory, db: sessionmaker[Session], settings: Settings
) -> None:
    """Another try of the same trigger (another capture id) is stored while this one's
    snapshot is written: this one answers 200 with that record and keeps no file."""
    device = factory.device()
    trigger_id = make_trigger(db, device.device_id, TriggerStatus.SENT)
    winner: dict[str, object] = {}

    def upload_again() -> None:
        with live_server.client() as client:
            metadata = capture_metadata(device.device_id, trigger_id, capture_id="second-try")
            response = upload_multipart(client, device.headers, metadata, jpeg_bytes(seed=2))
        winner.update(status=response.status_code, record_id=response.json()["record_id"])

    _act_on_first_put(live_server, settings, upload_again)
    with live_server.client() as client:
        metadata = capture_metadata(device.device_id, trigger_id, capture_id="first-try")
        response = upload_multipart(client, device.headers, metadata, jpeg_bytes(seed=1))
    assert winner["status"] == 201
    assert (response.status_code, response.json()["record_id"]) == (200, winner["record_id"])
    with db() as session:
        captures = session.scalars(sa.select(Capture)).all()
        trigger = session.get(Trigger, trigger_id)
    assert [c.record_id for c in captures] == [winner["record_id"]]
    assert trigger is not None and trigger.status is TriggerStatus.EXECUTED
    assert trigger.capture_id == winner["record_id"]
    assert [p.stem for p in snapshot_files(settings)] == [winner["record_id"]]


def test_the_same_capture_id_stored_meanwhile_answers_that_record(
    live_server: LiveServer, factory: Factory, db: sessionmaker[Session], settings: Settings
) -> None:
    """The agent's retry of an event capture lands while the first try's snapshot is being
    written (the INSERT is refused on the capture id): both answer the one record."""
    device = factory.device()
    metadata = capture_metadata(device.device_id, capture_id="event-0001")
    retried: dict[str, object] = {}

    def retry() -> None:
        with live_server.client() as client:
            response = upload_multipart(client, device.headers, metadata, jpeg_bytes(seed=3))
        retried.update(status=response.status_code, record_id=response.json()["record_id"])

    _act_on_first_put(live_server, settings, retry)
    with live_server.client() as client:
        response = upload_multipart(client, device.headers, metadata, jpeg_bytes(seed=3))
    assert retried.get("status") == 201, (response.status_code, response.text)
    assert (response.status_code, response.json()["record_id"]) == (200, retried["record_id"])
    with db() as session:
        assert session.scalars(sa.select(Capture.record_id)).all() == [retried["record_id"]]
    assert [p.stem for p in snapshot_files(settings)] == [retried["record_id"]]


def test_an_alerting_trigger_upload_closes_its_trigger_with_its_alert(
    live_server: LiveServer, factory: Factory, db: sessionmaker[Session]
) -> None:
    """The first matching upload (an alert due) is stored by the transaction, the next one
    (inside the cooldown) by the one statement: both close their triggers, one alert."""
    device = factory.device(config=door_rules(cooldown_seconds=300))
    triggers = [make_trigger(db, device.device_id, TriggerStatus.SENT) for _ in range(2)]
    with live_server.client() as client:
        responses = [
            upload_multipart(
                client,
                device.headers,
                capture_metadata(device.device_id, trigger_id, detections=PERSON),
                jpeg_bytes(),
            )
            for trigger_id in triggers
        ]
    assert [r.status_code for r in responses] == [201, 201], [r.text for r in responses]
    records = [r.json()["record_id"] for r in responses]
    with db() as session:
        closed = [session.get(Trigger, t) for t in triggers]
        alerts = session.scalars(sa.select(Alert).where(Alert.kind == AlertKind.DETECTION)).all()
        stored = [session.get(Capture, r) for r in records]
    assert [(t.status, t.capture_id) for t in closed if t] == [
        (TriggerStatus.EXECUTED, records[0]),
        (TriggerStatus.EXECUTED, records[1]),
    ]
    assert [a.capture_id for a in alerts] == [records[0]]
    assert all(c is not None and c.evaluation_result["alert"] is True for c in stored)
    assert [c.trigger_label for c in stored if c] == ["test", "test"]
