"""Alert fixtures: a server with fast alert timers, loopback receivers, channel helpers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from cloud.models import User, UserRole
from tests.support.live_server import LiveServer
from tests.support.receivers import Receiver

# Timers of the servers under test; every wait below derives its deadline from these.
FAST_ALERTS: dict[str, Any] = {
    "allow_private_webhooks": True,
    "alerts_watch_interval_seconds": 0.2,
    "alerts_delivery_poll_seconds": 0.2,
    "alerts_send_timeout_seconds": 2.0,
    "alerts_retry_base_seconds": 0.2,
    "alerts_retry_max_seconds": 0.5,
}
DELIVERY_DEADLINE = 15.0  # seconds: a send, its retries and a loaded 2-core machine


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def start(**kwargs: Any) -> Receiver:
        receiver = Receiver(**kwargs).start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


@pytest.fixture
def alert_server(start_server: Callable[..., LiveServer]) -> LiveServer:
    return start_server(**FAST_ALERTS)


def set_role(db: sessionmaker[Session], user_id: Any, role: UserRole) -> None:
    with db() as session:
        session.execute(sa.update(User).where(User.user_id == user_id).values(role=role))
        session.commit()


def add_channel(
    client: httpx.Client, headers: dict[str, str], kind: str, url: str, **fields: Any
) -> dict[str, Any]:
    response = client.post(
        "/v1/channels",
        headers=headers,
        json={"name": f"{kind} test", "kind": kind, "url": url, **fields},
    )
    assert response.status_code == 201, response.text
    return response.json()


def deliveries(client: httpx.Client, headers: dict[str, str], channel_id: str) -> list[dict]:
    response = client.get(f"/v1/channels/{channel_id}/deliveries", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["deliveries"]
