"""Notifications end to end over real sockets: webhooks, Apprise, retries, timeouts."""

from __future__ import annotations

import base64
from collections.abc import Callable

import httpx
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks import Webhook

from cloud.models import Alert, AlertKind, Notification
from tests.alerts.conftest import DELIVERY_DEADLINE, FAST_ALERTS, add_channel, deliveries
from tests.support.alerts import PERSON, door_rules
from tests.support.captures import capture_metadata, jpeg_bytes, upload_multipart
from tests.support.factories import Factory
from tests.support.live_server import LiveServer
from tests.support.receivers import Receiver
from tests.support.waiting import wait_until

RULES = door_rules(cooldown_seconds=300)


def _upload(
    client: httpx.Client, device_headers: dict[str, str], device_id: str, detections
) -> str:
    metadata = capture_metadata(device_id, detections=detections)
    response = upload_multipart(client, device_headers, metadata, jpeg_bytes(320, 240))
    assert response.status_code == 201, response.text
    return response.json()["record_id"]


def _alerts(db: sessionmaker[Session], kind: AlertKind) -> list[Alert]:
    with db() as session:
        return list(session.scalars(sa.select(Alert).where(Alert.kind == kind)))


def test_matching_upload_notifies_signed_webhook_with_image_link_and_cooldown_holds(
    start_server: Callable[..., LiveServer],
    factory: Factory,
    db: sessionmaker[Session],
    receivers: Callable[..., Receiver],
) -> None:
    admin = factory.user()
    device = factory.device(org_id=admin.org_id, device_id="FLOOR1", config=RULES)
    server = start_server(**FAST_ALERTS)
    server.settings.alerts_public_url = server.url  # the links must point at this test server
    with server.client() as client:
        channel = add_channel(client, admin.headers, "webhook", "http://127.0.0.1:1/x")
        receiver = receivers(secret=channel["secret"])
        patched = client.patch(
            f"/v1/channels/{channel['channel_id']}",
            headers=admin.headers,
            json={"url": f"{receiver.url}/hook"},
        )
        assert patched.status_code == 200, patched.text
        capture_id = _upload(client, device.headers, device.device_id, PERSON)
        wait_until(lambda: receiver.accepted(), DELIVERY_DEADLINE, lambda: _describe(db, receiver))
        # Same rule, same device, inside the cooldown: a capture, but no second alert.
        _upload(client, device.headers, device.device_id, PERSON)
        _upload(client, device.headers, device.device_id, [])
        [request] = receiver.accepted()
        Webhook(channel["secret"]).verify(request.body, request.headers)
        event = request.json()
        assert event["type"] == "alert.detection"
        data = event["data"]
        assert (data["device_id"], data["capture_id"], data["rule"]) == (
            "FLOOR1",
            capture_id,
            "Door",
        )
        assert data["message"].startswith("person in zone Door on FLOOR1 at ")
        assert data["message"].endswith(" UTC, 0.87")
        image = httpx.get(data["image_url"], timeout=10)
        assert image.status_code == 200 and image.content[:2] == b"\xff\xd8"
        forged = httpx.get(data["image_url"].replace("sig=", "sig=0"), timeout=10)
        assert forged.status_code == 422 or forged.status_code == 403
        listed = client.get("/v1/alerts?kind=detection", headers=admin.headers).json()
    assert len(_alerts(db, AlertKind.DETECTION)) == 1
    [alert] = listed["alerts"]
    assert (alert["capture_id"], alert["rule"], alert["state"]) == (capture_id, "Door", "open")
    assert request.headers["webhook-id"].startswith("msg_")


def test_apprise_json_receiver_gets_title_text_and_snapshot_attachment(
    alert_server: LiveServer, factory: Factory, receivers: Callable[..., Receiver]
) -> None:
    admin = factory.user()
    device = factory.device(org_id=admin.org_id, device_id="GATE", config=RULES)
    receiver = receivers()
    with alert_server.client() as client:
        add_channel(client, admin.headers, "apprise", f"json://127.0.0.1:{receiver.port}/notify")
        _upload(client, device.headers, device.device_id, PERSON)
        wait_until(lambda: receiver.accepted(), DELIVERY_DEADLINE, lambda: str(receiver.requests))
    body = receiver.accepted()[0].json()
    assert body["title"] == "person on GATE"
    assert body["message"].startswith("person in zone Door on GATE at ")
    [attachment] = body["attachments"]
    assert base64.b64decode(attachment["base64"])[:2] == b"\xff\xd8"


def test_receiver_failing_three_times_gets_one_delivery_after_four_attempts(
    alert_server: LiveServer, factory: Factory, receivers: Callable[..., Receiver]
) -> None:
    admin = factory.user()
    receiver = receivers(statuses=[500, 500, 500])
    with alert_server.client() as client:
        channel = add_channel(client, admin.headers, "webhook", f"{receiver.url}/hook")
        queued = client.post(f"/v1/channels/{channel['channel_id']}/test", headers=admin.headers)
        assert queued.status_code == 202, queued.text
        wait_until(
            lambda: _delivered(client, admin.headers, channel["channel_id"]), DELIVERY_DEADLINE
        )
        attempts = deliveries(client, admin.headers, channel["channel_id"])
    assert len(receiver.requests) == 4
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1  # stable across retries
    assert [a["outcome"] for a in attempts] == ["delivered", "failed", "failed", "failed"]
    assert [a["attempt"] for a in attempts] == [4, 3, 2, 1]
    assert attempts[1]["http_status"] == 500 and attempts[1]["error"].startswith("HTTP 500")
    assert all(a["notification_state"] == "delivered" for a in attempts)
    assert all(a["duration_ms"] >= 0 for a in attempts)


def test_hanging_receiver_times_out_and_is_retried(
    start_server: Callable[..., LiveServer], factory: Factory, receivers: Callable[..., Receiver]
) -> None:
    server = start_server(**{**FAST_ALERTS, "alerts_send_timeout_seconds": 0.5})
    admin = factory.user()
    receiver = receivers(delay=3.0)
    with server.client() as client:
        channel = add_channel(client, admin.headers, "webhook", f"{receiver.url}/hook")
        client.post(f"/v1/channels/{channel['channel_id']}/test", headers=admin.headers)
        wait_until(
            lambda: deliveries(client, admin.headers, channel["channel_id"]), DELIVERY_DEADLINE
        )
        receiver.delay = 0.0
        wait_until(
            lambda: _delivered(client, admin.headers, channel["channel_id"]), DELIVERY_DEADLINE
        )
        attempts = deliveries(client, admin.headers, channel["channel_id"])
    first = attempts[-1]
    assert first["outcome"] == "failed" and "timeout" in first["error"], first
    assert attempts[0]["outcome"] == "delivered" and attempts[0]["attempt"] == len(attempts)


def _delivered(client: httpx.Client, headers: dict[str, str], channel_id: str) -> bool:
    attempts = deliveries(client, headers, channel_id)
    return bool(attempts) and attempts[0]["outcome"] == "delivered"


def _describe(db: sessionmaker[Session], receiver: Receiver) -> str:
    with db() as session:
        alerts = session.execute(sa.select(Alert.kind, Alert.state, Alert.message)).all()
        rows = session.execute(
            sa.select(Notification.state, Notification.attempts, Notification.last_error)
        ).all()
    return f"alerts={alerts} notifications={rows} received={receiver.requests}"
