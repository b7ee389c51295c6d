"""The device command stream end to end: real uvicorn, httpx-sse, PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from cloud.models import Trigger, TriggerStatus
from tests.support.factories import Factory
from tests.support.live_server import LiveServer
from tests.support.streams import StreamReader
from tests.support.waiting import wait_until


def _trigger_row(db: sessionmaker[Session], trigger_id: str) -> Trigger:
    with db() as session:
        trigger = session.get(Trigger, trigger_id)
        assert trigger is not None
        return trigger


def test_manual_trigger_reaches_connected_device_with_envelope(
    live_server: LiveServer, factory: Factory, db: sessionmaker[Session]
) -> None:
    user = factory.user()
    device = factory.device(org_id=user.org_id)
    reader = StreamReader(live_server.url, device.device_id, device.key).start()
    try:
        assert reader.headers is not None
        assert reader.headers["cache-control"] == "no-cache"
        assert reader.headers["x-accel-buffering"] == "no"
        assert reader.headers["content-type"].startswith("text/event-stream")
        assert reader.next().event == "config"  # never acknowledged: version 1 is owed
        with live_server.client() as client:
            response = client.post(
                f"/v1/devices/{device.device_id}/trigger",
                json={"label": "front door"},
                headers=user.headers,
            )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "sent"
        event = reader.next_of("capture")
        assert event.id == body["trigger_id"]
        assert event.data["command_id"] == body["trigger_id"]
        assert event.data["type"] == "capture"
        assert event.data["payload"] == {
            "trigger_id": body["trigger_id"],
            "trigger_type": "manual",
            "trigger_label": "front door",
        }
        assert event.data["issued_at"].endswith("Z") and event.data["expires_at"].endswith("Z")
        row = _trigger_row(db, body["trigger_id"])
        assert row.status == TriggerStatus.SENT and row.sent_at is not None
    finally:
        reader.close()


def test_offline_device_gets_pending_manual_trigger_on_connect(
    live_server: LiveServer, factory: Factory, db: sessionmaker[Session]
) -> None:
    user = factory.user()
    device = factory.device(org_id=user.org_id)
    with live_server.client() as client:
        response = client.post(
            f"/v1/devices/{device.device_id}/trigger", json={}, headers=user.headers
        )
    assert response.json()["status"] == "pending"
    trigger_id = response.json()["trigger_id"]
    assert _trigger_row(db, trigger_id).status == TriggerStatus.PENDING
    reader = StreamReader(live_server.url, device.device_id, device.key).start()
    try:
        assert [reader.next().id, reader.next().id] == ["cfg_1", trigger_id]
        wait_until(lambda: _trigger_row(db, trigger_id).status == TriggerStatus.SENT)
    finally:
        reader.close()


def test_expired_trigger_is_not_delivered_and_ends_expired(
    start_server: Callable[..., LiveServer], factory: Factory, db: sessionmaker[Session]
) -> None:
    server = start_server(reaper_interval_seconds=0.2)
    user = factory.user()
    device = factory.device(org_id=user.org_id, reported_config_version=1)
    with server.client() as client:
        response = client.post(
            f"/v1/devices/{device.device_id}/trigger", json={"ttl_seconds": 1}, headers=user.headers
        )
        trigger_id = response.json()["trigger_id"]
        wait_until(lambda: _trigger_row(db, trigger_id).status == TriggerStatus.EXPIRED)
        row = _trigger_row(db, trigger_id)
        assert row.finished_at is not None and row.sent_at is None
        reader = StreamReader(server.url, device.device_id, device.key).start()
        try:
            reader.assert_quiet(1.5)
        finally:
            reader.close()
        assert (
            client.get(f"/v1/triggers/{trigger_id}", headers=user.headers).json()["status"]
            == "expired"
        )


def test_reconnect_with_last_event_id_loses_and_reorders_nothing(
    live_server: LiveServer, factory: Factory
) -> None:
    user = factory.user()
    device = factory.device(org_id=user.org_id, reported_config_version=1)
    url = f"/v1/devices/{device.device_id}/trigger"
    with live_server.client() as client:
        first = [
            client.post(url, json={}, headers=user.headers).json()["trigger_id"] for _ in range(3)
        ]
        reader = StreamReader(live_server.url, device.device_id, device.key).start()
        assert [reader.next().id for _ in range(3)] == first
        reader.close()
        later = [
            client.post(url, json={}, headers=user.headers).json()["trigger_id"] for _ in range(2)
        ]
    again = StreamReader(live_server.url, device.device_id, device.key, last_event_id=first[-1])
    again.start()
    try:
        # Open triggers are replayed oldest first (at-least-once); the device dedupes by id.
        assert [again.next().id for _ in range(5)] == first + later
    finally:
        again.close()


def test_config_push_ack_and_reconnect_without_resend(
    live_server: LiveServer, factory: Factory, db: sessionmaker[Session]
) -> None:
    user = factory.user()
    device = factory.device(org_id=user.org_id)
    reader = StreamReader(live_server.url, device.device_id, device.key).start()
    with live_server.client() as client:
        try:
            first = reader.next()
            assert first.id == "cfg_1" and first.data["payload"] == {"version": 1, "config": {}}
            config = {"trigger": {"enabled": True, "interval_seconds": 60}}
            patched = client.patch(
                f"/v1/devices/{device.device_id}", json={"config": config}, headers=user.headers
            )
            assert patched.status_code == 200, patched.text
            pushed = reader.next()
            assert pushed.event == "config" and pushed.id == "cfg_2"
            assert pushed.data["payload"]["version"] == 2
            assert pushed.data["payload"]["config"]["trigger"]["interval_seconds"] == 60
        finally:
            reader.close()
        ack = client.post(
            f"/v1/devices/{device.device_id}/config/ack",
            json={"version": 2, "config": pushed.data["payload"]["config"]},
            headers=device.headers,
        )
        assert ack.json() == {"device_id": device.device_id, "reported_config_version": 2}
        too_new = client.post(
            f"/v1/devices/{device.device_id}/config/ack",
            json={"version": 3, "config": {}},
            headers=device.headers,
        )
        assert too_new.status_code == 409 and "detail" in too_new.json()
    again = StreamReader(live_server.url, device.device_id, device.key).start()
    try:
        again.assert_quiet(1.5)
    finally:
        again.close()


def test_newer_stream_replaces_older_one(live_server: LiveServer, factory: Factory) -> None:
    device = factory.device(reported_config_version=1)
    old = StreamReader(live_server.url, device.device_id, device.key).start()
    new = StreamReader(live_server.url, device.device_id, device.key).start()
    try:
        event = old.next()
        assert event.event == "shutdown"
        assert event.data == {"reason": "replaced by a newer stream"}
        assert old.ended.wait(5)
        assert not new.ended.is_set()
    finally:
        old.close()
        new.close()


def test_shutdown_sends_final_event_and_does_not_hang(
    start_server: Callable[..., LiveServer], factory: Factory
) -> None:
    server = start_server()
    devices = [factory.device(reported_config_version=1) for _ in range(3)]
    readers = [StreamReader(server.url, d.device_id, d.key).start() for d in devices]
    try:
        assert server.stop() < 3.0
        for reader in readers:
            event = reader.next()
            assert event.event == "shutdown"
            assert event.data == {"reason": "server shutting down"}
            assert reader.ended.wait(5)
    finally:
        for reader in readers:
            reader.close()


def test_long_poll_returns_same_envelopes_and_marks_sent(
    live_server: LiveServer, factory: Factory, db: sessionmaker[Session]
) -> None:
    user = factory.user()
    device = factory.device(org_id=user.org_id, reported_config_version=1)
    poll = f"/v1/devices/{device.device_id}/commands/poll"
    with live_server.client() as client:
        empty = client.get(poll, params={"wait": 0}, headers=device.headers)
        assert empty.status_code == 200 and empty.json() == {"commands": []}
        trigger_id = client.post(
            f"/v1/devices/{device.device_id}/trigger", json={}, headers=user.headers
        ).json()["trigger_id"]
        polled = client.get(poll, params={"wait": 5}, headers=device.headers).json()
        assert [c["command_id"] for c in polled["commands"]] == [trigger_id]
        assert polled["commands"][0]["payload"]["trigger_type"] == "manual"
        wait_until(lambda: _trigger_row(db, trigger_id).status == TriggerStatus.SENT)
        assert client.get(poll, params={"wait": 61}, headers=device.headers).status_code == 422


def test_idle_streams_hold_no_database_connection(
    start_server: Callable[..., LiveServer], factory: Factory, db: sessionmaker[Session]
) -> None:
    server = start_server(db_pool_size=2, db_max_overflow=0)
    devices = [factory.device(reported_config_version=1) for _ in range(8)]
    readers = [StreamReader(server.url, d.device_id, d.key).start() for d in devices]
    try:
        with server.client() as client:
            assert client.get("/health").status_code == 200
        with db() as session:
            busy = session.scalar(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND state LIKE 'idle in transaction%'"
                )
            )
        assert busy == 0
    finally:
        for reader in readers:
            reader.close()


def test_stream_is_refused_with_json_errors(live_server: LiveServer, factory: Factory) -> None:
    device = factory.device()
    other = factory.device()
    suspended = factory.device(status="suspended")
    url = f"/v1/devices/{device.device_id}/commands"
    cases = [
        (url, {}, 401),
        (url, {"Authorization": "Bearer vsk_" + "x" * 43}, 401),
        # Another device's key, or a key for an unknown id: one answer, no existence oracle.
        (url, other.headers, 401),
        ("/v1/devices/no-such-device/commands", device.headers, 401),
        (f"/v1/devices/{suspended.device_id}/commands", suspended.headers, 403),
        (url, {**device.headers, "Last-Event-ID": "'; drop table"}, 400),
    ]
    with httpx.Client(base_url=live_server.url, timeout=5) as client:
        for path, headers, expected in cases:
            response = client.get(path, headers=headers)
            assert response.status_code == expected, (path, headers, response.text)
            assert isinstance(response.json()["detail"], str)


def test_stream_opens_beyond_the_per_device_limit_are_429(
    start_server: Callable[..., LiveServer], factory: Factory
) -> None:
    server = start_server(stream_opens_per_device_per_minute=2)
    device = factory.device(reported_config_version=1)
    poll = f"/v1/devices/{device.device_id}/commands/poll"
    with server.client() as client:
        for _ in range(2):
            assert client.get(poll, params={"wait": 0}, headers=device.headers).status_code == 200
        refused = client.get(poll, params={"wait": 0}, headers=device.headers)
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert refused.json()["detail"] == "too many streams opened by this device"


def test_suspending_a_device_closes_its_open_stream(
    live_server: LiveServer, factory: Factory
) -> None:
    user = factory.user()
    device = factory.device(org_id=user.org_id, reported_config_version=1)
    reader = StreamReader(live_server.url, device.device_id, device.key).start()
    try:
        with live_server.client() as client:
            patched = client.patch(
                f"/v1/devices/{device.device_id}",
                json={"status": "suspended"},
                headers=user.headers,
            )
            assert patched.status_code == 200
            event = reader.next(timeout=5)  # at once: the change NOTIFYs the stream's holder
            assert event.event == "shutdown"
            assert event.data == {"reason": "device is suspended"}
            again = client.get(f"/v1/devices/{device.device_id}/commands", headers=device.headers)
            assert again.status_code == 403
    finally:
        reader.close()


def test_rotating_the_key_closes_the_stream_it_opened(
    live_server: LiveServer, factory: Factory
) -> None:
    user = factory.user()
    device = factory.device(org_id=user.org_id, reported_config_version=1)
    reader = StreamReader(live_server.url, device.device_id, device.key).start()
    try:
        with live_server.client() as client:
            rotated = client.post(
                f"/v1/devices/{device.device_id}/rotate-key", headers=user.headers
            )
            assert rotated.status_code == 200
            event = reader.next(timeout=5)
            assert event.data == {"reason": "device key rotated"}
            again = client.get(f"/v1/devices/{device.device_id}/commands", headers=device.headers)
            assert again.status_code == 401
    finally:
        reader.close()


def test_a_status_changed_in_the_database_closes_the_stream_at_the_heartbeat(
    live_server: LiveServer, factory: Factory, db: sessionmaker[Session]
) -> None:
    """The backstop for a change made outside the API: the heartbeat's last_seen_at update
    returns the devices that may no longer stream, within one and a half keepalives."""
    user = factory.user()
    device = factory.device(org_id=user.org_id, reported_config_version=1)
    reader = StreamReader(live_server.url, device.device_id, device.key).start()
    try:
        with db() as session:
            session.execute(
                sa.text("UPDATE devices SET status = 'inactive' WHERE device_id = :id"),
                {"id": device.device_id},
            )
            session.commit()
        event = reader.next(timeout=live_server.settings.keepalive_seconds * 10)
        assert event.data == {"reason": "device is inactive"}
    finally:
        reader.close()


def test_concurrent_opens_each_get_their_own_backlog_or_refusal(
    live_server: LiveServer, factory: Factory
) -> None:
    """Opens arriving together are opened in one batch: each answer is still its own."""
    user = factory.user()
    devices = [factory.device(org_id=user.org_id, reported_config_version=1) for _ in range(30)]
    suspended = factory.device(org_id=user.org_id, status="suspended")
    owed: dict[str, str] = {}
    with live_server.client() as client:
        for device in devices:
            response = client.post(
                f"/v1/devices/{device.device_id}/trigger", json={}, headers=user.headers
            )
            owed[device.device_id] = response.json()["trigger_id"]
    polls = [(device.device_id, device.headers, 200) for device in devices]
    polls.append((devices[0].device_id, devices[0].headers, 200))  # the same device twice
    polls.append((devices[1].device_id, devices[2].headers, 401))  # another device's key
    polls.append((devices[3].device_id, {"Authorization": "Bearer vsk_" + "y" * 43}, 401))
    polls.append((suspended.device_id, suspended.headers, 403))

    async def poll_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as client:
            return await asyncio.gather(
                *(
                    client.get(
                        f"/v1/devices/{device_id}/commands/poll",
                        params={"wait": 0},
                        headers=headers,
                    )
                    for device_id, headers, _ in polls
                )
            )

    for (device_id, _, expected), response in zip(polls, asyncio.run(poll_all()), strict=True):
        assert response.status_code == expected, (device_id, response.text)
        if expected == 200:
            commands = response.json()["commands"]
            assert [c["command_id"] for c in commands] == [owed[device_id]], device_id
        else:
            assert isinstance(response.json()["detail"], str)


def test_fast_path_refuses_like_the_fastapi_route(
    live_server: LiveServer, factory: Factory
) -> None:
    """uvicorn serves the stream through cloud/api/stream_fast_path.py; the FastAPI route it
    stands in front of (in-process ASGI callers) gives the same refusals."""
    device = factory.device()
    url = f"/v1/devices/{device.device_id}/commands"
    cases = [
        (url, {}),
        (url, {"Authorization": "Basic abc"}),
        (url, {"Authorization": "Bearer"}),
        (url, {"Authorization": "Bearer not-a-key"}),
        ("/v1/devices/not*an*id/commands", device.headers),
        (url, {**device.headers, "Last-Event-ID": "'; drop table"}),
    ]

    async def in_process() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=live_server.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return [await client.get(path, headers=headers) for path, headers in cases]

    with httpx.Client(base_url=live_server.url, timeout=5) as client:
        served = [client.get(path, headers=headers) for path, headers in cases]
    for (path, headers), fast, routed in zip(cases, served, asyncio.run(in_process()), strict=True):
        assert fast.status_code in (400, 401, 404), (path, headers, fast.text)
        assert (fast.status_code, fast.json()) == (routed.status_code, routed.json())
        assert fast.headers.get("www-authenticate") == routed.headers.get("www-authenticate")
