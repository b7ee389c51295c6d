"""Deleting a device (stream closed, key dead, triggers ended, captures kept or deleted) and
its connection history."""

from __future__ import annotations

from pathlib import Path

import httpx
from sqlalchemy.orm import Session, sessionmaker

from cloud.models import Capture, Trigger, TriggerStatus, UserRole
from tests.accounts.test_users_api import _with_role
from tests.support.captures import capture_metadata, jpeg_bytes, make_trigger, upload_multipart
from tests.support.factories import Factory
from tests.support.live_server import LiveServer
from tests.support.streams import StreamReader
from tests.support.waiting import wait_until


def _history(client: httpx.Client, device_id: str) -> list[tuple[str, str | None]]:
    response = client.get(f"/v1/devices/{device_id}/connection")
    assert response.status_code == 200, response.text
    return [(e["event"], e["reason"]) for e in response.json()["events"]]


def test_delete_closes_stream_kills_key_fails_open_triggers_keeps_captures(
    live_server: LiveServer, factory: Factory, db: sessionmaker[Session]
) -> None:
    user = factory.user()
    device = factory.device(org_id=user.org_id, reported_config_version=1)
    open_trigger = make_trigger(db, device.device_id, TriggerStatus.PENDING)
    reader = StreamReader(live_server.url, device.device_id, device.key).start()
    try:
        with live_server.client(headers=user.headers) as client:
            reader.next_of("capture")  # the backlog: the stream is live
            stored = upload_multipart(
                client, device.headers, capture_metadata(device.device_id), jpeg_bytes()
            )
            assert stored.status_code == 201
            deleted = client.delete(f"/v1/devices/{device.device_id}")
            assert deleted.status_code == 204
            goodbye = reader.next_of("shutdown")
            assert goodbye.data == {"reason": "device deleted"}
            assert reader.ended.wait(10)
            gone = client.get(f"/v1/devices/{device.device_id}")
            listed = client.get("/v1/devices").json()["devices"]
            captures = client.get("/v1/captures").json()["captures"]
            again = client.delete(f"/v1/devices/{device.device_id}")
        with httpx.Client(base_url=live_server.url, headers=device.headers) as agent:
            stream = agent.get(f"/v1/devices/{device.device_id}/commands/poll?wait=0")
            upload = upload_multipart(
                agent, device.headers, capture_metadata(device.device_id), jpeg_bytes()
            )
    finally:
        reader.close()
    assert gone.status_code == 404 and listed == [] and again.status_code == 404
    assert [c["record_id"] for c in captures] == [stored.json()["record_id"]]
    assert (stream.status_code, upload.status_code) == (401, 401)
    with db() as session:
        trigger = session.get(Trigger, open_trigger)
        assert trigger is not None
        assert (trigger.status, trigger.error) == (TriggerStatus.FAILED, "device deleted")


def test_delete_with_captures_removes_rows_and_files_and_frees_the_id(
    live_server: LiveServer, factory: Factory, db: sessionmaker[Session]
) -> None:
    user = factory.user()
    device = factory.device(org_id=user.org_id)
    with live_server.client(headers=user.headers) as client:
        stored = upload_multipart(
            client, device.headers, capture_metadata(device.device_id), jpeg_bytes()
        )
        with db() as session:
            capture = session.get(Capture, stored.json()["record_id"])
            assert capture is not None
            snapshot = Path(live_server.settings.snapshots_dir) / capture.snapshot_key
        assert snapshot.exists()
        deleted = client.delete(f"/v1/devices/{device.device_id}?delete_captures=true")
        captures = client.get("/v1/captures").json()["captures"]
        reused = client.post("/v1/devices", json={"device_id": device.device_id})
        bad_flag = client.delete(f"/v1/devices/{device.device_id}?delete_captures=maybe")
    assert deleted.status_code == 204
    assert captures == [] and not snapshot.exists()
    assert reused.status_code == 201
    assert bad_flag.status_code == 422


def test_viewer_cannot_delete_and_other_org_is_404(
    live_server: LiveServer, factory: Factory, db: sessionmaker[Session]
) -> None:
    owner = factory.user()
    viewer = _with_role(db, factory.user(org_id=owner.org_id), UserRole.VIEWER)
    stranger = factory.user()
    device = factory.device(org_id=owner.org_id)
    with live_server.client() as client:
        denied = client.delete(f"/v1/devices/{device.device_id}", headers=viewer.headers)
        hidden = client.delete(f"/v1/devices/{device.device_id}", headers=stranger.headers)
    assert denied.status_code == 403 and hidden.status_code == 404


def test_connection_history_records_connects_and_reasons(
    live_server: LiveServer, factory: Factory
) -> None:
    user = factory.user()
    device = factory.device(org_id=user.org_id, reported_config_version=1)
    first = StreamReader(live_server.url, device.device_id, device.key).start()
    second = StreamReader(live_server.url, device.device_id, device.key).start()
    try:
        assert first.next_of("shutdown").data["reason"] == "replaced by a newer stream"
        with live_server.client(headers=user.headers) as client:
            wait_until(lambda: len(_history(client, device.device_id)) >= 3, 10)
            client.patch(f"/v1/devices/{device.device_id}", json={"status": "suspended"})
            assert second.next_of("shutdown", timeout=15).data["reason"] == "device is suspended"
            wait_until(lambda: len(_history(client, device.device_id)) >= 4, 10)
            events = _history(client, device.device_id)
    finally:
        first.close()
        second.close()
    assert events == [
        ("disconnected", "suspended"),
        ("connected", None),
        ("disconnected", "replaced"),
        ("connected", None),
    ] or events == [
        ("disconnected", "suspended"),
        ("disconnected", "replaced"),
        ("connected", None),
        ("connected", None),
    ]
