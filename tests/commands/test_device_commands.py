"""Device commands and health reports through the real server, stream and database."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from cloud.models import DeviceCommand, TriggerStatus, User, UserRole
from tests.support.factories import Factory
from tests.support.live_server import LiveServer
from tests.support.streams import StreamReader
from tests.support.waiting import wait_until

HEALTH = {
    "uptime_seconds": 12.5,
    "agent_version": "2.0.0",
    "spool_depth": 3,
    "spool_oldest_seconds": 40.0,
    "disk_free_bytes": 1_000_000,
    "detector": {"backend": "opencv", "last_inference_ms": 12.0},
    "camera": {"state": "ok", "last_frame_age_seconds": 3.0},
    "cpu_load": [0.5, 0.4, 0.3],
}


def _command(db: sessionmaker[Session], command_id: str) -> DeviceCommand:
    with db() as session:
        command = session.get(DeviceCommand, command_id)
        assert command is not None
        return command


def test_ping_to_connected_device_is_sent_and_its_answer_carries_round_trip(
    live_server: LiveServer, factory: Factory, db: sessionmaker[Session]
) -> None:
    user = factory.user()
    device = factory.device(org_id=user.org_id)
    reader = StreamReader(live_server.url, device.device_id, device.key).start()
    try:
        with live_server.client() as client:
            response = client.post(
                f"/v1/devices/{device.device_id}/commands",
                json={"type": "ping"},
                headers=user.headers,
            )
            assert response.status_code == 200, response.text
            accepted = response.json()
            assert accepted["status"] == "sent"
            event = reader.next_of("ping")
            assert event.id == accepted["command_id"]
            assert event.data["type"] == "ping" and event.data["expires_at"].endswith("Z")
            wait_until(lambda: _command(db, accepted["command_id"]).sent_at is not None, 10)
            answer = client.post(
                f"/v1/devices/{device.device_id}/commands/{accepted['command_id']}/result",
                json={"result": {"agent": "ok"}},
                headers=device.headers,
            )
            assert answer.status_code == 200, answer.text
            shown = client.get(f"/v1/commands/{accepted['command_id']}", headers=user.headers)
            again = client.post(
                f"/v1/devices/{device.device_id}/commands/{accepted['command_id']}/result",
                json={"result": {}},
                headers=device.headers,
            )
    finally:
        reader.close()
    body = shown.json()
    assert body["type"] == "ping" and body["status"] == "executed"
    assert body["result"]["agent"] == "ok" and body["result"]["round_trip_ms"] >= 0
    assert again.status_code == 409 and "executed" in again.json()["detail"]


def test_command_for_offline_device_is_pending_then_in_its_backlog(
    live_server: LiveServer, factory: Factory
) -> None:
    user = factory.user()
    device = factory.device(org_id=user.org_id)
    with live_server.client() as client:
        response = client.post(
            f"/v1/devices/{device.device_id}/commands",
            json={"type": "diagnostics", "ttl_seconds": 60},
            headers=user.headers,
        )
    assert response.json()["status"] == "pending"
    reader = StreamReader(live_server.url, device.device_id, device.key).start()
    try:
        assert reader.next_of("diagnostics").id == response.json()["command_id"]
    finally:
        reader.close()


def test_unanswered_command_expires(
    start_server, factory: Factory, db: sessionmaker[Session]
) -> None:
    server = start_server(reaper_interval_seconds=0.1)
    user = factory.user()
    device = factory.device(org_id=user.org_id)
    with server.client() as client:
        response = client.post(
            f"/v1/devices/{device.device_id}/commands",
            json={"type": "restart", "ttl_seconds": 1},
            headers=user.headers,
        )
    command_id = response.json()["command_id"]
    wait_until(lambda: _command(db, command_id).status == TriggerStatus.EXPIRED, 15)


def test_commands_need_operator_and_stay_in_the_org(
    live_server: LiveServer, factory: Factory, db: sessionmaker[Session]
) -> None:
    user = factory.user()
    device = factory.device(org_id=user.org_id)
    viewer = factory.user(org_id=user.org_id)
    with db() as session:
        session.execute(
            sa.update(User).where(User.user_id == viewer.user_id).values(role=UserRole.VIEWER)
        )
        session.commit()
    stranger = factory.user()
    path = f"/v1/devices/{device.device_id}/commands"
    with live_server.client() as client:
        assert client.post(path, json={"type": "ping"}, headers=viewer.headers).status_code == 403
        assert client.post(path, json={"type": "ping"}, headers=stranger.headers).status_code == 404
        bad = client.post(path, json={"type": "reboot"}, headers=user.headers)
        assert bad.status_code == 422 and "detail" in bad.json()
        command_id = client.post(path, json={"type": "ping"}, headers=user.headers).json()[
            "command_id"
        ]
        assert client.get(f"/v1/commands/{command_id}", headers=stranger.headers).status_code == 404
        assert client.get("/v1/commands/nonsense", headers=user.headers).status_code == 404
        both = client.post(
            f"{path}/{command_id}/result",
            json={"result": {}, "error": "x"},
            headers=device.headers,
        )
        assert both.status_code == 422
        failed = client.post(
            f"{path}/{command_id}/result", json={"error": "busy"}, headers=device.headers
        )
        assert failed.json()["status"] == "failed" and failed.json()["error"] == "busy"


def test_health_report_shows_in_device_and_is_bounded(
    live_server: LiveServer, factory: Factory
) -> None:
    user = factory.user()
    device = factory.device(org_id=user.org_id)
    with live_server.client() as client:
        before = client.get(f"/v1/devices/{device.device_id}", headers=user.headers).json()
        posted = client.post(
            f"/v1/devices/{device.device_id}/health", json=HEALTH, headers=device.headers
        )
        after = client.get(f"/v1/devices/{device.device_id}", headers=user.headers).json()
        huge = client.post(
            f"/v1/devices/{device.device_id}/health",
            json={**HEALTH, "padding": "x" * 20000},
            headers=device.headers,
        )
        wrong = client.post(
            f"/v1/devices/{device.device_id}/health",
            json={"spool_depth": -1},
            headers=device.headers,
        )
        no_key = client.post(f"/v1/devices/{device.device_id}/health", json=HEALTH)
    assert before["health"] is None
    assert posted.status_code == 200, posted.text
    health = after["health"]
    assert health["spool_depth"] == 3 and health["camera"]["state"] == "ok"
    assert health["reported_at"].endswith("Z") and health["cpu_load"] == [0.5, 0.4, 0.3]
    assert huge.status_code == 422 and "larger than" in huge.json()["detail"]
    assert wrong.status_code == 422
    assert no_key.status_code == 401
