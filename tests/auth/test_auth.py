"""Login and bearer tokens."""

from __future__ import annotations

from tests.support.factories import Factory
from tests.support.live_server import LiveServer


def test_login_returns_a_token_that_opens_user_routes(
    live_server: LiveServer, factory: Factory
) -> None:
    user = factory.user(email="Ops@Example.test", password="s3cret-pass")
    with live_server.client() as client:
        response = client.post(
            "/v1/auth/token", json={"email": "ops@example.test", "password": "s3cret-pass"}
        )
        assert response.status_code == 200
        token = response.json()["access_token"]
        assert token.startswith("vut_")
        listed = client.get("/v1/devices", headers={"Authorization": f"Bearer {token}"})
    assert listed.status_code == 200
    assert user.email


def test_wrong_password_and_unknown_email_are_401(
    live_server: LiveServer, factory: Factory
) -> None:
    factory.user(email="a@example.test", password="right")
    with live_server.client() as client:
        wrong = client.post("/v1/auth/token", json={"email": "a@example.test", "password": "bad"})
        unknown = client.post("/v1/auth/token", json={"email": "b@example.test", "password": "x"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == {"detail": "invalid email or password"}


def test_missing_or_garbage_token_is_401(live_server: LiveServer, factory: Factory) -> None:
    with live_server.client() as client:
        missing = client.get("/v1/devices")
        garbage = client.get("/v1/devices", headers={"Authorization": "Bearer vut_garbage"})
        device_key = client.get(
            "/v1/devices", headers={"Authorization": f"Bearer {factory.device().key}"}
        )
    for response in (missing, garbage, device_key):
        assert response.status_code == 401
        assert "detail" in response.json()


def test_login_body_with_extra_field_is_422(live_server: LiveServer) -> None:
    with live_server.client() as client:
        response = client.post(
            "/v1/auth/token", json={"email": "a@example.test", "password": "x", "admin": True}
        )
    assert response.status_code == 422


def test_malformed_device_key_is_refused_before_the_upload_body_is_read(
    live_server: LiveServer,
) -> None:
    with live_server.client() as client:
        response = client.post(
            "/v1/captures",
            headers={"Authorization": "Bearer vsk_nope", "Content-Type": "application/json"},
            content=b"{not even json",
        )
    assert response.status_code == 401
    assert response.json() == {"detail": "invalid bearer token"}
