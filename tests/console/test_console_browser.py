"""The console in a real Chromium against a real server, database and device agent."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from cloud.models import UserRole
from tests.console.browser import PHONE, UI_TIMEOUT_MS, browser, needs_chromium, screenshot
from tests.e2e.conftest import AgentProcess
from tests.support.captures import capture_metadata, upload_multipart
from tests.support.factories import Factory
from tests.support.live_server import LiveServer

__all__ = ["browser"]  # the fixture, imported for the tests below
pytestmark = needs_chromium
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]
SCHEDULE = {
    "trigger": {
        "enabled": True,
        "interval_seconds": 3600,
        "timezone": "Europe/Berlin",
        "active_hours": [
            {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "18:00"}
        ],
    }
}


@pytest.fixture
def scene(tmp_path: Path) -> Path:
    frame = np.full((360, 480, 3), 60, np.uint8)
    cv2.rectangle(frame, (60, 60), (300, 260), (0, 200, 255), -1)
    cv2.circle(frame, (380, 120), 50, (255, 120, 0), -1)
    path = tmp_path / "scene.jpg"
    assert cv2.imwrite(str(path), frame)
    return path


@pytest.fixture
def agent_of(tmp_path: Path, scene: Path):  # noqa: ANN201
    made: list[AgentProcess] = []

    def start(server: LiveServer, device_id: str, key: str) -> AgentProcess:
        workdir = tmp_path / f"agent-{len(made)}"
        workdir.mkdir()
        agent = AgentProcess(server.url, device_id, key, scene, workdir).start()
        made.append(agent)
        return agent

    yield start
    for agent in made:
        agent.kill()


def sign_in(page, server: LiveServer, email: str, password: str) -> None:  # noqa: ANN001
    page.goto(server.url + "/fleet")
    page.wait_for_url("**/sign-in?next=*")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/fleet")


def test_operator_sees_devices_live_captures_now_draws_a_zone_and_signs_out(
    browser,
    live_server: LiveServer,
    factory: Factory,
    agent_of,  # noqa: ANN001
) -> None:
    user = factory.user(role=UserRole.OPERATOR)
    device = factory.device(org_id=user.org_id, config=SCHEDULE)
    factory.device(org_id=user.org_id)  # a second, never-connected camera
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    sign_in(page, live_server, user.email, user.password)

    tile = page.locator(f'[data-device="{device.device_id}"]')
    assert tile.locator("[data-presence]").inner_text() == "offline"
    assert "every 1 h, Mon-Fri 08:00-18:00 Europe/Berlin" in tile.inner_text()
    page.wait_for_selector("#live-state[data-state=live]")
    agent = agent_of(live_server, device.device_id, device.key)
    tile.locator("[data-presence]:text('online')").wait_for()

    page.click(f'[data-device="{device.device_id}"] h2 a')
    page.wait_for_url(f"**/devices/{device.device_id}")
    page.wait_for_selector("#live-state[data-state=live]")
    assert page.locator("#presence").inner_text() == "online"
    assert page.locator("#gallery figure").count() == 0
    page.click("#capture-now")
    page.locator("#gallery figure").first.wait_for()
    page.locator("#timeline [data-status=executed]").first.wait_for()
    assert "manual" in page.locator("#timeline tbody tr").first.inner_text()
    screenshot(page, "device")

    # The fleet shows the new snapshot too; then a zone is drawn on it on the device page.
    page.goto(live_server.url + "/fleet")
    tile.locator("img[data-thumb]").wait_for()
    assert tile.locator("[data-presence]").inner_text() == "online"
    screenshot(page, "fleet")
    page.goto(live_server.url + f"/devices/{device.device_id}")
    canvas = page.locator("#zone-canvas canvas")
    canvas.wait_for()
    page.click("#add-rule")
    page.fill("#rules [data-rule='0'] input[name=rule-name]", "door")
    page.fill("#rules [data-rule='0'] input[name=rule-labels]", "person, car")
    box = canvas.bounding_box()
    assert box is not None
    for fx, fy in ((0.1, 0.1), (0.6, 0.1), (0.6, 0.7), (0.1, 0.7)):
        canvas.click(position={"x": box["width"] * fx, "y": box["height"] * fy})
    assert page.locator("#rules [data-zone-points='4']").count() == 1
    page.click("#save-rules")
    page.locator("#flash:text('Rules saved')").wait_for()
    with live_server.client() as client:
        config = client.get(f"/v1/devices/{device.device_id}", headers=user.headers).json()
    rule = config["config"]["evaluation"]["rules"][0]
    assert rule["name"] == "door" and rule["labels"] == ["person", "car"]
    assert len(rule["zone"]) == 4 and rule["zone"][0] == pytest.approx([0.1, 0.1], abs=0.02)

    # The agent stops: the page sees it go offline without a reload.
    agent.kill()
    page.locator("#presence:text('offline')").wait_for()

    page.click("#sign-out")
    page.wait_for_url("**/sign-in")
    page.goto(live_server.url + f"/devices/{device.device_id}")
    page.wait_for_url("**/sign-in?next=*")
    context.close()


def test_viewer_has_no_buttons_and_another_orgs_device_is_not_found(
    browser,
    live_server: LiveServer,
    factory: Factory,  # noqa: ANN001
) -> None:
    org = factory.org()
    viewer = factory.user(org_id=org, role=UserRole.VIEWER)
    device = factory.device(org_id=org, config=SCHEDULE)
    other = factory.device()
    context = browser.new_context(viewport=PHONE, color_scheme="dark")
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    sign_in(page, live_server, viewer.email, viewer.password)
    screenshot(page, "fleet-phone-dark")
    page.goto(live_server.url + f"/devices/{device.device_id}")
    page.wait_for_selector("#status-panel")
    for button in ("#capture-now", "#suspend", "#rotate-key", "#delete-device", "#save-rules"):
        assert page.locator(button).count() == 0
    # A forged request with the session's own CSRF token is still refused by role.
    status = page.evaluate(
        """async (id) => (await fetch('/console/devices/' + id + '/capture', {method: 'POST',
            headers: {'X-Requested-With': 'fetch', 'X-CSRF-Token': visant.csrf()}})).status""",
        device.device_id,
    )
    assert status == 403
    response = page.goto(live_server.url + f"/devices/{other.device_id}")
    assert response is not None and response.status == 404
    assert "no such device in your organisation" in page.inner_text("main")
    context.close()


def _scene_jpeg() -> bytes:
    frame = np.full((360, 480, 3), 90, np.uint8)
    cv2.rectangle(frame, (0, 250), (480, 360), (70, 110, 70), -1)
    cv2.rectangle(frame, (200, 90), (260, 300), (40, 40, 200), -1)  # the "person"
    cv2.circle(frame, (230, 70), 22, (160, 190, 230), -1)
    ok, encoded = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return encoded.tobytes()


def test_captures_arrive_live_with_boxes_and_the_rule_that_alerted_and_schedule_is_validated(
    browser,
    live_server: LiveServer,
    factory: Factory,  # noqa: ANN001
) -> None:
    user = factory.user(role=UserRole.OPERATOR)
    zone = [[0.3, 0.1], [0.7, 0.1], [0.7, 0.9], [0.3, 0.9]]
    config = {
        **SCHEDULE,
        "evaluation": {"rules": [{"name": "door", "labels": ["person"], "zone": zone}]},
    }
    device = factory.device(org_id=user.org_id, config=config)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    sign_in(page, live_server, user.email, user.password)
    page.wait_for_selector("#live-state[data-state=live]")
    tile = page.locator(f'[data-device="{device.device_id}"]')
    assert tile.locator("img[data-thumb]").count() == 0

    detections = [
        {"label": "person", "confidence": 0.91, "box": [196, 44, 264, 302]},
        {"label": "car", "confidence": 0.55, "box": [10, 260, 150, 350]},
    ]
    metadata = capture_metadata(device.device_id, detections=detections)
    with live_server.client() as client:
        stored = upload_multipart(client, device.headers, metadata, _scene_jpeg())
    assert stored.status_code == 201, stored.text
    record_id = stored.json()["record_id"]
    tile.locator(f"img[src='/console/captures/{record_id}/image']").wait_for()

    page.goto(live_server.url + f"/devices/{device.device_id}")
    shot = page.locator(f"#gallery [data-capture='{record_id}']")
    shot.wait_for()
    assert shot.locator("rect.box").count() == 2
    assert shot.locator("polygon.zone").count() == 1
    assert "alert: door" in shot.inner_text()
    assert "person 91%" in shot.locator("svg").inner_html()
    screenshot(page, "device-detections")

    # The schedule editor: refused with the API's own message, then saved.
    page.select_option("#schedule-mode", "interval")
    page.fill("input[name=interval_value]", "5")
    page.select_option("select[name=interval_unit]", "min")
    page.fill("#timezone", "Mars/Olympus_Mons")
    page.click("#save-schedule")
    page.locator(".problem:text('unknown time zone')").wait_for()
    assert page.locator("input[name=interval_value]").input_value() == "5"
    page.fill("#timezone", "Europe/Berlin")
    page.click("#save-schedule")
    page.locator(".notice:text('Schedule saved')").wait_for()
    assert "every 5 min, Mon-Fri 08:00-18:00 Europe/Berlin" in page.inner_text("#schedule-words")
    with live_server.client() as client:
        saved = client.get(f"/v1/devices/{device.device_id}", headers=user.headers).json()
    assert saved["config"]["trigger"]["interval_seconds"] == 300
    assert saved["config"]["trigger"]["timezone"] == "Europe/Berlin"
    assert saved["config"]["evaluation"]["rules"][0]["name"] == "door"  # other sections kept
    context.close()
