"""Users API for admins, the caller's password and tokens, and the audit log."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from cloud.models import User, UserRole
from tests.support.factories import Factory, UserWithToken
from tests.support.live_server import LiveServer


def _with_role(db: sessionmaker[Session], user: UserWithToken, role: UserRole) -> UserWithToken:
    with db() as session:
        session.execute(sa.update(User).where(User.user_id == user.user_id).values(role=role))
        session.commit()
    return user


def _login(client, email: str, password: str):  # noqa: ANN001, ANN202 - tiny test helper
    return client.post("/v1/auth/token", json={"email": email, "password": password})


def test_admin_creates_user_with_one_time_password_that_signs_in(
    live_server: LiveServer, factory: Factory
) -> None:
    admin = factory.user()
    with live_server.client() as client:
        created = client.post(
            "/v1/users",
            json={"email": "New@Example.test", "role": "operator"},
            headers=admin.headers,
        )
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["email"] == "new@example.test" and body["role"] == "operator"
        assert len(body["one_time_password"]) >= 20
        assert _login(client, "new@example.test", body["one_time_password"]).status_code == 200
        listed = client.get("/v1/users", headers=admin.headers).json()["users"]
        again = client.post("/v1/users", json={"email": "new@example.test"}, headers=admin.headers)
    assert sorted(u["email"] for u in listed) == sorted([admin.email, "new@example.test"])
    assert again.status_code == 409


def test_users_api_needs_admin_and_stays_in_org(
    live_server: LiveServer, factory: Factory, db: sessionmaker[Session]
) -> None:
    admin = factory.user()
    operator = _with_role(db, factory.user(org_id=admin.org_id), UserRole.OPERATOR)
    stranger = factory.user()
    with live_server.client() as client:
        denied = client.get("/v1/users", headers=operator.headers)
        other_org = client.patch(
            f"/v1/users/{stranger.user_id}", json={"role": "viewer"}, headers=admin.headers
        )
        bad_role = client.patch(
            f"/v1/users/{operator.user_id}", json={"role": "root"}, headers=admin.headers
        )
    assert denied.status_code == 403
    assert other_org.status_code == 404 and other_org.json() == {"detail": "user not found"}
    assert bad_role.status_code == 422


def test_role_change_and_deactivation_are_audited_and_revoke_tokens(
    live_server: LiveServer, factory: Factory
) -> None:
    admin = factory.user()
    member = factory.user(org_id=admin.org_id)
    with live_server.client() as client:
        demoted = client.patch(
            f"/v1/users/{member.user_id}", json={"role": "viewer"}, headers=admin.headers
        )
        assert demoted.json()["role"] == "viewer"
        assert client.get("/v1/users", headers=member.headers).status_code == 403
        off = client.patch(
            f"/v1/users/{member.user_id}", json={"is_active": False}, headers=admin.headers
        )
        assert off.status_code == 200 and off.json()["is_active"] is False
        assert client.get("/v1/devices", headers=member.headers).status_code == 401
        assert _login(client, member.email, member.password).status_code == 401
        last_admin = client.patch(
            f"/v1/users/{admin.user_id}", json={"role": "operator"}, headers=admin.headers
        )
        audit = client.get("/v1/audit", headers=admin.headers).json()["entries"]
    assert last_admin.status_code == 409
    assert "last active admin" in last_admin.json()["detail"]
    actions = [(e["action"], e["target"], e["actor_email"]) for e in audit]
    assert actions == [
        ("user.deactivated", member.email, admin.email),
        ("user.role_changed", member.email, admin.email),
    ]
    assert audit[1]["details"] == {"from": "admin", "to": "viewer"}


def test_user_changes_own_password_and_other_tokens_are_revoked(
    live_server: LiveServer, factory: Factory
) -> None:
    user = factory.user()
    with live_server.client() as client:
        other = _login(client, user.email, user.password).json()["access_token"]
        wrong = client.put(
            "/v1/users/me/password",
            json={"current_password": "nope", "new_password": "brand-new-password"},
            headers=user.headers,
        )
        short = client.put(
            "/v1/users/me/password",
            json={"current_password": user.password, "new_password": "short"},
            headers=user.headers,
        )
        changed = client.put(
            "/v1/users/me/password",
            json={"current_password": user.password, "new_password": "brand-new-password"},
            headers=user.headers,
        )
        still_in = client.get("/v1/devices", headers=user.headers).status_code
        other_out = client.get("/v1/devices", headers={"Authorization": f"Bearer {other}"})
        new_login = _login(client, user.email, "brand-new-password").status_code
    assert wrong.status_code == 403 and short.status_code == 422
    assert changed.status_code == 204
    assert (still_in, other_out.status_code, new_login) == (200, 401, 200)


def test_caller_lists_and_revokes_own_tokens_only(
    live_server: LiveServer, factory: Factory
) -> None:
    user, someone = factory.user(), factory.user()
    with live_server.client() as client:
        second = _login(client, user.email, user.password).json()["access_token"]
        tokens = client.get("/v1/auth/tokens", headers=user.headers).json()["tokens"]
        assert len(tokens) == 2 and sum(t["current"] for t in tokens) == 1
        theirs = client.get("/v1/auth/tokens", headers=someone.headers).json()["tokens"][0]
        foreign = client.delete(f"/v1/auth/tokens/{theirs['token_id']}", headers=user.headers)
        other_id = next(t["token_id"] for t in tokens if not t["current"])
        revoked = client.delete(f"/v1/auth/tokens/{other_id}", headers=user.headers)
        after = client.get("/v1/devices", headers={"Authorization": f"Bearer {second}"})
        malformed = client.delete("/v1/auth/tokens/not-a-uuid", headers=user.headers)
    assert foreign.status_code == 404
    assert revoked.status_code == 204 and after.status_code == 401
    assert malformed.status_code == 422


def test_audit_records_device_changes_and_pages_with_a_cursor(
    live_server: LiveServer, factory: Factory
) -> None:
    admin = factory.user()
    device = factory.device(org_id=admin.org_id)
    path = f"/v1/devices/{device.device_id}"
    with live_server.client(headers=admin.headers) as client:
        client.patch(path, json={"config": {"trigger": {"enabled": False}}})
        client.patch(path, json={"status": "suspended"})
        client.post(f"{path}/rotate-key")
        client.post(f"{path}/trigger", json={})
        first = client.get("/v1/audit", params={"limit": 3}).json()
        second = client.get("/v1/audit", params={"limit": 3, "cursor": first["next_cursor"]})
        bad = client.get("/v1/audit", params={"cursor": "garbage"})
    entries = first["entries"] + second.json()["entries"]
    assert [e["action"] for e in entries] == [
        "trigger.manual",
        "device.key_rotated",
        "device.status_changed",
        "device.config_pushed",
    ]
    assert all(e["target"] == device.device_id for e in entries)
    assert second.json()["next_cursor"] is None
    assert bad.status_code == 422
