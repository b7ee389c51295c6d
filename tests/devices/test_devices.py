"""Device registry routes: tenancy, validation, key rotation, config versions."""

from __future__ import annotations

from tests.support.factories import Factory
from tests.support.live_server import LiveServer


def test_register_returns_key_once_and_lists_device(
    live_server: LiveServer, factory: Factory
) -> None:
    user = factory.user()
    body = {"device_id": "FLOOR1", "friendly_name": "Floor 1"}
    with live_server.client(headers=user.headers) as client:
        created = client.post("/v1/devices", json=body)
        assert created.status_code == 201
        key = created.json()["device_key"]
        assert key.startswith("vsk_") and len(key) > 40
        listed = client.get("/v1/devices").json()["devices"]
        fetched = client.get("/v1/devices/FLOOR1").json()
    assert [d["device_id"] for d in listed] == ["FLOOR1"]
    assert "device_key" not in fetched
    assert fetched["key_prefix"] == key[:12]


def test_duplicate_device_id_is_409(live_server: LiveServer, factory: Factory) -> None:
    user = factory.user()
    with live_server.client(headers=user.headers) as client:
        client.post("/v1/devices", json={"device_id": "CAM1"})
        again = client.post("/v1/devices", json={"device_id": "CAM1"})
    assert again.status_code == 409
    assert again.json() == {"detail": "this device id is already registered"}


def test_other_orgs_device_is_404_everywhere(live_server: LiveServer, factory: Factory) -> None:
    mine, theirs = factory.user(), factory.user()
    device = factory.device(org_id=theirs.org_id)
    with live_server.client(headers=mine.headers) as client:
        responses = [
            client.get(f"/v1/devices/{device.device_id}"),
            client.patch(f"/v1/devices/{device.device_id}", json={"friendly_name": "x"}),
            client.post(f"/v1/devices/{device.device_id}/rotate-key"),
        ]
        listed = client.get("/v1/devices").json()["devices"]
    assert [r.status_code for r in responses] == [404, 404, 404]
    assert all(r.json() == {"detail": "device not found"} for r in responses)
    assert listed == []


def test_bad_device_bodies_are_422(live_server: LiveServer, factory: Factory) -> None:
    user = factory.user()
    bad_bodies = [
        {"device_id": "../etc/passwd"},
        {"device_id": "CAM", "unexpected": 1},
        {"device_id": "CAM", "config": {"trigger": {"enabled": True}}},
        {"device_id": "CAM", "config": {"trigger": {"enabled": True, "interval_seconds": 0}}},
        {"device_id": "CAM", "config": {"trigger": {"enabled": True, "cron": "61 * * * *"}}},
        {"device_id": "CAM", "config": {"trigger": {"cron": "* * * * *", "timezone": "Mars/Base"}}},
        {"device_id": "CAM", "config": {"colour": "blue"}},
    ]
    with live_server.client(headers=user.headers) as client:
        statuses = [client.post("/v1/devices", json=body).status_code for body in bad_bodies]
        malformed = client.post(
            "/v1/devices", content=b"{not json", headers={"Content-Type": "application/json"}
        )
    assert statuses == [422] * len(bad_bodies)
    assert malformed.status_code == 422


def test_config_change_bumps_version_and_same_config_does_not(
    live_server: LiveServer, factory: Factory
) -> None:
    user = factory.user()
    device = factory.device(org_id=user.org_id)
    config = {"trigger": {"enabled": True, "interval_seconds": 10}}
    with live_server.client(headers=user.headers) as client:
        first = client.patch(f"/v1/devices/{device.device_id}", json={"config": config}).json()
        same = client.patch(f"/v1/devices/{device.device_id}", json={"config": config}).json()
        renamed = client.patch(f"/v1/devices/{device.device_id}", json={"friendly_name": "Door"})
    assert first["config_version"] == 2
    assert first["config"] == {"trigger": {**config["trigger"], "timezone": "UTC"}}
    assert same["config_version"] == 2
    assert renamed.json()["friendly_name"] == "Door"


def test_rotate_key_replaces_the_key(live_server: LiveServer, factory: Factory) -> None:
    user = factory.user()
    device = factory.device(org_id=user.org_id)
    with live_server.client(headers=user.headers) as client:
        rotated = client.post(f"/v1/devices/{device.device_id}/rotate-key")
    assert rotated.status_code == 200
    assert rotated.json()["device_key"] != device.key
