"""Notifications survive a SIGKILLed server; two instances send each notification once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from cloud.models import Notification, NotificationAttempt, NotificationState
from tests.alerts.conftest import DELIVERY_DEADLINE, FAST_ALERTS, add_channel
from tests.support.cloud_process import CloudProcess
from tests.support.factories import Factory
from tests.support.live_server import LiveServer
from tests.support.receivers import Receiver
from tests.support.waiting import free_port, wait_until

NOTIFICATIONS = 5
ALERT_ENV = {f"VISANT_{name.upper()}": str(value).lower() for name, value in FAST_ALERTS.items()}
# A row claimed by the killed process comes back after its lease: 2 x (timeout + 5 s margin).
LEASE = 2 * (FAST_ALERTS["alerts_send_timeout_seconds"] + 5.0)


@pytest.fixture
def processes(database_url: str, tmp_path: Path) -> Iterator[list[CloudProcess]]:
    started: list[CloudProcess] = []
    yield started
    for process in started:
        process.stop()


def _queue_tests(url: str, headers: dict[str, str], channel_id: str, count: int) -> list[str]:
    with httpx.Client(base_url=url, timeout=10) as client:
        return [
            client.post(f"/v1/channels/{channel_id}/test", headers=headers).json()[
                "notification_id"
            ]
            for _ in range(count)
        ]


def test_sigkilled_server_delivers_its_outbox_after_restart(
    database_url: str,
    tmp_path: Path,
    factory: Factory,
    db: sessionmaker[Session],
    processes: list[CloudProcess],
) -> None:
    admin = factory.user()
    receiver = Receiver(default_status=503).start()
    try:
        port = free_port()
        processes.append(CloudProcess(database_url, port, tmp_path / "cloud.log", ALERT_ENV))
        with httpx.Client(base_url=processes[0].url, timeout=10) as client:
            channel = add_channel(client, admin.headers, "webhook", f"{receiver.url}/hook")
        queued = _queue_tests(processes[0].url, admin.headers, channel["channel_id"], NOTIFICATIONS)
        wait_until(
            lambda: len({r.headers["webhook-id"] for r in receiver.requests}) == NOTIFICATIONS,
            DELIVERY_DEADLINE,
        )
        processes[0].kill()  # mid-retries: every notification is still pending in the outbox
        receiver.default_status = 200
        processes.append(CloudProcess(database_url, port, tmp_path / "cloud.log", ALERT_ENV))
        wait_until(
            lambda: {r.headers["webhook-id"] for r in receiver.accepted()} == set(queued),
            DELIVERY_DEADLINE + LEASE,
            lambda: (tmp_path / "cloud.log").read_text(),
        )
    finally:
        receiver.stop()
    delivered = Counter(r.headers["webhook-id"] for r in receiver.accepted())
    assert all(count == 1 for count in delivered.values()), delivered
    with db() as session:
        states = set(session.scalars(sa.select(Notification.state)))
    assert states == {NotificationState.DELIVERED}


def test_two_instances_send_each_notification_once(
    start_server: Callable[..., LiveServer], factory: Factory, db: sessionmaker[Session]
) -> None:
    admin = factory.user()
    first, second = start_server(**FAST_ALERTS), start_server(**FAST_ALERTS)
    receiver = Receiver().start()
    try:
        with first.client() as client:
            channel = add_channel(client, admin.headers, "webhook", f"{receiver.url}/hook")
        queued = []
        for server in (first, second) * 10:
            queued += _queue_tests(server.url, admin.headers, channel["channel_id"], 2)
        wait_until(lambda: len(receiver.accepted()) >= len(queued), DELIVERY_DEADLINE)
        wait_until(lambda: _states(db) == {NotificationState.DELIVERED}, DELIVERY_DEADLINE)
    finally:
        receiver.stop()
    delivered = Counter(r.headers["webhook-id"] for r in receiver.accepted())
    assert set(delivered) == set(queued)
    assert set(delivered.values()) == {1}
    with db() as session:
        attempts = session.scalar(sa.select(sa.func.count()).select_from(NotificationAttempt))
    assert attempts == len(queued)


def _states(db: sessionmaker[Session]) -> set[NotificationState]:
    with db() as session:
        return set(session.scalars(sa.select(Notification.state)))
