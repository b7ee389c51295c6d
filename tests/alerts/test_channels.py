"""Channels API: admin only, secrets shown once, URLs checked (Apprise, SSRF), templates bounded."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy.orm import Session, sessionmaker

from cloud.models import UserRole
from tests.alerts.conftest import FAST_ALERTS, add_channel, set_role
from tests.support.factories import Factory
from tests.support.live_server import LiveServer


def test_webhook_secret_is_shown_once_and_urls_are_redacted(
    alert_server: LiveServer, factory: Factory
) -> None:
    admin = factory.user()
    with alert_server.client() as client:
        created = add_channel(
            client,
            admin.headers,
            "webhook",
            "http://127.0.0.1:9/hook?token=abc",
            alert_kinds=["detection"],
        )
        assert created["secret"].startswith("whsec_")
        assert created["url"] == "http://127.0.0.1:9/hook"
        apprise = add_channel(client, admin.headers, "apprise", "json://user:hunter2@127.0.0.1:9/x")
        assert apprise["secret"] is None and "hunter2" not in apprise["url"]
        listed = client.get("/v1/channels", headers=admin.headers).json()["channels"]
    assert {c["channel_id"] for c in listed} == {created["channel_id"], apprise["channel_id"]}
    text = str(listed)
    assert "whsec_" not in text and "hunter2" not in text and "token=abc" not in text
    assert all("secret" not in channel for channel in listed)


@pytest.mark.parametrize(
    ("kind", "url", "problem"),
    [
        ("apprise", "nosuchservice://x/y", "not a valid Apprise URL"),
        ("webhook", "ftp://example.com/x", "http:// or https://"),
        ("webhook", "http:///nohost", "no host"),
        ("webhook", "http://user:pw@example.com/", "credentials"),
        ("webhook", "http://x.example/" + "a" * 2100, "longer than 2000"),
    ],
)
def test_invalid_channel_urls_are_422_naming_the_problem(
    alert_server: LiveServer, factory: Factory, kind: str, url: str, problem: str
) -> None:
    admin = factory.user()
    with alert_server.client() as client:
        response = client.post(
            "/v1/channels", headers=admin.headers, json={"name": "bad", "kind": kind, "url": url}
        )
    assert response.status_code == 422, response.text
    assert problem in response.json()["detail"]


@pytest.mark.parametrize(
    ("kind", "url", "problem"),
    [
        ("webhook", "http://127.0.0.1:8000/v1/devices", "loopback"),
        ("webhook", "http://localhost/x", "loopback"),
        ("webhook", "http://169.254.169.254/latest/meta-data/", "link-local"),
        ("webhook", "http://[::1]/x", "loopback"),
        ("webhook", "http://10.0.0.5/x", "private"),
        ("apprise", "json://127.0.0.1:8000/x", "loopback"),
    ],
)
def test_private_targets_are_refused_unless_allowed(
    start_server: Callable[..., LiveServer], factory: Factory, kind: str, url: str, problem: str
) -> None:
    server = start_server(**{**FAST_ALERTS, "allow_private_webhooks": False})
    admin = factory.user()
    with server.client() as client:
        response = client.post(
            "/v1/channels", headers=admin.headers, json={"name": "ssrf", "kind": kind, "url": url}
        )
    assert response.status_code == 422, response.text
    assert problem in response.json()["detail"]
    assert "VISANT_ALLOW_PRIVATE_WEBHOOKS" in response.json()["detail"]


def test_oversized_or_unknown_templates_are_refused(
    alert_server: LiveServer, factory: Factory
) -> None:
    admin = factory.user()
    base = {"name": "t", "kind": "webhook", "url": "http://127.0.0.1:9/x"}
    with alert_server.client() as client:
        big = client.post(
            "/v1/channels", headers=admin.headers, json={**base, "body_template": "x" * 2001}
        )
        unknown = client.post(
            "/v1/channels", headers=admin.headers, json={**base, "title_template": "$secret_key"}
        )
        fine = client.post(
            "/v1/channels",
            headers=admin.headers,
            json={**base, "title_template": "$device_name: $label"},
        )
    assert big.status_code == 422 and "longer than 2000" in big.json()["detail"]
    assert unknown.status_code == 422 and "$secret_key" in unknown.json()["detail"]
    assert fine.status_code == 201, fine.text


def test_channels_are_admin_only_and_org_scoped(
    alert_server: LiveServer, factory: Factory, db: sessionmaker[Session]
) -> None:
    admin = factory.user()
    operator = factory.user(org_id=admin.org_id)
    set_role(db, operator.user_id, UserRole.OPERATOR)
    stranger = factory.user()
    with alert_server.client() as client:
        channel = add_channel(client, admin.headers, "webhook", "http://127.0.0.1:9/x")
        path = f"/v1/channels/{channel['channel_id']}"
        assert client.get("/v1/channels", headers=operator.headers).status_code == 403
        assert client.post(f"{path}/test", headers=operator.headers).status_code == 403
        assert client.patch(path, headers=stranger.headers, json={"name": "x"}).status_code == 404
        assert client.delete(path, headers=stranger.headers).status_code == 404
        assert client.get(f"{path}/deliveries", headers=stranger.headers).status_code == 404
        patched = client.patch(
            path, headers=admin.headers, json={"name": "renamed", "enabled": False}
        )
        assert patched.status_code == 200 and patched.json()["name"] == "renamed"
        assert patched.json()["enabled"] is False
        assert client.delete(path, headers=admin.headers).status_code == 204
        assert client.get(f"{path}/deliveries", headers=admin.headers).status_code == 404
