"""The alerts page over HTTP: newest first, filters, paging, thumbnails, acknowledge and
resolve through the API's service, roles and CSRF, another org's alert, the live rows."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from cloud.models import Alert, AlertKind, AlertState, UserRole
from tests.console.conftest import HTML, csrf_of, sign_in
from tests.support.alerts import PERSON, door_rules, insert_alerts
from tests.support.captures import capture_metadata, jpeg_bytes, upload_multipart
from tests.support.factories import Factory
from tests.support.live_server import LiveServer

RULES = door_rules(cooldown_seconds=0)
ALERT_ROW = re.compile(r'data-alert="(alr_[0-9a-f]+)"')


def upload_detection(client: httpx.Client, device_headers: dict[str, str], device_id: str) -> str:
    metadata = capture_metadata(device_id, detections=PERSON)
    response = upload_multipart(client, device_headers, metadata, jpeg_bytes(320, 240))
    assert response.status_code == 201, response.text
    return response.json()["record_id"]


def state_of(db: sessionmaker[Session], alert_id: str) -> AlertState:
    with db() as session:
        return session.scalar(sa.select(Alert.state).where(Alert.alert_id == alert_id))


def test_alerts_newest_first_with_thumbnail_device_link_and_rule(
    live_server: LiveServer, factory: Factory, db: sessionmaker[Session]
) -> None:
    user = factory.user()
    device = factory.device(org_id=user.org_id, device_id="DOOR_CAM", config=RULES)
    older = insert_alerts(db, user.org_id, device.device_id, [AlertKind.DEVICE_OFFLINE])
    with live_server.client() as client:
        capture_id = upload_detection(client, device.headers, device.device_id)
        sign_in(client, user.email, user.password)
        page = client.get("/alerts", headers=HTML)
        image = client.get(f"/console/captures/{capture_id}/image")
    assert page.status_code == 200
    shown = ALERT_ROW.findall(page.text)
    assert len(shown) == 2 and shown[1] == older[0]
    newest = page.text.split(f'data-alert="{shown[0]}"')[1].split("</article>")[0]
    assert f'src="/console/captures/{capture_id}/image"' in newest
    assert 'href="/devices/DOOR_CAM"' in newest
    assert "rule <strong>Door</strong>" in newest and "detection" in newest
    assert image.status_code == 200 and image.content[:2] == b"\xff\xd8"


def test_filters_and_keyset_pages(
    start_server: Callable[..., LiveServer], factory: Factory, db: sessionmaker[Session]
) -> None:
    server = start_server(console_page_size=2)
    user = factory.user()
    device = factory.device(org_id=user.org_id)
    kinds = [AlertKind.DETECTION, AlertKind.DEVICE_ONLINE] * 3
    ids = insert_alerts(db, user.org_id, device.device_id, kinds)
    resolved = insert_alerts(
        db, user.org_id, device.device_id, [AlertKind.CAPTURE_FAILED], AlertState.RESOLVED
    )
    with server.client() as client:
        sign_in(client, user.email, user.password)
        seen: list[str] = []
        url = "/alerts?state=open"
        while url:
            page = client.get(url, headers=HTML)
            assert page.status_code == 200
            seen += ALERT_ROW.findall(page.text)
            marker = 'id="next-page" href="'
            url = (
                page.text.split(marker)[1].split('"')[0].replace("&amp;", "&")
                if marker in page.text
                else ""
            )
        detections = client.get("/alerts?kind=detection", headers=HTML)
        only_resolved = client.get("/alerts?state=resolved", headers=HTML)
        unknown_filter = client.get("/alerts?state=bogus&kind=nope", headers=HTML)
        bad_cursor = client.get("/alerts?cursor=garbage", headers=HTML)
        nothing = client.get("/alerts?kind=device_offline", headers=HTML)
    assert seen == ids
    assert ALERT_ROW.findall(detections.text) == ids[1::2][:2]
    assert ALERT_ROW.findall(only_resolved.text) == resolved
    assert unknown_filter.status_code == 200 and len(ALERT_ROW.findall(unknown_filter.text)) == 2
    assert bad_cursor.status_code == 422 and "invalid cursor" in bad_cursor.text
    assert "No alert matches this filter." in nothing.text


def test_operator_acknowledges_and_resolves_through_the_service(
    live_server: LiveServer, factory: Factory, db: sessionmaker[Session]
) -> None:
    operator = factory.user(role=UserRole.OPERATOR)
    device = factory.device(org_id=operator.org_id)
    [alert_id] = insert_alerts(db, operator.org_id, device.device_id, [AlertKind.DEVICE_OFFLINE])
    with live_server.client() as client:
        sign_in(client, operator.email, operator.password)
        page = client.get("/alerts?state=open", headers=HTML)
        assert "data-acknowledge" in page.text and "data-resolve" in page.text
        csrf = csrf_of(client)
        acked = client.post(
            f"/alerts/{alert_id}/acknowledge",
            data={"csrf": csrf, "back": "/alerts?state=open"},
            headers=HTML,
        )
        assert acked.status_code == 303
        assert acked.headers["location"] == "/alerts?state=open&done=acknowledged"
        assert state_of(db, alert_id) is AlertState.ACKNOWLEDGED
        after = client.get(acked.headers["location"], headers=HTML)
        assert "Alert acknowledged." in after.text and alert_id not in after.text
        resolved = client.post(
            f"/alerts/{alert_id}/resolve", data={"csrf": csrf, "back": "//evil.example"}
        )
        assert resolved.headers["location"] == "/alerts?done=resolved"
        again = client.post(f"/alerts/{alert_id}/acknowledge", data={"csrf": csrf}, headers=HTML)
        fetched = client.post(
            f"/alerts/{alert_id}/resolve",
            headers={"X-Requested-With": "fetch", "X-CSRF-Token": csrf},
        )
    assert state_of(db, alert_id) is AlertState.RESOLVED
    assert again.status_code == 409 and "alert is resolved" in again.text and "<html" in again.text
    assert fetched.json() == {"alert_id": alert_id, "state": "resolved"}


def test_viewer_sees_no_buttons_and_forged_posts_are_refused(
    live_server: LiveServer, factory: Factory, db: sessionmaker[Session]
) -> None:
    viewer = factory.user(role=UserRole.VIEWER)
    operator = factory.user(org_id=viewer.org_id, role=UserRole.OPERATOR)
    device = factory.device(org_id=viewer.org_id)
    [alert_id] = insert_alerts(db, viewer.org_id, device.device_id, [AlertKind.DETECTION])
    with live_server.client() as client:
        sign_in(client, viewer.email, viewer.password)
        page = client.get("/alerts", headers=HTML)
        csrf = csrf_of(client)
        as_viewer = client.post(
            f"/alerts/{alert_id}/acknowledge", data={"csrf": csrf}, headers=HTML
        )
    with live_server.client() as client:
        sign_in(client, operator.email, operator.password)
        no_token = client.post(f"/alerts/{alert_id}/acknowledge", data={}, headers=HTML)
        wrong_token = client.post(
            f"/alerts/{alert_id}/resolve", data={"csrf": "0" * 64}, headers=HTML
        )
    assert alert_id in page.text
    assert "data-acknowledge" not in page.text and "data-resolve" not in page.text
    assert as_viewer.status_code == 403 and "operator role" in as_viewer.text
    assert no_token.status_code == 403 and "another site" in no_token.text
    assert wrong_token.status_code == 403
    assert state_of(db, alert_id) is AlertState.OPEN


def test_another_orgs_alert_is_not_found(
    live_server: LiveServer, factory: Factory, db: sessionmaker[Session]
) -> None:
    user = factory.user(role=UserRole.OPERATOR)
    stranger_device = factory.device()
    [theirs] = insert_alerts(
        db, stranger_device.org_id, stranger_device.device_id, [AlertKind.DETECTION]
    )
    with live_server.client() as client:
        sign_in(client, user.email, user.password)
        csrf = csrf_of(client)
        page = client.get("/alerts", headers=HTML)
        post = client.post(f"/alerts/{theirs}/acknowledge", data={"csrf": csrf}, headers=HTML)
        malformed = client.post("/alerts/nonsense/resolve", data={"csrf": csrf}, headers=HTML)
        rows = client.get(f"/console/alerts/rows?ids={theirs}")
    assert theirs not in page.text
    assert post.status_code == 404 and "alert not found" in post.text
    assert "Traceback" not in post.text
    assert malformed.status_code == 404
    assert theirs not in rows.text
    assert state_of(db, theirs) is AlertState.OPEN


def test_rows_fragment_keeps_only_alerts_passing_the_filter(
    live_server: LiveServer, factory: Factory, db: sessionmaker[Session]
) -> None:
    user = factory.user()
    device = factory.device(org_id=user.org_id)
    opened = insert_alerts(db, user.org_id, device.device_id, [AlertKind.DETECTION])
    done = insert_alerts(
        db, user.org_id, device.device_id, [AlertKind.DETECTION], AlertState.ACKNOWLEDGED
    )
    with live_server.client() as client:
        sign_in(client, user.email, user.password)
        both = client.get(f"/console/alerts/rows?ids={opened[0]},{done[0]},junk")
        open_only = client.get(f"/console/alerts/rows?ids={opened[0]},{done[0]}&state=open")
    assert set(ALERT_ROW.findall(both.text)) == {opened[0], done[0]}
    assert ALERT_ROW.findall(open_only.text) == opened
    assert 'name="back" value="/alerts?state=open"' in open_only.text
