"""Channels, users and account pages over HTTP: admin only, the services' rules shown as page
messages, secrets and one-time passwords shown once, CSRF on every form."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator

import httpx
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from cloud.models import AlertChannel, NotificationAttempt, User, UserRole
from tests.console.conftest import HTML, csrf_of, sign_in
from tests.support.factories import Factory
from tests.support.live_server import LiveServer
from tests.support.waiting import wait_until

# Like the alert tests' servers: loopback receivers allowed, the delivery worker quick.
FAST_DELIVERY = {
    "allow_private_webhooks": True,
    "alerts_delivery_poll_seconds": 0.2,
    "alerts_send_timeout_seconds": 2.0,
    "alerts_retry_base_seconds": 0.2,
    "alerts_retry_max_seconds": 0.5,
}
DELIVERY_DEADLINE = 15.0  # seconds: a send and a loaded 2-core machine
SECRET = re.compile(r"whsec_[A-Za-z0-9+/=_-]+")
CHANNEL_ROW = re.compile(r'data-channel="(chn_[0-9a-f]+)"')
ALL_KINDS = ["detection", "device_offline", "device_online", "capture_failed"]


def channel_form(csrf: str, **fields: object) -> dict[str, object]:
    return {"csrf": csrf, "name": "Ops", "kind": "webhook", "alert_kinds": ALL_KINDS, **fields}


@contextlib.contextmanager
def signed_in(server: LiveServer, email: str, password: str) -> Iterator[httpx.Client]:
    with server.client() as client:
        sign_in(client, email, password)
        yield client


def test_non_admins_get_a_403_page_and_no_nav_links(
    live_server: LiveServer, factory: Factory
) -> None:
    org = factory.org()
    for role in (UserRole.VIEWER, UserRole.OPERATOR):
        user = factory.user(org_id=org, role=role)
        with signed_in(live_server, user.email, user.password) as client:
            fleet = client.get("/fleet", headers=HTML)
            pages = [client.get(path, headers=HTML) for path in ("/channels", "/users")]
            csrf = csrf_of(client)
            posts = [
                client.post("/channels", data=channel_form(csrf, url="http://127.0.0.1:1/x")),
                client.post(
                    "/users", data={"csrf": csrf, "email": "x@example.test", "role": "admin"}
                ),
            ]
        assert 'href="/channels"' not in fleet.text and 'href="/users"' not in fleet.text
        assert 'href="/account"' in fleet.text
        for page in pages:
            assert page.status_code == 403 and "<html" in page.text and "only admins" in page.text
        assert [p.status_code for p in posts] == [403, 403]


def test_admin_creates_a_webhook_sees_its_secret_once_edits_tests_and_deletes(
    start_server: Callable[..., LiveServer], factory: Factory, db: sessionmaker[Session]
) -> None:
    server = start_server(**FAST_DELIVERY)
    admin = factory.user()
    with signed_in(server, admin.email, admin.password) as client:
        csrf = csrf_of(client)
        created = client.post(
            "/channels", data=channel_form(csrf, url="http://127.0.0.1:1/hook"), headers=HTML
        )
        assert created.status_code == 200, created.text
        [secret] = SECRET.findall(created.text)
        assert created.headers["cache-control"] == "no-store"
        listing = client.get("/channels", headers=HTML)
        [channel_id] = CHANNEL_ROW.findall(listing.text)
        assert "every kind" in listing.text and "none yet" in listing.text
        page = client.get(f"/channels/{channel_id}", headers=HTML)
        assert secret not in page.text and secret not in listing.text
        saved = client.post(
            f"/channels/{channel_id}",
            data={
                "csrf": csrf,
                "name": "Ops night",
                "alert_kinds": ["detection", "device_offline"],
                "device_ids": "CAM_1, CAM_2",
                "rules": "Door",
            },
            headers=HTML,
        )
        assert saved.status_code == 303
        tested = client.post(f"/channels/{channel_id}/test", data={"csrf": csrf}, headers=HTML)
        assert tested.headers["location"] == f"/channels/{channel_id}?done=test"
        wait_until(lambda: _attempts(db, channel_id) > 0, DELIVERY_DEADLINE)
        with_delivery = client.get(f"/channels/{channel_id}", headers=HTML)
        listing = client.get("/channels", headers=HTML)
        refused_delete = client.post(f"/channels/{channel_id}/delete", data={}, headers=HTML)
        deleted = client.post(f"/channels/{channel_id}/delete", data={"csrf": csrf}, headers=HTML)
        gone = client.get(f"/channels/{channel_id}", headers=HTML)
    with db() as session:
        assert session.get(AlertChannel, channel_id) is None
    assert 'id="deliveries"' in with_delivery.text and "badge-failed" in with_delivery.text
    assert "Ops night" in listing.text and "detection, device offline" in listing.text
    assert "devices CAM_1, CAM_2" in listing.text and "rules Door" in listing.text
    assert "badge-failed" in listing.text  # the last delivery's outcome
    assert refused_delete.status_code == 403
    assert deleted.headers["location"] == "/channels?done=deleted"
    assert gone.status_code == 404 and "channel not found" in gone.text


def _attempts(db: sessionmaker[Session], channel_id: str) -> int:
    with db() as session:
        return session.scalar(
            sa.select(sa.func.count()).where(NotificationAttempt.channel_id == channel_id)
        )


def test_channel_refusals_are_messages_on_the_page(
    live_server: LiveServer, factory: Factory
) -> None:
    admin = factory.user()
    with signed_in(live_server, admin.email, admin.password) as client:
        csrf = csrf_of(client)
        ssrf = client.post(
            "/channels",
            data=channel_form(csrf, url="http://169.254.169.254/latest/meta-data"),
            headers=HTML,
        )
        loopback = client.post(
            "/channels", data=channel_form(csrf, url="http://127.0.0.1:8080/x"), headers=HTML
        )
        apprise = client.post(
            "/channels",
            data=channel_form(csrf, kind="apprise", url="nosuchscheme://x"),
            headers=HTML,
        )
        no_kinds = client.post(
            "/channels",
            data={"csrf": csrf, "name": "n", "kind": "webhook", "url": "https://example.com/h"},
            headers=HTML,
        )
        bad_device = client.post(
            "/channels",
            data=channel_form(csrf, url="https://example.com/h", device_ids="ok, not/an id"),
            headers=HTML,
        )
        template = client.post(
            "/channels",
            data=channel_form(csrf, url="https://example.com/h", title_template="$nosuchfield"),
            headers=HTML,
        )
        listing = client.get("/channels", headers=HTML)
    for response in (ssrf, loopback, apprise, no_kinds, bad_device, template):
        assert response.status_code == 422, response.text
        assert 'class="problem"' in response.text and "Traceback" not in response.text
    assert "private or reserved" in ssrf.text or "link-local" in ssrf.text
    assert "loopback" in loopback.text
    assert "169.254.169.254" in ssrf.text  # the form is shown again as typed
    assert "not a valid Apprise URL" in apprise.text
    assert "choose at least one kind" in no_kinds.text
    assert "is not a device id" in bad_device.text
    assert "nosuchfield" in template.text
    assert CHANNEL_ROW.findall(listing.text) == []


def test_another_orgs_channel_is_not_found(
    start_server: Callable[..., LiveServer], factory: Factory, db: sessionmaker[Session]
) -> None:
    live_server = start_server(allow_private_webhooks=True)
    owner = factory.user()
    admin = factory.user()
    with signed_in(live_server, owner.email, owner.password) as client:
        csrf = csrf_of(client)
        client.post(
            "/channels", data=channel_form(csrf, kind="apprise", url="json://127.0.0.1:1/x")
        )
    with db() as session:
        channel_id = session.scalar(sa.select(AlertChannel.channel_id))
    with signed_in(live_server, admin.email, admin.password) as client:
        csrf = csrf_of(client)
        page = client.get(f"/channels/{channel_id}", headers=HTML)
        delete = client.post(f"/channels/{channel_id}/delete", data={"csrf": csrf}, headers=HTML)
    assert page.status_code == 404 and delete.status_code == 404
    with db() as session:
        assert session.get(AlertChannel, channel_id) is not None


def test_admin_creates_a_user_with_a_one_time_password_changes_role_and_deactivates(
    live_server: LiveServer, factory: Factory, db: sessionmaker[Session]
) -> None:
    admin = factory.user()
    with signed_in(live_server, admin.email, admin.password) as client:
        csrf = csrf_of(client)
        created = client.post(
            "/users", data={"csrf": csrf, "email": "New.Person@Example.test", "role": "viewer"}
        )
        assert created.status_code == 200, created.text
        password = re.search(r'id="one-time-password">([^<]+)<', created.text).group(1)
        duplicate = client.post(
            "/users", data={"csrf": csrf, "email": "new.person@example.test", "role": "viewer"}
        )
        bad_email = client.post("/users", data={"csrf": csrf, "email": "nope", "role": "viewer"})
        listing = client.get("/users", headers=HTML)
        assert "new.person@example.test" in listing.text and password not in listing.text
        with db() as session:
            new_id = session.scalar(
                sa.select(User.user_id).where(User.email == "new.person@example.test")
            )
        with signed_in(live_server, "new.person@example.test", password) as other:
            assert other.get("/alerts", headers=HTML).status_code == 200
            promoted = client.post(f"/users/{new_id}/role", data={"csrf": csrf, "role": "operator"})
            assert promoted.headers["location"] == "/users?done=role"
            deactivated = client.post(
                f"/users/{new_id}/active", data={"csrf": csrf, "action": "deactivate"}
            )
            assert deactivated.headers["location"] == "/users?done=deactivated"
            after = other.get("/alerts", headers=HTML)
        listing = client.get("/users", headers=HTML)
        last_admin = client.post(
            f"/users/{admin.user_id}/role", data={"csrf": csrf, "role": "viewer"}
        )
        self_off = client.post(
            f"/users/{admin.user_id}/active", data={"csrf": csrf, "action": "deactivate"}
        )
        stranger = factory.user()
        foreign = client.post(
            f"/users/{stranger.user_id}/role", data={"csrf": csrf, "role": "viewer"}
        )
        junk = client.post("/users/not-a-uuid/role", data={"csrf": csrf, "role": "viewer"})
        forged = client.post(f"/users/{new_id}/active", data={"action": "reactivate"})
    assert duplicate.status_code == 409 and "already exists" in duplicate.text
    assert bad_email.status_code == 422 and "invalid email" in bad_email.text
    assert after.status_code == 303  # signed out: back to the sign-in page
    assert "deactivated" in listing.text and "operator" in listing.text
    assert last_admin.status_code == 409 and "last active admin" in last_admin.text
    assert self_off.status_code == 409 and "last active admin" in self_off.text
    assert foreign.status_code == 404 and junk.status_code == 404
    assert forged.status_code == 403
    with db() as session:
        user = session.get(User, new_id)
        assert (user.role, user.is_active) == (UserRole.OPERATOR, False)
        assert session.get(User, admin.user_id).role is UserRole.ADMIN


def test_every_role_changes_their_own_password(live_server: LiveServer, factory: Factory) -> None:
    viewer = factory.user(role=UserRole.VIEWER)
    with (
        signed_in(live_server, viewer.email, viewer.password) as elsewhere,
        signed_in(live_server, viewer.email, viewer.password) as client,
    ):
        csrf = csrf_of(client)
        page = client.get("/account", headers=HTML)
        assert 'id="change-password"' in page.text
        form = {"csrf": csrf, "current_password": viewer.password}
        wrong = client.post(
            "/account/password",
            data={
                **form,
                "current_password": "nope",
                "new_password": "a" * 12,
                "repeat_password": "a" * 12,
            },
        )
        differ = client.post(
            "/account/password",
            data={**form, "new_password": "a" * 12, "repeat_password": "b" * 12},
        )
        short = client.post(
            "/account/password", data={**form, "new_password": "short", "repeat_password": "short"}
        )
        forged = client.post(
            "/account/password",
            data={**form, "csrf": "", "new_password": "a" * 12, "repeat_password": "a" * 12},
        )
        changed = client.post(
            "/account/password",
            data={**form, "new_password": "a new long one", "repeat_password": "a new long one"},
        )
        assert changed.headers["location"] == "/account?done=password"
        still = client.get("/account?done=password", headers=HTML)
        other_session = elsewhere.get("/fleet", headers=HTML)
    assert wrong.status_code == 403 and "current password is wrong" in wrong.text
    assert differ.status_code == 422 and "differ" in differ.text
    assert short.status_code == 422 and "at least 8" in short.text
    assert forged.status_code == 403
    assert still.status_code == 200 and "Password changed" in still.text
    assert other_session.status_code == 303
    with live_server.client() as fresh:
        assert sign_in(fresh, viewer.email, "a new long one").status_code == 303
