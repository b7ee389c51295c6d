"""The console's live stream over real HTTP: org filtering, the per-user cap, each change's
event, the stream's end at shutdown; and the session cookie's Secure flag behind https."""

from __future__ import annotations

import contextlib
import json
import queue
import threading
from collections.abc import Iterator
from typing import Any

import httpx
from httpx_sse import connect_sse

from cloud.models import UserRole
from tests.console.conftest import HTML, NONCE_FIELD, csrf_of, sign_in
from tests.support.captures import capture_metadata, jpeg_bytes, upload_multipart
from tests.support.factories import Factory
from tests.support.live_server import LiveServer

EVENT_TIMEOUT = 15.0  # seconds; generous on a loaded 2-core machine


class ConsoleStream:
    """`GET /console/events` with a signed-in client's cookies, read in a thread."""

    def __init__(self, client: httpx.Client, path: str = "/console/events") -> None:
        self._client = client
        self._path = path
        self.events: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue()
        self.status: int | None = None
        self._opened = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        assert self._opened.wait(EVENT_TIMEOUT), "console stream did not open"

    def _read(self) -> None:
        try:
            with connect_sse(self._client, "GET", self._path) as source:
                self.status = source.response.status_code
                self._opened.set()
                if self.status != 200:
                    return
                for sse in source.iter_sse():
                    self.events.put((sse.event, json.loads(sse.data) if sse.data else {}))
        except httpx.HTTPError:
            pass
        finally:
            self._opened.set()
            self.events.put(None)

    def next_of(self, kind: str, **fields: Any) -> dict[str, Any]:
        """The next event of `kind` whose fields match (others are skipped)."""
        while True:
            item = self.events.get(timeout=EVENT_TIMEOUT)
            assert item is not None, "console stream ended"
            event, data = item
            if event == kind and all(data.get(k) == v for k, v in fields.items()):
                return data


@contextlib.contextmanager
def signed_in_client(server: LiveServer, email: str, password: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=httpx.Timeout(10.0, read=60.0)) as client:
        sign_in(client, email, password)
        yield client


def test_events_of_the_users_org_only_reach_its_stream(
    live_server: LiveServer, factory: Factory
) -> None:
    user = factory.user(role=UserRole.OPERATOR)
    mine = factory.device(org_id=user.org_id)
    theirs = factory.device()
    with signed_in_client(live_server, user.email, user.password) as client:
        stream = ConsoleStream(client)
        stream.next_of("hello")
        with live_server.client() as api:
            foreign = capture_metadata(theirs.device_id)
            assert upload_multipart(api, theirs.headers, foreign, jpeg_bytes()).status_code == 201
            own = capture_metadata(mine.device_id)
            stored = upload_multipart(api, mine.headers, own, jpeg_bytes(seed=1))
            assert stored.status_code == 201
        event = stream.next_of("capture")
        # The foreign capture was stored first, yet the first capture event is our own.
        assert event["device_id"] == mine.device_id
        assert event["capture_id"] == stored.json()["record_id"]
        assert event["org_id"] == str(user.org_id)

        # A manual trigger (device offline: pending), then cancelled (failed).
        with live_server.client() as api:
            made = api.post(f"/v1/devices/{mine.device_id}/trigger", headers=user.headers)
            trigger_id = made.json()["trigger_id"]
            stream.next_of("trigger", trigger_id=trigger_id, status="pending")
            api.post(f"/v1/triggers/{trigger_id}/cancel", headers=user.headers)
            stream.next_of("trigger", trigger_id=trigger_id, status="failed")

        # The console's own change: a suspend is a device event.
        csrf = csrf_of(client)
        client.post(
            f"/devices/{mine.device_id}/status",
            data={"action": "suspend", "csrf": csrf},
            headers=HTML,
        )
        assert stream.next_of("device", device_id=mine.device_id)["changed"] == "status"


def test_an_expired_trigger_is_announced_by_the_reaper(
    live_server: LiveServer, factory: Factory
) -> None:
    user = factory.user(role=UserRole.OPERATOR)
    device = factory.device(org_id=user.org_id)
    with signed_in_client(live_server, user.email, user.password) as client:
        stream = ConsoleStream(client, f"/console/events?device={device.device_id}")
        stream.next_of("hello")
        with live_server.client() as api:
            made = api.post(
                f"/v1/devices/{device.device_id}/trigger",
                json={"ttl_seconds": 1},
                headers=user.headers,
            )
        trigger_id = made.json()["trigger_id"]
        stream.next_of("trigger", trigger_id=trigger_id, status="expired")


def test_open_streams_are_capped_per_user(start_server, factory: Factory) -> None:  # noqa: ANN001
    server = start_server(console_streams_per_user=1)
    user = factory.user()
    with signed_in_client(server, user.email, user.password) as client:
        first = ConsoleStream(client)
        first.next_of("hello")
        refused = client.get("/console/events", headers={"X-Requested-With": "fetch"})
        assert refused.status_code == 429
        assert "too many open console pages" in refused.json()["detail"]
        assert first.status == 200


def test_a_stream_without_a_session_is_refused(live_server: LiveServer) -> None:
    with live_server.client() as client:
        response = client.get("/console/events", headers={"X-Requested-With": "fetch"})
    assert response.status_code == 401


def test_streams_end_at_shutdown(start_server, factory: Factory) -> None:  # noqa: ANN001
    server = start_server()
    user = factory.user()
    with signed_in_client(server, user.email, user.password) as client:
        stream = ConsoleStream(client)
        stream.next_of("hello")
        assert server.stop() < 10.0
        while stream.events.get(timeout=EVENT_TIMEOUT) is not None:
            pass  # the stream ends (None) rather than hang until a timeout


def test_the_session_cookie_is_secure_behind_https(
    live_server: LiveServer, factory: Factory
) -> None:
    user = factory.user()
    with live_server.client(headers={"X-Forwarded-Proto": "https"}) as client:
        form = client.get("/sign-in", headers=HTML)
        nonce = NONCE_FIELD.search(form.text).group(1)  # type: ignore[union-attr]
        # A Secure cookie is not sent back over this test's plain http: hand it over.
        assert "Secure" in form.headers["set-cookie"]
        response = client.post(
            "/sign-in",
            data={"email": user.email, "password": user.password, "csrf": nonce},
            headers={**HTML, "Cookie": f"visant_signin={nonce}"},
        )
    assert response.status_code == 303
    cookie = next(h for h in response.headers.get_list("set-cookie") if "visant_session" in h)
    assert "Secure" in cookie and "HttpOnly" in cookie
