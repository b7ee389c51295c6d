"""Offline, online and capture-failed alerts from real streams and trigger outcomes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from cloud.models import Alert, AlertKind, AlertState, Trigger, TriggerStatus
from tests.alerts.conftest import DELIVERY_DEADLINE, add_channel
from tests.support.captures import make_trigger
from tests.support.factories import Factory
from tests.support.live_server import LiveServer
from tests.support.receivers import Receiver
from tests.support.streams import StreamReader
from tests.support.waiting import wait_until

OFFLINE_AFTER = 10  # seconds: the smallest threshold a device config accepts
CONFIG = {"alerts": {"offline_after_seconds": OFFLINE_AFTER, "failed_captures": 3}}


def _events(receiver: Receiver, event_type: str) -> list[dict]:
    return [r.json() for r in receiver.accepted() if r.json()["type"] == event_type]


def _alerts(db: sessionmaker[Session], device_id: str) -> list[Alert]:
    with db() as session:
        return list(
            session.scalars(
                sa.select(Alert).where(Alert.device_id == device_id).order_by(Alert.created_at)
            )
        )


def test_offline_device_notifies_after_threshold_blip_alerts_nobody_and_return_resolves(
    alert_server: LiveServer,
    factory: Factory,
    db: sessionmaker[Session],
    receivers: Callable[..., Receiver],
) -> None:
    admin = factory.user()
    blipper = factory.device(org_id=admin.org_id, device_id="BLIP", config=CONFIG)
    leaver = factory.device(org_id=admin.org_id, device_id="GONE", config=CONFIG)
    receiver = receivers()
    with alert_server.client() as client:
        add_channel(client, admin.headers, "webhook", f"{receiver.url}/hook")
    blip = StreamReader(alert_server.url, blipper.device_id, blipper.key).start()
    gone = StreamReader(alert_server.url, leaver.device_id, leaver.key).start()
    # BLIP drops first and comes back at once; GONE drops after it and stays away.
    blip.close()
    blip = StreamReader(alert_server.url, blipper.device_id, blipper.key).start()
    gone.close()
    deadline = OFFLINE_AFTER + DELIVERY_DEADLINE
    wait_until(lambda: _events(receiver, "alert.device_offline"), deadline)
    [offline] = _events(receiver, "alert.device_offline")
    assert offline["data"]["device_id"] == "GONE"
    assert "GONE offline since" in offline["data"]["message"]
    assert _alerts(db, "BLIP") == []  # its blip was shorter than the threshold
    gone = StreamReader(alert_server.url, leaver.device_id, leaver.key).start()
    try:
        wait_until(lambda: _events(receiver, "alert.device_online"), DELIVERY_DEADLINE)
    finally:
        gone.close()
        blip.close()
    [online] = _events(receiver, "alert.device_online")
    assert "GONE back online" in online["data"]["message"]
    kinds = {a.kind: a.state for a in _alerts(db, "GONE")}
    assert kinds == {
        AlertKind.DEVICE_OFFLINE: AlertState.RESOLVED,
        AlertKind.DEVICE_ONLINE: AlertState.RESOLVED,
    }
    assert len(_events(receiver, "alert.device_offline")) == 1


def test_consecutive_failed_triggers_raise_one_capture_failed_alert_until_a_capture_works(
    alert_server: LiveServer,
    factory: Factory,
    db: sessionmaker[Session],
    receivers: Callable[..., Receiver],
) -> None:
    admin = factory.user()
    device = factory.device(org_id=admin.org_id, device_id="FLAKY", config=CONFIG)
    receiver = receivers()
    with alert_server.client() as client:
        add_channel(client, admin.headers, "webhook", f"{receiver.url}/hook")

    def finish(status: TriggerStatus, error: str | None = None) -> None:
        trigger_id = make_trigger(db, device.device_id, TriggerStatus.SENT)
        now = datetime.now(UTC)
        with db() as session:
            session.execute(
                sa.update(Trigger)
                .where(Trigger.trigger_id == trigger_id)
                .values(
                    status=status,
                    finished_at=now,
                    executed_at=now if status is TriggerStatus.EXECUTED else None,
                    error=error,
                )
            )
            session.commit()

    finish(TriggerStatus.FAILED, "camera unplugged")
    finish(TriggerStatus.EXPIRED)
    finish(TriggerStatus.FAILED, "camera unplugged")
    wait_until(lambda: _events(receiver, "alert.capture_failed"), DELIVERY_DEADLINE)
    finish(TriggerStatus.FAILED, "camera unplugged")  # the same streak: no second alert
    [event] = _events(receiver, "alert.capture_failed")
    assert "3 captures in a row failed" in event["data"]["message"]
    assert "camera unplugged" in event["data"]["message"]
    finish(TriggerStatus.EXECUTED)
    wait_until(
        lambda: [a.state for a in _alerts(db, device.device_id)] == [AlertState.RESOLVED],
        DELIVERY_DEADLINE,
    )
    assert len(_events(receiver, "alert.capture_failed")) == 1
