"""POST /v1/captures: both body formats, idempotency on trigger_id, trigger state, files."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session, sessionmaker

from cloud.captures.storage import FilesystemStore
from cloud.core.config import Settings
from cloud.models import (
    Capture,
    Device,
    EvaluationStatus,
    Trigger,
    TriggerStatus,
    TriggerType,
)
from tests.support.captures import (
    ActsOnFirstPut,
    capture_metadata,
    jpeg_bytes,
    make_trigger,
    png_bytes,
    snapshot_files,
    upload_json,
    upload_multipart,
)
from tests.support.factories import Factory
from tests.support.live_server import LiveServer


def test_multipart_upload_stores_capture_and_executes_trigger(
    live_server: LiveServer, factory: Factory, db: sessionmaker[Session], settings: Settings
) -> None:
    device = factory.device()
    trigger_id = make_trigger(db, device.device_id, TriggerStatus.SENT)
    image = jpeg_bytes(320, 240)
    detections = [{"label": "person", "confidence": 0.9, "box": [10, 20, 110, 220]}]
    metadata = capture_metadata(device.device_id, trigger_id, detections=detections)
    with live_server.client() as client:
        response = upload_multipart(client, device.headers, metadata, image)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "uploaded"
    assert body["evaluation_status"] == "completed"
    assert body["record_id"].startswith("cap_")
    with db() as session:
        capture = session.get(Capture, body["record_id"])
        trigger = session.get(Trigger, trigger_id)
    assert capture is not None and trigger is not None
    assert (capture.width, capture.height, capture.content_type) == (320, 240, "image/jpeg")
    assert capture.size_bytes == len(image)
    assert capture.trigger_type is TriggerType.MANUAL
    assert capture.trigger_label == "test"
    assert capture.detections == detections
    assert capture.capture_metadata == {"camera": "test"}
    assert trigger.status is TriggerStatus.EXECUTED
    assert trigger.capture_id == capture.record_id
    assert trigger.executed_at is not None and trigger.finished_at is not None
    files = snapshot_files(settings)
    assert len(files) == 1
    assert files[0].read_bytes() == image
    assert files[0].name == f"{capture.record_id}.jpg"
    assert files[0].relative_to(settings.snapshots_dir).parts[0] == device.device_id


def test_json_base64_upload_of_png_is_accepted(
    live_server: LiveServer, factory: Factory, db: sessionmaker[Session], settings: Settings
) -> None:
    device = factory.device()
    image = png_bytes(64, 48)
    with live_server.client() as client:
        response = upload_json(client, device.headers, capture_metadata(device.device_id), image)
    assert response.status_code == 201, response.text
    with db() as session:
        capture = session.get(Capture, response.json()["record_id"])
    assert capture is not None
    assert (capture.width, capture.height, capture.content_type) == (64, 48, "image/png")
    assert capture.trigger_type is TriggerType.EVENT and capture.trigger_id is None
    assert [p.suffix for p in snapshot_files(settings)] == [".png"]


def test_same_trigger_uploaded_twice_returns_same_record_once_stored(
    live_server: LiveServer, factory: Factory, db: sessionmaker[Session], settings: Settings
) -> None:
    device = factory.device()
    trigger_id = make_trigger(db, device.device_id, TriggerStatus.SENT)
    metadata = capture_metadata(device.device_id, trigger_id)
    with live_server.client() as client:
        first = upload_multipart(client, device.headers, metadata, jpeg_bytes(seed=1))
        again = upload_multipart(client, device.headers, metadata, jpeg_bytes(seed=2))
        as_json = upload_json(client, device.headers, metadata, jpeg_bytes(seed=3))
    assert [first.status_code, again.status_code, as_json.status_code] == [201, 200, 200]
    assert first.json() == again.json() == as_json.json()
    with db() as session:
        count = session.scalar(sa.select(sa.func.count()).select_from(Capture))
    assert count == 1
    assert len(snapshot_files(settings)) == 1
    assert snapshot_files(settings)[0].read_bytes() == jpeg_bytes(seed=1)


def test_pending_trigger_upload_is_accepted_before_it_was_marked_sent(
    live_server: LiveServer, factory: Factory, db: sessionmaker[Session]
) -> None:
    device = factory.device()
    trigger_id = make_trigger(db, device.device_id, TriggerStatus.PENDING)
    with live_server.client() as client:
        metadata = capture_metadata(device.device_id, trigger_id, trigger_label="override")
        response = upload_multipart(client, device.headers, metadata, jpeg_bytes())
    assert response.status_code == 201
    with db() as session:
        trigger = session.get(Trigger, trigger_id)
        capture = session.get(Capture, response.json()["record_id"])
    assert trigger is not None and trigger.status is TriggerStatus.EXECUTED
    assert capture is not None and capture.trigger_label == "override"


def test_trigger_refusals_unknown_other_device_and_terminal(
    live_server: LiveServer, factory: Factory, db: sessionmaker[Session], settings: Settings
) -> None:
    device = factory.device()
    other = factory.device(org_id=device.org_id)
    others_trigger = make_trigger(db, other.device_id)
    expired = make_trigger(db, device.device_id, TriggerStatus.EXPIRED)
    failed = make_trigger(db, device.device_id, TriggerStatus.FAILED)
    unknown = "trg_" + "0" * 32
    with live_server.client() as client:

        def upload(trigger_id: str) -> tuple[int, str]:
            metadata = capture_metadata(device.device_id, trigger_id)
            response = upload_multipart(client, device.headers, metadata, jpeg_bytes())
            return response.status_code, response.json()["detail"]

        results = [upload(t) for t in (unknown, others_trigger, expired, failed)]
    assert results == [
        (404, "trigger not found"),
        (404, "trigger not found"),
        (409, "trigger is expired; it takes no capture"),
        (409, "trigger is failed; it takes no capture"),
    ]
    with db() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Capture)) == 0
    assert snapshot_files(settings) == []


def test_evaluation_failure_is_recorded_not_refused(
    live_server: LiveServer, factory: Factory, db: sessionmaker[Session]
) -> None:
    bad_rules = {"evaluation": {"rules": [{"name": "x", "labels": []}]}}
    device = factory.device(config=bad_rules)
    with live_server.client() as client:
        response = upload_multipart(
            client, device.headers, capture_metadata(device.device_id), jpeg_bytes()
        )
    assert response.status_code == 201
    assert response.json()["evaluation_status"] == "failed"
    with db() as session:
        capture = session.get(Capture, response.json()["record_id"])
    assert capture is not None and capture.evaluation_status is EvaluationStatus.FAILED
    assert capture.evaluation_result is not None
    assert "invalid evaluation rules" in capture.evaluation_result["error"]


def test_zone_rule_raises_alert_from_bottom_centre(
    live_server: LiveServer, factory: Factory, db: sessionmaker[Session]
) -> None:
    # Zone: bottom half of the image. A person standing in it (feet at y=220 of 240) alerts.
    zone = [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]
    config = {"evaluation": {"rules": [{"name": "door", "labels": ["person"], "zone": zone}]}}
    device = factory.device(config=config)
    standing = [{"label": "person", "confidence": 0.8, "box": [100, 20, 140, 220]}]
    with live_server.client() as client:
        metadata = capture_metadata(device.device_id, detections=standing)
        response = upload_multipart(client, device.headers, metadata, jpeg_bytes(320, 240))
    with db() as session:
        capture = session.get(Capture, response.json()["record_id"])
    assert capture is not None and capture.evaluation_result is not None
    assert capture.evaluation_result["alert"] is True
    assert capture.evaluation_result["matched_rules"] == [{"name": "door", "detections": [0]}]


def test_concurrent_duplicate_uploads_store_one_capture(
    live_server: LiveServer, factory: Factory, db: sessionmaker[Session], settings: Settings
) -> None:
    device = factory.device()
    trigger_id = make_trigger(db, device.device_id, TriggerStatus.SENT)
    metadata = capture_metadata(device.device_id, trigger_id)

    def upload(seed: int) -> tuple[int, str]:
        with live_server.client() as client:
            response = upload_multipart(client, device.headers, metadata, jpeg_bytes(seed=seed))
        return response.status_code, response.json()["record_id"]

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(upload, range(6)))
    assert sorted(code for code, _ in results) == [200] * 5 + [201]
    assert len({record_id for _, record_id in results}) == 1
    with db() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Capture)) == 1
    assert len(snapshot_files(settings)) == 1


def test_failed_transaction_leaves_no_orphaned_file(
    live_server: LiveServer, factory: Factory, db: sessionmaker[Session], settings: Settings
) -> None:
    device = factory.device()
    assert live_server.app is not None

    def delete_device() -> None:  # while the upload's snapshot is written
        with db() as session:
            session.execute(sa.delete(Device).where(Device.device_id == device.device_id))
            session.commit()

    live_server.app.state.snapshot_store = ActsOnFirstPut(
        FilesystemStore(settings.snapshots_dir), delete_device
    )
    with live_server.client() as client:
        response = upload_multipart(
            client, device.headers, capture_metadata(device.device_id), jpeg_bytes()
        )
    assert response.status_code == 409
    assert snapshot_files(settings) == []


def test_nul_characters_are_422_not_a_failed_insert(
    live_server: LiveServer, factory: Factory
) -> None:
    device = factory.device()
    bad = [
        {"metadata": {"note": "a\u0000b"}},
        {"trigger_label": "x\u0000"},
        {"detections": [{"label": "p\u0000", "confidence": 0.5, "box": [0, 0, 1, 1]}]},
    ]
    with live_server.client() as client:
        codes = [
            upload_multipart(
                client, device.headers, capture_metadata(device.device_id, **fields), jpeg_bytes()
            ).status_code
            for fields in bad
        ]
    assert codes == [422, 422, 422]


def test_upload_fast_path_answers_and_counts_like_the_route(
    live_server: LiveServer, factory: Factory
) -> None:
    """uvicorn serves uploads with a bearer token in cloud/api/upload_fast_path.py and hands
    the rest to the FastAPI route: both answer with JSON and count under `/v1/captures`."""
    device = factory.device()
    other = factory.device()
    image = jpeg_bytes(64, 48)
    meta = capture_metadata(device.device_id)
    with live_server.client() as client:
        before = _upload_metrics(client)
        answers = {
            "no Authorization (route)": upload_multipart(client, {}, meta, image),
            "Basic (route)": upload_multipart(client, {"Authorization": "Basic abc"}, meta, image),
            "a user token (fast path)": upload_multipart(
                client, {"Authorization": "Bearer vu_x"}, meta, image
            ),
            "another device's key": upload_multipart(client, other.headers, meta, image),
            "stored": upload_multipart(
                client, {**device.headers, "Idempotency-Key": "fast-path-1"}, meta, image
            ),
            "stored before": upload_multipart(
                client, {**device.headers, "Idempotency-Key": "fast-path-1"}, meta, image
            ),
        }
        after = _upload_metrics(client)
    statuses = {name: answer.status_code for name, answer in answers.items()}
    assert statuses == {
        "no Authorization (route)": 401,
        "Basic (route)": 401,
        "a user token (fast path)": 401,
        "another device's key": 401,
        "stored": 201,
        "stored before": 200,
    }
    for name, answer in answers.items():
        assert isinstance(answer.json(), dict), (name, answer.text)
        if answer.status_code == 401:
            assert isinstance(answer.json()["detail"], str), (name, answer.text)
    assert answers["stored"].json()["record_id"] == answers["stored before"].json()["record_id"]
    assert answers["another device's key"].headers["www-authenticate"] == "Bearer"
    assert {k: after[k] - before[k] for k in after} == {"401": 4, "201": 1, "200": 1, "refused": 4}


def _upload_metrics(client: httpx.Client) -> dict[str, float]:
    """Requests of the upload route by status, and uploads refused as unauthorized."""
    counts = {"401": 0.0, "201": 0.0, "200": 0.0, "refused": 0.0}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "visant_http_requests_total" and labels.get("route") == (
                "/v1/captures"
            ):
                if labels["method"] == "POST" and labels["status"] in counts:
                    counts[labels["status"]] += sample.value
            elif sample.name == "visant_upload_refusals_total" and labels == {
                "reason": "unauthorized"
            }:
                counts["refused"] += sample.value
    return counts
