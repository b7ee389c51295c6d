"""Roles on every user route: viewer reads, operator runs devices and triggers, admin keys."""

from __future__ import annotations

from typing import Any

import pytest

from cloud.models import UserRole
from tests.support.captures import make_trigger
from tests.support.factories import Factory
from tests.support.live_server import LiveServer

RANK = {UserRole.VIEWER: 0, UserRole.OPERATOR: 1, UserRole.ADMIN: 2}

# (method, path template, body, least role). {device} and {trigger} are the org's own.
ROUTES: list[tuple[str, str, Any, UserRole]] = [
    ("GET", "/v1/devices", None, UserRole.VIEWER),
    ("GET", "/v1/devices/connected", None, UserRole.VIEWER),
    ("GET", "/v1/devices/{device}", None, UserRole.VIEWER),
    ("GET", "/v1/triggers", None, UserRole.VIEWER),
    ("GET", "/v1/triggers/{trigger}", None, UserRole.VIEWER),
    ("GET", "/v1/captures", None, UserRole.VIEWER),
    ("GET", "/v1/devices/{device}/connection", None, UserRole.VIEWER),
    ("GET", "/v1/auth/tokens", None, UserRole.VIEWER),
    ("GET", "/v1/users", None, UserRole.ADMIN),
    ("GET", "/v1/audit", None, UserRole.ADMIN),
    ("POST", "/v1/devices", {"device_id": "NEW_{role}"}, UserRole.OPERATOR),
    ("PATCH", "/v1/devices/{device}", {"friendly_name": "renamed"}, UserRole.OPERATOR),
    ("PATCH", "/v1/devices/{device}", {"status": "active"}, UserRole.OPERATOR),
    (
        "PATCH",
        "/v1/devices/{device}",
        {"config": {"camera": {"warmup": 2}}},
        UserRole.OPERATOR,
    ),
    ("POST", "/v1/devices/{device}/trigger", None, UserRole.OPERATOR),
    ("POST", "/v1/triggers/{trigger}/cancel", None, UserRole.OPERATOR),
    ("POST", "/v1/devices/{device}/rotate-key", None, UserRole.ADMIN),
    ("POST", "/v1/auth/revoke", {"user_id": "{target}"}, UserRole.ADMIN),
    ("DELETE", "/v1/devices/{device}", None, UserRole.OPERATOR),  # last: the device goes
]


@pytest.mark.parametrize("role", list(UserRole))
def test_each_route_answers_each_role_as_its_rank_allows(
    live_server: LiveServer, factory: Factory, db: Any, role: UserRole
) -> None:
    org = factory.org()
    user = factory.user(org_id=org, role=role)
    target = factory.user(org_id=org, role=UserRole.VIEWER)
    device = factory.device(org_id=org)
    seen: dict[str, int] = {}
    with live_server.client(headers=user.headers) as client:
        for method, template, body, least in ROUTES:
            trigger = make_trigger(db, device.device_id)
            values = {
                "device": device.device_id,
                "trigger": trigger,
                "role": role.value,
                "target": str(target.user_id),
            }
            path = template.format(**values)
            json_body = (
                None
                if body is None
                else {
                    k: str(v).format(**values) if isinstance(v, str) else v for k, v in body.items()
                }
            )
            response = client.request(method, path, json=json_body)
            seen[f"{method} {template} {body}"] = response.status_code
            allowed = RANK[role] >= RANK[least]
            if allowed:
                assert response.status_code < 400, (method, path, response.text)
            else:
                assert response.status_code == 403, (method, path, response.text)
                assert response.json() == {"detail": f"this needs the {least.value} role"}
    assert len(seen) == len(ROUTES)
