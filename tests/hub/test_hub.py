"""CommandHub across instances and faults; the reaper's loop."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable

import httpx
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from cloud.core.config import Settings
from cloud.core.db import create_engine_for, create_session_factory
from cloud.core.ids import new_trigger_id
from cloud.hub.listener import LISTENER_APPLICATION_NAME
from cloud.models import ServerInstance, Trigger, TriggerStatus, TriggerType
from cloud.triggers.reaper import Reaper
from tests.support.factories import Factory
from tests.support.live_server import LiveServer
from tests.support.streams import StreamReader
from tests.support.waiting import wait_until


def test_trigger_via_instance_b_reaches_device_streaming_from_a(
    start_server: Callable[..., LiveServer], factory: Factory
) -> None:
    a, b = start_server(), start_server()
    user = factory.user()
    device = factory.device(org_id=user.org_id, reported_config_version=1)
    reader = StreamReader(a.url, device.device_id, device.key).start()
    try:
        for server in (a, b):
            with server.client() as client:
                listed = client.get("/v1/devices/connected", headers=user.headers).json()
                assert [d["device_id"] for d in listed["devices"]] == [device.device_id]
        with b.client() as client:
            response = client.post(
                f"/v1/devices/{device.device_id}/trigger", json={}, headers=user.headers
            )
        assert response.json()["status"] == "sent"
        assert reader.next().id == response.json()["trigger_id"]
        # The device moves to B: the stream on A is closed as replaced.
        moved = StreamReader(b.url, device.device_id, device.key).start()
        try:
            assert reader.next().data == {"reason": "replaced by a newer stream"}
            assert reader.ended.wait(5)
            with a.client() as client:
                listed = client.get("/v1/devices/connected", headers=user.headers).json()
            assert [d["device_id"] for d in listed["devices"]] == [device.device_id]
        finally:
            moved.close()
    finally:
        reader.close()


def test_commands_still_arrive_after_the_listen_connection_is_killed(
    live_server: LiveServer, factory: Factory, db: sessionmaker[Session]
) -> None:
    user = factory.user()
    device = factory.device(org_id=user.org_id, reported_config_version=1)
    reader = StreamReader(live_server.url, device.device_id, device.key).start()
    try:
        with db() as session:
            killed = session.scalar(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND application_name = :name"
                ),
                {"name": LISTENER_APPLICATION_NAME},
            )
            session.commit()
        assert killed == 1
        # A trigger written while nobody listens: only the replay after reconnect can bring it.
        trigger_id = new_trigger_id()
        with db() as session:
            session.execute(
                sa.insert(Trigger).values(
                    trigger_id=trigger_id,
                    device_id=device.device_id,
                    trigger_type=TriggerType.MANUAL,
                    status=TriggerStatus.PENDING,
                    scheduled_at=sa.func.now(),
                    expires_at=sa.func.now() + sa.text("interval '1 minute'"),
                )
            )
            session.commit()
        assert reader.next(timeout=10).id == trigger_id
    finally:
        reader.close()


async def test_reaper_expires_and_forgets_dead_instances_then_stops_in_time(
    database_url: str, settings: Settings, factory: Factory, db: sessionmaker[Session]
) -> None:
    device = factory.device()
    with db() as session:
        session.add(ServerInstance(instance_id="dead", hostname="h", pid=1))
        session.execute(
            sa.insert(Trigger).values(
                trigger_id=new_trigger_id(),
                device_id=device.device_id,
                trigger_type=TriggerType.SCHEDULED,
                status=TriggerStatus.SENT,
                scheduled_at=sa.func.now(),
                expires_at=sa.func.now() - sa.text("interval '1 second'"),
            )
        )
        session.commit()
        session.execute(
            sa.text("UPDATE server_instances SET heartbeat_at = now() - interval '1 hour'")
        )
        session.commit()
    engine = create_engine_for(database_url, settings)
    reaper = Reaper(create_session_factory(engine), settings.keepalive_seconds, interval=0.05)
    await reaper.start()
    try:
        deadline = time.monotonic() + 5
        while reaper.passes < 2:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
    finally:
        began = time.monotonic()
        await reaper.stop()
        await reaper.stop()  # idempotent
        assert time.monotonic() - began < 1.0
        await engine.dispose()
    with db() as session:
        assert session.scalar(sa.select(Trigger.status)) == TriggerStatus.EXPIRED
        assert session.scalar(sa.select(sa.func.count()).select_from(ServerInstance)) == 0


STUCK_CONFIG_PUSHES = 400  # ~4 MB: more than loopback socket buffers and the queue hold


def test_client_that_stops_reading_is_dropped_without_hurting_others(
    start_server: Callable[..., LiveServer], factory: Factory
) -> None:
    server = start_server(stream_send_timeout_seconds=0.5)
    user = factory.user()
    stuck = factory.device(org_id=user.org_id, reported_config_version=1)
    healthy = factory.device(org_id=user.org_id, reported_config_version=1)
    reader = StreamReader(server.url, healthy.device_id, healthy.key).start()
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(
        f"GET /v1/devices/{stuck.device_id}/commands HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {stuck.key}\r\n\r\n".encode()
    )
    try:
        with server.client() as client:
            wait_until(lambda: stuck.device_id in _connected(client, user.headers))
            # ~4 MB of config documents (each under the 16 KiB document cap) that the stuck
            # client never reads fill every buffer, or its queue.
            for version in range(STUCK_CONFIG_PUSHES):
                classes = [f"class-{version}-{i:03d}-" + "x" * 80 for i in range(100)]
                patched = client.patch(
                    f"/v1/devices/{stuck.device_id}",
                    json={"config": {"detection": {"classes": classes}}},
                    headers=user.headers,
                )
                assert patched.status_code == 200
            wait_until(lambda: stuck.device_id not in _connected(client, user.headers))
            response = client.post(
                f"/v1/devices/{healthy.device_id}/trigger", json={}, headers=user.headers
            )
            assert response.json()["status"] == "sent"
            assert reader.next().id == response.json()["trigger_id"]
    finally:
        sock.close()
        reader.close()


def _connected(client: httpx.Client, headers: dict[str, str]) -> list[str]:
    devices = client.get("/v1/devices/connected", headers=headers).json()["devices"]
    return [device["device_id"] for device in devices]


def test_trigger_made_while_the_instance_row_was_reaped_still_reaches_its_stream(
    live_server: LiveServer, factory: Factory, db: sessionmaker[Session]
) -> None:
    """A database outage longer than the presence window: the instance's own reaper may
    remove its row (and its presence rows) before its heartbeat gets through again."""
    user = factory.user()
    device = factory.device(org_id=user.org_id, reported_config_version=1)
    reader = StreamReader(live_server.url, device.device_id, device.key).start()
    try:
        with db() as session:
            session.execute(sa.delete(ServerInstance))
            session.commit()
        with live_server.client() as client:
            response = client.post(
                f"/v1/devices/{device.device_id}/trigger", json={}, headers=user.headers
            )
        assert response.json()["status"] == "pending"  # offline as far as PostgreSQL knows
        # No holder: the NOTIFY goes to every instance, and the one streaming it delivers it.
        keepalive = live_server.settings.keepalive_seconds
        assert reader.next(timeout=2 * keepalive + 10).id == response.json()["trigger_id"]
    finally:
        reader.close()
