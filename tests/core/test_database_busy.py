"""Every pooled connection in use past VISANT_DB_POOL_TIMEOUT_SECONDS: 503 "database busy"
with Retry-After, never a 500, and the request holding the connection still completes."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from tests.support.alerts import PERSON, door_rules
from tests.support.captures import capture_metadata, jpeg_bytes, upload_multipart
from tests.support.factories import Factory
from tests.support.live_server import LiveServer
from tests.support.waiting import wait_until


def test_a_request_finding_the_pool_in_use_is_503_database_busy(
    start_server: Callable[..., LiveServer], factory: Factory, db: sessionmaker[Session]
) -> None:
    """The pool's one connection is held by an alerting upload waiting for the device's alert
    lock (held here); another device's upload and an operator's read then wait for the pool
    and are answered 503. Released, the held upload is stored."""
    server = start_server(db_pool_size=1, db_max_overflow=0, db_pool_timeout_seconds=2.0)
    holder_device = factory.device(config=door_rules(cooldown_seconds=300))
    other = factory.device()
    user = factory.user(org_id=other.org_id)
    lock = sa.select(
        sa.func.pg_advisory_xact_lock(sa.func.hashtext("alerts:" + holder_device.device_id))
    )

    def waiting_for_the_alert_lock() -> bool:
        with db() as session:
            return bool(
                session.scalar(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE wait_event_type = 'Lock' AND wait_event = 'advisory'"
                    )
                )
            )

    def held_upload() -> httpx.Response:
        with server.client() as client:
            metadata = capture_metadata(holder_device.device_id, detections=PERSON)
            return upload_multipart(client, holder_device.headers, metadata, jpeg_bytes())

    with db() as blocker, ThreadPoolExecutor(max_workers=1) as pool:
        blocker.execute(lock)
        held = pool.submit(held_upload)
        wait_until(waiting_for_the_alert_lock, timeout=server.settings.db_command_timeout_seconds)
        with server.client() as client:
            upload = upload_multipart(
                client, other.headers, capture_metadata(other.device_id), jpeg_bytes()
            )
            read = client.get("/v1/devices", headers=user.headers)
        blocker.rollback()
        stored = held.result(timeout=server.settings.db_command_timeout_seconds)
    for busy in (upload, read):
        assert busy.status_code == 503, busy.text
        assert busy.json() == {"detail": "database busy"}
        assert busy.headers["retry-after"] == "1"
    assert stored.status_code == 201, stored.text
