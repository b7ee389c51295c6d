"""Alerts, channels and users pages in a real Chromium against a real server and database."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from cloud.models import Alert, AlertState, UserRole
from tests.console.browser import UI_TIMEOUT_MS, browser, needs_chromium, screenshot
from tests.console.test_console_alerts import RULES, upload_detection
from tests.support.factories import Factory
from tests.support.live_server import LiveServer

__all__ = ["browser"]  # the fixture, imported for the tests below
pytestmark = needs_chromium


def open_signed_in(browser, server: LiveServer, email: str, password: str, path: str):  # noqa: ANN001, ANN201
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    page.goto(server.url + path)
    page.wait_for_url("**/sign-in?next=*")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"**{path}")
    return page


def test_an_alert_appears_live_and_is_acknowledged_by_a_click(
    browser,  # noqa: ANN001
    live_server: LiveServer,
    factory: Factory,
    db: sessionmaker[Session],
) -> None:
    operator = factory.user(role=UserRole.OPERATOR)
    device = factory.device(org_id=operator.org_id, device_id="GATE_CAM", config=RULES)
    page = open_signed_in(browser, live_server, operator.email, operator.password, "/alerts")
    assert page.locator("#alerts-empty").is_visible()
    page.wait_for_selector("#live-state[data-state=live]")

    with live_server.client() as client:
        capture_id = upload_detection(client, device.headers, device.device_id)
    row = page.locator("[data-alert]").first
    row.wait_for()
    assert row.get_attribute("data-state") == "open"
    assert "GATE_CAM" in row.inner_text() and "Door" in row.inner_text()
    assert f"/console/captures/{capture_id}/image" in (
        row.locator("img").get_attribute("src") or ""
    )
    assert page.locator("#alerts-empty").is_hidden()
    screenshot(page, "alerts")

    row.locator("[data-acknowledge]").click()
    page.locator("p.notice:text('Alert acknowledged.')").wait_for()
    row = page.locator("[data-alert]").first
    assert row.get_attribute("data-state") == "acknowledged"
    assert row.locator("[data-acknowledge]").count() == 0
    with db() as session:
        state = session.scalar(sa.select(Alert.state).where(Alert.capture_id == capture_id))
    assert state is AlertState.ACKNOWLEDGED


def test_admin_creates_a_webhook_channel_and_sees_its_secret_once(
    browser,  # noqa: ANN001
    start_server,  # noqa: ANN001
    factory: Factory,
) -> None:
    server = start_server(allow_private_webhooks=True)
    admin = factory.user()
    page = open_signed_in(browser, server, admin.email, admin.password, "/channels")
    page.check("input[name=kind][value=webhook]")
    page.fill("#new-channel input[name=url]", "http://127.0.0.1:9/hook")
    page.fill("#new-channel input[name=name]", "Night shift")
    page.uncheck("#new-channel input[name=alert_kinds][value=device_online]")
    page.click("#create-channel")
    secret = page.locator("#webhook-secret").inner_text()
    assert secret.startswith("whsec_")
    page.click("text=Open the channel")
    page.locator("h1:text('Night shift')").wait_for()
    assert secret not in page.content()
    assert page.locator("input[name=alert_kinds][value=device_online]").is_checked() is False
    page.goto(server.url + "/channels")
    assert "Night shift" in page.locator("#channels").inner_text()
    assert secret not in page.content()
    screenshot(page, "channels")

    # A refused URL is a message on the page, with the form as it was typed.
    page.fill("#new-channel input[name=name]", "Bad")
    page.fill("#new-channel input[name=url]", "ftp://example.test/x")
    page.check("input[name=kind][value=webhook]")
    page.click("#create-channel")
    page.locator("p.problem:text('must start with http')").wait_for()
    assert page.locator("#new-channel input[name=name]").input_value() == "Bad"


def test_a_viewer_sees_no_buttons_and_cannot_open_admin_pages(
    browser,  # noqa: ANN001
    live_server: LiveServer,
    factory: Factory,
) -> None:
    viewer = factory.user(role=UserRole.VIEWER)
    device = factory.device(org_id=viewer.org_id, config=RULES)
    with live_server.client() as client:
        upload_detection(client, device.headers, device.device_id)
    page = open_signed_in(browser, live_server, viewer.email, viewer.password, "/alerts")
    page.locator("[data-alert]").first.wait_for()
    assert page.locator("[data-acknowledge], [data-resolve]").count() == 0
    assert page.locator("nav a[href='/channels'], nav a[href='/users']").count() == 0
    for path in ("/channels", "/users"):
        response = page.goto(live_server.url + path)
        assert response is not None and response.status == 403
        page.locator("p.problem:text('only admins')").wait_for()
