"""What an attacker (or a careless script) sends, each answered with a 4xx, never a 500.

One test per finding of the hardening review: body floods, unstorable input, the original
API's shapes, login guessing, the device-existence oracle, unbounded documents, retried
event uploads and sniffable images.
"""

from __future__ import annotations

import json
import select
import socket
from datetime import UTC, datetime
from typing import Any

import psutil
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from cloud.limits.counters import Limit
from cloud.models import Capture
from tests.support.captures import capture_metadata, jpeg_bytes, upload_multipart
from tests.support.factories import Factory
from tests.support.live_server import LiveServer
from tests.support.waiting import wait_for_window_room

BIG = 300 * 1024 * 1024  # the 300 MB body of the review
CHUNK = 256 * 1024

WINDOW_ATTEMPTS = 3  # tries, in case the uploads straddle a window boundary
# Login limits count per fixed window: a day long here, so waiting for room is rarely needed.
LOGIN_WINDOW = 86400  # seconds
LOGIN_BUDGET = 60  # seconds the logins of one test may take on a loaded machine


def _raw_chunked_post(server: LiveServer, path: str, total: int) -> tuple[bytes, int]:
    """Send `total` bytes chunked, stopping as soon as a response arrives: (response, sent)."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    sock.sendall(head.encode())
    chunk = f"{CHUNK:x}\r\n".encode() + b" " * CHUNK + b"\r\n"
    sent = 0
    try:
        while sent < total:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += CHUNK
        sock.settimeout(10)
        response = b""
        while b"\r\n\r\n" not in response or not response.rstrip().endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            response += data
        return response, sent
    finally:
        sock.close()


def test_300mb_chunked_login_body_is_413_before_it_is_all_sent(live_server: LiveServer) -> None:
    rss_before = psutil.Process().memory_info().rss
    response, sent = _raw_chunked_post(live_server, "/v1/auth/token", BIG)
    growth = psutil.Process().memory_info().rss - rss_before
    assert response.startswith(b"HTTP/1.1 413"), response[:200]
    assert b"request body exceeds 65536 bytes" in response
    assert sent < BIG // 10  # refused after the first kilobytes, not after 300 MB
    assert growth < 64 * 1024 * 1024


def test_declared_300mb_body_is_413_without_reading_it(live_server: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", live_server.port), timeout=10) as sock:
        sock.sendall(
            f"POST /v1/auth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {BIG}\r\n\r\n".encode()
        )
        response = sock.recv(65536)
    assert response.startswith(b"HTTP/1.1 413")
    assert json.loads(response.split(b"\r\n\r\n", 1)[1]) == {
        "detail": "request body exceeds 65536 bytes"
    }


def test_upload_route_keeps_its_larger_limit(live_server: LiveServer, factory: Factory) -> None:
    device = factory.device()
    # A JPEG padded past the 64 KiB JSON limit (trailing bytes after EOI are ignored).
    image = jpeg_bytes() + b"\0" * 70_000
    with live_server.client() as client:
        response = upload_multipart(
            client, device.headers, capture_metadata(device.device_id), image
        )
    assert response.status_code == 201


def test_inputs_that_were_500_are_422(live_server: LiveServer, factory: Factory) -> None:
    user = factory.user()
    device = factory.device(org_id=user.org_id)
    path = f"/v1/devices/{device.device_id}"
    with live_server.client() as client:
        overflow = upload_multipart(
            client,
            device.headers,
            capture_metadata(device.device_id, captured_at="0001-01-01T00:00:00+05:00"),
            jpeg_bytes(),
        )
        interval = client.patch(
            path,
            headers=user.headers,
            json={"config": {"trigger": {"enabled": True, "interval_seconds": 300000000000}}},
        )
        nul_name = client.patch(path, headers=user.headers, json={"friendly_name": "a\x00b"})
        surrogate = client.patch(
            path,
            headers={**user.headers, "Content-Type": "application/json"},
            content=b'{"friendly_name": "a\\ud800b"}',
        )
        nul_label = client.post(f"{path}/trigger", headers=user.headers, json={"label": "\x00"})
        nan_meta = upload_multipart(
            client,
            device.headers,
            {**capture_metadata(device.device_id), "metadata": {"x": float("nan")}},
            jpeg_bytes(),
        )
        old_since = client.get(
            "/v1/triggers", headers=user.headers, params={"since": "0001-01-01T00:00:00+05:00"}
        )
    for name, response in {
        "captured_at overflow": overflow,
        "interval_seconds": interval,
        "NUL friendly_name": nul_name,
        "lone surrogate": surrogate,
        "NUL label": nul_label,
        "NaN metadata": nan_meta,
        "since overflow": old_since,
    }.items():
        assert response.status_code == 422, (name, response.text)
        assert isinstance(response.json()["detail"], str), name


def test_trigger_without_body_means_defaults(live_server: LiveServer, factory: Factory) -> None:
    user = factory.user()
    device = factory.device(org_id=user.org_id)
    with live_server.client(headers=user.headers) as client:
        bare = client.post(f"/v1/devices/{device.device_id}/trigger")
        empty = client.post(f"/v1/devices/{device.device_id}/trigger", json={})
    assert bare.status_code == empty.status_code == 200
    assert bare.json()["status"] == "pending"


def test_connected_serves_both_shapes(live_server: LiveServer, factory: Factory) -> None:
    user = factory.user()
    with live_server.client(headers=user.headers) as client:
        body = client.get("/v1/devices/connected").json()
    assert body == {"devices": [], "connected_devices": []}


def test_login_guessing_is_429_per_account_and_per_address(
    start_server: Any, factory: Factory
) -> None:
    server: LiveServer = start_server(
        login_attempts_per_account=3,
        login_attempts_per_address=5,
        login_window_seconds=LOGIN_WINDOW,
    )
    user = factory.user(password="right-password")
    wait_for_window_room(LOGIN_WINDOW, LOGIN_BUDGET)  # the six logins count in one window
    with server.client() as client:

        def login(email: str, password: str) -> Any:
            return client.post("/v1/auth/token", json={"email": email, "password": password})

        guesses = [login(user.email, f"guess-{n}").status_code for n in range(3)]
        locked = login(user.email, "right-password")
        others = [login("other@example.test", "x").status_code]
        by_address = login("fresh@example.test", "x")
    assert guesses == [401, 401, 401]
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) >= 1
    assert others == [401]
    assert by_address.status_code == 429


def test_successful_logins_do_not_count(start_server: Any, factory: Factory) -> None:
    # A window boundary here only leaves an attempt counted in the ended window: no wait.
    server: LiveServer = start_server(login_attempts_per_account=2)
    user = factory.user(password="right-password")
    with server.client() as client:
        statuses = [
            client.post(
                "/v1/auth/token", json={"email": user.email, "password": "right-password"}
            ).status_code
            for _ in range(4)
        ]
    assert statuses == [200, 200, 200, 200]


def test_wrong_key_is_one_answer_whether_or_not_the_device_exists(
    live_server: LiveServer, factory: Factory
) -> None:
    mine, other = factory.device(), factory.device()
    with live_server.client(headers=mine.headers) as client:
        existing = client.post(f"/v1/devices/{other.device_id}/config/ack", json={"version": 1})
        unknown = client.post("/v1/devices/NO_SUCH_DEVICE/config/ack", json={"version": 1})
        upload = upload_multipart(
            client, mine.headers, capture_metadata(other.device_id), jpeg_bytes()
        )
    assert existing.status_code == unknown.status_code == upload.status_code == 401
    assert existing.json() == unknown.json() == upload.json() == {"detail": "invalid device key"}


def test_registration_conflict_names_no_id(live_server: LiveServer, factory: Factory) -> None:
    theirs = factory.device()
    user = factory.user()
    with live_server.client(headers=user.headers) as client:
        taken = client.post("/v1/devices", json={"device_id": theirs.device_id})
    assert taken.status_code == 409
    assert theirs.device_id not in taken.text


def test_documents_over_their_caps_are_422_naming_the_limit(
    live_server: LiveServer, factory: Factory
) -> None:
    user = factory.user()
    device = factory.device(org_id=user.org_id)
    rule = {"name": "r", "labels": ["person"]}
    with live_server.client() as client:
        rules = client.patch(
            f"/v1/devices/{device.device_id}",
            headers=user.headers,
            json={"config": {"evaluation": {"rules": [rule] * 33}}},
        )
        windows = client.patch(
            f"/v1/devices/{device.device_id}",
            headers=user.headers,
            json={
                "config": {
                    "trigger": {
                        "enabled": True,
                        "interval_seconds": 60,
                        "active_hours": [{"start": "00:00", "end": "23:00"}] * 15,
                    }
                }
            },
        )
        ack = client.post(
            f"/v1/devices/{device.device_id}/config/ack",
            headers=device.headers,
            json={"version": 1, "config": {"x": "y" * 20_000}},
        )
        meta = upload_multipart(
            client,
            device.headers,
            {**capture_metadata(device.device_id), "metadata": {"x": "y" * 20_000}},
            jpeg_bytes(),
        )
    assert rules.status_code == 422 and "32" in rules.json()["detail"]
    assert windows.status_code == 422 and "14" in windows.json()["detail"]
    assert ack.status_code == 422 and "16384" in ack.json()["detail"]
    assert meta.status_code == 422 and "16384" in meta.json()["detail"]


def test_retried_event_capture_returns_the_first_record(
    live_server: LiveServer, factory: Factory, db: sessionmaker[Session]
) -> None:
    device = factory.device()
    meta = capture_metadata(device.device_id, capture_id="c0ffee00c0ffee00")
    with live_server.client() as client:
        first = upload_multipart(client, device.headers, meta, jpeg_bytes())
        again = upload_multipart(client, device.headers, meta, jpeg_bytes())
        by_header = upload_multipart(
            client,
            {**device.headers, "Idempotency-Key": "c0ffee00c0ffee00"},
            capture_metadata(device.device_id),
            jpeg_bytes(),
        )
    assert (first.status_code, again.status_code, by_header.status_code) == (201, 200, 200)
    assert first.json()["record_id"] == again.json()["record_id"] == by_header.json()["record_id"]
    with db() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Capture)) == 1


def test_uploads_per_device_are_counted_across_instances(
    start_server: Any, factory: Factory
) -> None:
    first = start_server(uploads_per_device_per_minute=2)
    second = start_server(uploads_per_device_per_minute=2)
    minute = Limit("uploads", 2, 60)  # the counting window of uploads per device per minute
    for _ in range(WINDOW_ATTEMPTS):
        device = factory.device()
        began = minute.window_of(datetime.now(UTC))
        statuses = []
        for server in (first, second, first):
            with server.client() as client:
                response = upload_multipart(
                    client, device.headers, capture_metadata(device.device_id), jpeg_bytes()
                )
                statuses.append(response.status_code)
                if response.status_code == 429:
                    assert int(response.headers["Retry-After"]) >= 1
        if minute.window_of(datetime.now(UTC)) == began:
            break  # all three fell in one window (else a new window rightly counted afresh)
    assert statuses == [201, 201, 429]


def test_snapshots_are_served_nosniff_inline(live_server: LiveServer, factory: Factory) -> None:
    user = factory.user()
    device = factory.device(org_id=user.org_id)
    with live_server.client() as client:
        record = upload_multipart(
            client, device.headers, capture_metadata(device.device_id), jpeg_bytes()
        ).json()["record_id"]
        image = client.get(f"/v1/captures/{record}/image", headers=user.headers)
    assert image.status_code == 200
    assert image.headers["x-content-type-options"] == "nosniff"
    assert image.headers["content-disposition"] == "inline"


def test_logout_revokes_the_token_and_admin_revokes_a_users(
    live_server: LiveServer, factory: Factory
) -> None:
    admin = factory.user()
    other = factory.user(org_id=admin.org_id)
    with live_server.client() as client:
        out = client.post("/v1/auth/logout", headers=other.headers)
        after = client.get("/v1/devices", headers=other.headers)
        third = factory.user(org_id=admin.org_id)
        revoked = client.post(
            "/v1/auth/revoke", headers=admin.headers, json={"user_id": str(third.user_id)}
        )
        third_after = client.get("/v1/devices", headers=third.headers)
        stranger = factory.user()
        foreign = client.post(
            "/v1/auth/revoke", headers=admin.headers, json={"user_id": str(stranger.user_id)}
        )
    assert out.json() == {"revoked": 1} and after.status_code == 401
    assert revoked.json() == {"revoked": 1} and third_after.status_code == 401
    assert foreign.status_code == 404
