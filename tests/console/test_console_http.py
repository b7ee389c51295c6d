"""The console over plain HTTP: sign-in, cookies, CSRF, roles, org scoping, paging, errors."""

from __future__ import annotations

from cloud.models import UserRole
from tests.console.conftest import HTML, csrf_of, sign_in
from tests.support.factories import Factory
from tests.support.live_server import LiveServer

CHANGE_BUTTONS = (
    "capture-now",
    "suspend",
    "rotate-key",
    "delete-device",
    "save-schedule",
    "save-rules",
)


def test_a_page_without_a_session_redirects_to_sign_in(console: LiveServer) -> None:
    with console.client() as client:
        response = client.get("/fleet", headers=HTML)
    assert response.status_code == 303
    assert response.headers["location"] == "/sign-in?next=%2Ffleet"


def test_root_sends_browsers_to_the_console_and_others_get_json(console: LiveServer) -> None:
    with console.client() as client:
        assert client.get("/", headers=HTML).headers["location"] == "/fleet"
        assert client.get("/").json()["name"] == "visant"
        assert client.get("/v1").json()["name"] == "visant"


def test_sign_in_sets_an_httponly_samesite_cookie(console: LiveServer, factory: Factory) -> None:
    user = factory.user()
    with console.client() as client:
        response = sign_in(client, user.email, user.password)
        assert response.status_code == 303
        cookie = next(h for h in response.headers.get_list("set-cookie") if "visant_session" in h)
        assert "HttpOnly" in cookie
        assert "SameSite=lax" in cookie
        assert "Secure" not in cookie  # plain http here; https requests get Secure
        page = client.get("/fleet", headers=HTML)
    assert page.status_code == 200
    assert user.email in page.text


def test_wrong_password_is_a_message_on_the_page(console: LiveServer, factory: Factory) -> None:
    user = factory.user()
    with console.client() as client:
        response = sign_in(client, user.email, "not the password")
    assert response.status_code == 401
    assert "Wrong email or password." in response.text
    assert "visant_session" not in response.headers.get("set-cookie", "")


def test_sign_in_without_its_nonce_is_refused(console: LiveServer, factory: Factory) -> None:
    user = factory.user()
    with console.client() as client:
        response = client.post(
            "/sign-in",
            data={"email": user.email, "password": user.password, "csrf": "forged"},
            headers=HTML,
        )
    assert response.status_code == 403
    assert "The form expired" in response.text


def test_a_post_without_csrf_is_refused(console: LiveServer, factory: Factory) -> None:
    user = factory.user()
    device = factory.device(org_id=user.org_id)
    with console.client() as client:
        sign_in(client, user.email, user.password)
        page = client.post(
            f"/devices/{device.device_id}/status", data={"action": "suspend"}, headers=HTML
        )
        fetch = client.post(
            f"/console/devices/{device.device_id}/capture",
            json={},
            headers={"X-Requested-With": "fetch"},
        )
    assert page.status_code == 403
    assert "another site" in page.text and "<html" in page.text
    assert fetch.status_code == 403
    assert "another site" in fetch.json()["detail"]


def test_a_viewer_sees_no_change_buttons_and_is_refused(
    console: LiveServer, factory: Factory
) -> None:
    org = factory.org()
    viewer = factory.user(org_id=org, role=UserRole.VIEWER)
    device = factory.device(org_id=org)
    with console.client() as client:
        sign_in(client, viewer.email, viewer.password)
        page = client.get(f"/devices/{device.device_id}", headers=HTML)
        assert page.status_code == 200
        for button in CHANGE_BUTTONS:
            assert f'id="{button}"' not in page.text
        csrf = csrf_of(client)
        forged = client.post(
            f"/console/devices/{device.device_id}/capture",
            json={},
            headers={"X-Requested-With": "fetch", "X-CSRF-Token": csrf},
        )
        form = client.post(
            f"/devices/{device.device_id}/status",
            data={"action": "suspend", "csrf": csrf},
            headers=HTML,
        )
    assert forged.status_code == 403
    assert forged.json()["detail"] == "this needs the operator role"
    assert form.status_code == 403


def test_another_orgs_device_is_a_404_page(console: LiveServer, factory: Factory) -> None:
    user = factory.user()
    other = factory.device()
    with console.client() as client:
        sign_in(client, user.email, user.password)
        response = client.get(f"/devices/{other.device_id}", headers=HTML)
        unknown = client.get("/no-such-page", headers=HTML)
    assert response.status_code == 404
    assert "no such device in your organisation" in response.text
    assert "<html" in response.text and "Traceback" not in response.text
    assert unknown.status_code == 404 and "<html" in unknown.text


def test_sign_out_revokes_the_session(console: LiveServer, factory: Factory) -> None:
    user = factory.user()
    with console.client() as client:
        sign_in(client, user.email, user.password)
        token = client.cookies.get("visant_session")
        csrf = csrf_of(client)
        out = client.post("/sign-out", data={"csrf": csrf}, headers=HTML)
        assert out.status_code == 303
        assert client.get("/fleet", headers=HTML).status_code == 303
    # The token itself is dead, not just the cookie dropped.
    with console.client() as client:
        api = client.get("/v1/devices", headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 401


def test_fleet_pages_with_a_cursor_and_filters(start_server, factory: Factory) -> None:  # noqa: ANN001
    server = start_server(console_page_size=3)
    user = factory.user()
    ids = [
        factory.device(org_id=user.org_id, device_id=f"PAGE_{i:02d}").device_id for i in range(7)
    ]
    factory.device(org_id=user.org_id, device_id="OTHER_NAME")
    with server.client() as client:
        sign_in(client, user.email, user.password)
        seen: list[str] = []
        url = "/fleet?q=PAGE"
        while url:
            page = client.get(url, headers=HTML)
            assert page.status_code == 200
            seen += [i for i in ids if f'data-device="{i}"' in page.text]
            assert "OTHER_NAME" not in page.text
            marker = 'id="next-page" href="'
            url = (
                page.text.split(marker)[1].split('"')[0].replace("&amp;", "&")
                if marker in page.text
                else ""
            )
        offline = client.get("/fleet?status=online", headers=HTML)
        bad_cursor = client.get("/fleet?cursor=garbage", headers=HTML)
    assert seen == ids
    assert "No device matches" in offline.text
    assert bad_cursor.status_code == 422 and "invalid cursor" in bad_cursor.text
