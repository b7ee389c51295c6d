"""The device page's actions over HTTP: rules and schedule validation, key rotation, delete,
capture-now and its refusals; each refusal a message, never a stack trace."""

from __future__ import annotations

from cloud.models import UserRole
from tests.console.conftest import HTML, csrf_of, sign_in
from tests.support.factories import Factory
from tests.support.live_server import LiveServer

FETCH = {"X-Requested-With": "fetch"}


def test_rules_are_validated_like_the_api_and_saved(
    live_server: LiveServer, factory: Factory
) -> None:
    user = factory.user(role=UserRole.OPERATOR)
    device = factory.device(org_id=user.org_id, config={"trigger": {"enabled": False}})
    url = f"/console/devices/{device.device_id}/rules"
    with live_server.client() as client:
        sign_in(client, user.email, user.password)
        headers = {**FETCH, "X-CSRF-Token": csrf_of(client)}
        outside = [{"name": "r", "labels": ["person"], "zone": [[0, 0], [1.5, 0], [1, 1]]}]
        refused = client.post(url, json={"rules": outside}, headers=headers)
        not_json = client.post(url, content=b"{", headers=headers)
        zone = [[0.1, 0.1], [0.9, 0.1], [0.5, 0.8]]
        saved = client.post(
            url, json={"rules": [{"name": "r", "labels": ["car"], "zone": zone}]}, headers=headers
        )
        api = client.get(f"/v1/devices/{device.device_id}", headers=user.headers).json()
    assert refused.status_code == 422
    assert refused.json()["detail"].startswith("evaluation.rules.0.zone")
    assert not_json.status_code == 422
    assert saved.status_code == 200
    assert api["config"]["evaluation"]["rules"][0]["zone"] == zone
    assert api["config"]["trigger"] == {"enabled": False, "timezone": "UTC"}
    assert api["config_version"] == 2


def test_schedule_below_the_minimum_interval_is_a_message(
    start_server,
    factory: Factory,  # noqa: ANN001
) -> None:
    server = start_server(min_interval_seconds=60)
    user = factory.user(role=UserRole.OPERATOR)
    device = factory.device(org_id=user.org_id)
    with server.client() as client:
        sign_in(client, user.email, user.password)
        form = {
            "csrf": csrf_of(client),
            "mode": "interval",
            "interval_value": "10",
            "interval_unit": "s",
            "timezone": "UTC",
        }
        response = client.post(f"/devices/{device.device_id}/schedule", data=form, headers=HTML)
    assert response.status_code == 422
    assert 'class="problem"' in response.text and "60" in response.text
    assert "Traceback" not in response.text


def test_only_an_admin_rotates_a_key_and_sees_it_once(
    live_server: LiveServer, factory: Factory
) -> None:
    org = factory.org()
    operator = factory.user(org_id=org, role=UserRole.OPERATOR)
    admin = factory.user(org_id=org, role=UserRole.ADMIN)
    device = factory.device(org_id=org)
    url = f"/devices/{device.device_id}/rotate-key"
    with live_server.client() as client:
        sign_in(client, operator.email, operator.password)
        page = client.get(f"/devices/{device.device_id}", headers=HTML)
        assert 'id="rotate-key"' not in page.text and 'id="capture-now"' in page.text
        refused = client.post(url, data={"csrf": csrf_of(client)}, headers=HTML)
    assert refused.status_code == 403 and "admin role" in refused.text
    with live_server.client() as client:
        sign_in(client, admin.email, admin.password)
        rotated = client.post(url, data={"csrf": csrf_of(client)}, headers=HTML)
        again = client.get(f"/devices/{device.device_id}", headers=HTML)
    assert rotated.status_code == 200
    assert rotated.headers["cache-control"] == "no-store"
    key = rotated.text.split('id="new-key">')[1].split("<")[0]
    assert key.startswith("vsk_") and key not in again.text
    with live_server.client() as client:
        old = client.post(
            f"/v1/devices/{device.device_id}/config/ack",
            json={"version": 1, "config": {}},
            headers=device.headers,
        )
        new = client.post(
            f"/v1/devices/{device.device_id}/config/ack",
            json={"version": 1, "config": {}},
            headers={"Authorization": f"Bearer {key}"},
        )
    assert old.status_code == 401
    assert new.status_code < 300


def test_delete_takes_the_device_off_the_fleet(live_server: LiveServer, factory: Factory) -> None:
    user = factory.user(role=UserRole.OPERATOR)
    device = factory.device(org_id=user.org_id)
    with live_server.client() as client:
        sign_in(client, user.email, user.password)
        deleted = client.post(
            f"/devices/{device.device_id}/delete", data={"csrf": csrf_of(client)}, headers=HTML
        )
        assert deleted.status_code == 303
        fleet = client.get("/fleet", headers=HTML)
        gone = client.get(f"/devices/{device.device_id}", headers=HTML)
    assert device.device_id not in fleet.text
    assert gone.status_code == 404


def test_capture_now_over_the_cap_is_a_429_message(start_server, factory: Factory) -> None:  # noqa: ANN001
    server = start_server(max_open_manual_triggers=1)
    user = factory.user(role=UserRole.OPERATOR)
    device = factory.device(org_id=user.org_id)
    url = f"/console/devices/{device.device_id}/capture"
    with server.client() as client:
        sign_in(client, user.email, user.password)
        headers = {**FETCH, "X-CSRF-Token": csrf_of(client)}
        first = client.post(url, headers=headers)
        second = client.post(url, headers=headers)
        trigger = client.get(f"/v1/triggers/{first.json()['trigger_id']}", headers=user.headers)
        admin = factory.user(org_id=user.org_id)  # the audit log is an admin's to read
        audit = client.get("/v1/audit", headers=admin.headers).json()["entries"]
    assert first.status_code == 201 and first.json()["online"] is False
    # One audit entry for the stored trigger, saying where it came from; none for the refusal.
    manual = [e["details"] for e in audit if e["action"] == "trigger.manual"]
    assert manual == [{"trigger_id": first.json()["trigger_id"], "via": "console"}]
    assert trigger.json()["status"] == "pending"
    assert trigger.json()["trigger_label"] == "console"
    assert second.status_code == 429
    assert "open manual triggers" in second.json()["detail"]


def test_a_suspended_device_says_so_and_resumes(live_server: LiveServer, factory: Factory) -> None:
    user = factory.user(role=UserRole.OPERATOR)
    device = factory.device(org_id=user.org_id)
    page_url = f"/devices/{device.device_id}"
    with live_server.client(follow_redirects=True) as client:
        sign_in(client, user.email, user.password)
        csrf = csrf_of(client)
        suspended = client.post(
            f"{page_url}/status", data={"action": "suspend", "csrf": csrf}, headers=HTML
        )
        assert "Device suspended" in suspended.text and 'id="resume"' in suspended.text
        resumed = client.post(
            f"{page_url}/status", data={"action": "resume", "csrf": csrf}, headers=HTML
        )
    assert "Device resumed." in resumed.text and 'id="suspend"' in resumed.text
