"""Manual trigger, listing, cancel, failure and presence routes."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session, sessionmaker

from cloud.models import AuditEntry, Trigger, UserRole
from tests.support.factories import Factory
from tests.support.live_server import LiveServer
from tests.support.streams import StreamReader


def _trigger(
    client: httpx.Client, device_id: str, headers: dict[str, str], **body: object
) -> httpx.Response:
    return client.post(f"/v1/devices/{device_id}/trigger", json=body, headers=headers)


def test_trigger_routes_are_scoped_to_the_users_org(
    live_server: LiveServer, factory: Factory
) -> None:
    owner = factory.user()
    stranger = factory.user()
    device = factory.device(org_id=owner.org_id)
    with live_server.client() as client:
        trigger_id = _trigger(client, device.device_id, owner.headers).json()["trigger_id"]
        assert _trigger(client, device.device_id, stranger.headers).status_code == 404
        assert client.get(f"/v1/triggers/{trigger_id}", headers=stranger.headers).status_code == 404
        cancel = client.post(f"/v1/triggers/{trigger_id}/cancel", headers=stranger.headers)
        assert cancel.status_code == 404
        assert client.get("/v1/triggers", headers=stranger.headers).json()["triggers"] == []
        assert _trigger(client, device.device_id, {}).status_code == 401
        assert _trigger(client, device.device_id, device.headers).status_code == 401


def test_manual_trigger_bad_input_is_a_json_4xx(live_server: LiveServer, factory: Factory) -> None:
    user = factory.user()
    device = factory.device(org_id=user.org_id)
    with live_server.client() as client:
        for body in ({"ttl_seconds": 0}, {"label": "x" * 201}, {"unknown": 1}):
            response = _trigger(client, device.device_id, user.headers, **body)
            assert response.status_code == 422 and response.json()["detail"]
        assert _trigger(client, "bad id!", user.headers).status_code == 404
        bad_cursor = client.get("/v1/triggers", params={"cursor": "@@"}, headers=user.headers)
        assert bad_cursor.status_code == 422
        bad_status = client.get("/v1/triggers", params={"status": "done"}, headers=user.headers)
        assert bad_status.status_code == 422


def test_open_manual_trigger_cap_answers_429_with_retry_after(
    start_server: Callable[..., LiveServer], factory: Factory
) -> None:
    server = start_server(max_open_manual_triggers=2)
    user = factory.user()
    device = factory.device(org_id=user.org_id)
    with server.client() as client:
        for _ in range(2):
            assert _trigger(client, device.device_id, user.headers).status_code == 200
        refused = _trigger(client, device.device_id, user.headers)
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
        assert "open manual triggers" in refused.json()["detail"]

    with server.client() as client:
        audit = client.get("/v1/audit", headers=user.headers).json()["entries"]
    manual = [e for e in audit if e["action"] == "trigger.manual"]
    # One entry per stored trigger, none for the refused one.
    assert len(manual) == 2
    assert {e["target"] for e in manual} == {device.device_id}
    assert {e["actor_email"] for e in manual} == {user.email}
    assert all(e["details"]["trigger_id"].startswith("trg_") for e in manual)


def test_concurrent_requests_pass_the_cap_exactly(
    start_server: Callable[..., LiveServer], factory: Factory, db: sessionmaker[Session]
) -> None:
    """Requests racing for the last places of the cap: each counts the open triggers only
    after the device's lock, so exactly `cap` are stored, whichever connections they take."""
    server = start_server(max_open_manual_triggers=3)
    user = factory.user()
    device = factory.device(org_id=user.org_id)

    def request(_: int) -> int:
        with server.client() as client:
            return _trigger(client, device.device_id, user.headers).status_code

    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = sorted(pool.map(request, range(12)))
    assert statuses == [200] * 3 + [429] * 9
    with db() as session:
        stored = session.scalar(
            sa.select(sa.func.count()).where(Trigger.device_id == device.device_id)
        )
        audited = session.scalar(
            sa.select(sa.func.count()).where(
                AuditEntry.target == device.device_id, AuditEntry.action == "trigger.manual"
            )
        )
    assert (stored, audited) == (3, 3)


def test_cancel_open_trigger_then_cancel_again_is_409(
    live_server: LiveServer, factory: Factory
) -> None:
    user = factory.user()
    device = factory.device(org_id=user.org_id)
    with live_server.client() as client:
        trigger_id = _trigger(client, device.device_id, user.headers).json()["trigger_id"]
        cancelled = client.post(f"/v1/triggers/{trigger_id}/cancel", headers=user.headers)
        assert cancelled.status_code == 200
        assert cancelled.json()["status"] == "failed"
        assert cancelled.json()["error"] == "cancelled by user"
        assert cancelled.json()["finished_at"] is not None
        again = client.post(f"/v1/triggers/{trigger_id}/cancel", headers=user.headers)
        assert again.status_code == 409 and again.json()["detail"] == "trigger is already failed"


def test_device_reports_failure_with_reason(live_server: LiveServer, factory: Factory) -> None:
    user = factory.user()
    device = factory.device(org_id=user.org_id)
    other = factory.device(org_id=user.org_id)
    with live_server.client() as client:
        trigger_id = _trigger(client, device.device_id, user.headers).json()["trigger_id"]
        path = f"/v1/devices/{device.device_id}/triggers/{trigger_id}/failed"
        assert client.post(path, json={"reason": "x"}, headers=other.headers).status_code == 401
        foreign = f"/v1/devices/{other.device_id}/triggers/{trigger_id}/failed"
        assert client.post(foreign, json={"reason": "x"}, headers=other.headers).status_code == 404
        assert client.post(path, json={}, headers=device.headers).status_code == 422
        failed = client.post(path, json={"reason": "camera busy"}, headers=device.headers)
        assert failed.json() == {"trigger_id": trigger_id, "status": "failed"}
        assert client.post(path, json={"reason": "x"}, headers=device.headers).status_code == 409
        row = client.get(f"/v1/triggers/{trigger_id}", headers=user.headers).json()
        assert row["status"] == "failed" and row["error"] == "camera busy"
        garbage = f"/v1/devices/{device.device_id}/triggers/nope/failed"
        assert client.post(garbage, json={"reason": "x"}, headers=device.headers).status_code == 404


def test_trigger_listing_filters_and_pages(live_server: LiveServer, factory: Factory) -> None:
    user = factory.user()
    first = factory.device(org_id=user.org_id)
    second = factory.device(org_id=user.org_id)
    with live_server.client() as client:
        ids = [
            _trigger(client, first.device_id, user.headers).json()["trigger_id"] for _ in range(5)
        ]
        _trigger(client, second.device_id, user.headers)
        client.post(f"/v1/triggers/{ids[0]}/cancel", headers=user.headers)
        seen: list[str] = []
        cursor = None
        while True:
            params = {"device_id": first.device_id, "limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = client.get("/v1/triggers", params=params, headers=user.headers).json()
            seen += [t["trigger_id"] for t in page["triggers"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == list(reversed(ids))
        failed = client.get(
            "/v1/triggers",
            params={"status": "failed", "trigger_type": "manual"},
            headers=user.headers,
        ).json()["triggers"]
        assert [t["trigger_id"] for t in failed] == [ids[0]]
        none_yet = client.get(
            "/v1/triggers", params={"since": "2999-01-01T00:00:00"}, headers=user.headers
        ).json()["triggers"]
        assert none_yet == []


def test_connected_lists_only_own_org_devices_with_a_live_stream(
    live_server: LiveServer, factory: Factory
) -> None:
    user = factory.user()
    mine = factory.device(org_id=user.org_id, reported_config_version=1)
    factory.device(org_id=user.org_id)
    theirs = factory.device(reported_config_version=1)
    readers = [StreamReader(live_server.url, d.device_id, d.key).start() for d in (mine, theirs)]
    with live_server.client() as client:
        try:
            listed = client.get("/v1/devices/connected", headers=user.headers).json()["devices"]
            assert [d["device_id"] for d in listed] == [mine.device_id]
        finally:
            for reader in readers:
                reader.close()
        deadline = time.monotonic() + 5
        while client.get("/v1/devices/connected", headers=user.headers).json()["devices"]:
            assert time.monotonic() < deadline, "disconnected device still listed"
            time.sleep(0.05)


def test_trigger_fast_path_answers_like_the_route(
    live_server: LiveServer, factory: Factory
) -> None:
    """uvicorn serves parsed manual triggers in cloud/api/trigger_fast_path.py and hands the
    rest to the FastAPI route: both kinds answer with the route's statuses and JSON, counted
    under the route's template."""
    operator = factory.user(role=UserRole.OPERATOR)
    viewer = factory.user(org_id=operator.org_id, role=UserRole.VIEWER)
    device = factory.device(org_id=operator.org_id)
    path = f"/v1/devices/{device.device_id}/trigger"
    as_json = {**operator.headers, "Content-Type": "application/json; charset=utf-8"}
    oversized = json.dumps({"label": "x" * (65 * 1024)}).encode()
    cases: list[tuple[str, dict[str, str], bytes | None, int]] = [
        (path, operator.headers, None, 200),  # no body: the defaults
        (path, as_json, b'{"label": "door", "ttl_seconds": 60}', 200),
        (path, {"Authorization": "Bearer vu_not-a-token"}, b"{}", 401),
        (path, {"Authorization": "Basic abc"}, b"{}", 401),
        (path, viewer.headers, b"{}", 403),
        (f"/v1/devices/{factory.device().device_id}/trigger", operator.headers, b"{}", 404),
        ("/v1/devices/bad*id/trigger", operator.headers, b"{}", 404),
        (path, as_json, b'{"label": ', 422),
        (path, as_json, b"null", 200),  # FastAPI reads `null` as no body
        (path, {**operator.headers, "Content-Type": "text/plain"}, b'{"label": "x"}', 422),
        (path, as_json, oversized, 413),
    ]
    with live_server.client() as client:
        before = _requests(client, "200") + _requests(client, "422")
        answers = [
            client.post(url, headers=headers, content=body) for url, headers, body, _ in cases
        ]
        after = _requests(client, "200") + _requests(client, "422")
        chunked_over = client.post(path, headers=as_json, content=iter([oversized[:40_000]] * 2))
        chunked_ok = client.post(path, headers=as_json, content=iter([b'{"label":', b' "d"}']))
    assert chunked_over.status_code == 413, chunked_over.text
    assert chunked_ok.status_code == 200, chunked_ok.text
    for (url, headers, body, expected), answer in zip(cases, answers, strict=True):
        assert answer.status_code == expected, (url, headers, body, answer.text)
        assert isinstance(answer.json(), dict), answer.text
        if expected == 200:
            assert answer.json()["status"] == "pending"
            assert answer.json()["trigger_id"].startswith("trg_")
        else:
            assert isinstance(answer.json()["detail"], str), answer.text
    assert answers[2].headers["www-authenticate"] == "Bearer"
    assert after - before == 5  # three 200s, two 422s: both paths count under the template


def _requests(client: httpx.Client, status: str) -> float:
    wanted = {"route": "/v1/devices/{device_id}/trigger", "method": "POST", "status": status}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "visant_http_requests_total" and sample.labels == wanted:
                return sample.value
    return 0.0
