"""The real agent process answers health, ping, diagnostics and restart against the real cloud."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import AgentProcess
from tests.support.factories import DeviceWithKey, Factory, UserWithToken
from tests.support.live_server import LiveServer
from tests.support.waiting import wait_until

COMMAND_WAIT = 30.0  # seconds; a loaded 2-core machine starts the agent slowly


@pytest.fixture
def owner(factory: Factory) -> UserWithToken:
    return factory.user()


@pytest.fixture
def device(factory: Factory, owner: UserWithToken) -> DeviceWithKey:
    return factory.device(org_id=owner.org_id)


def poll_for(fetch: Callable[[], Any], timeout: float = COMMAND_WAIT) -> Any:
    """The first truthy value `fetch` returns (wait_until only says that there was one)."""
    found: list[Any] = []
    wait_until(lambda: found.append(fetch()) or found[-1], timeout)
    return found[-1]


def send(server: LiveServer, owner: UserWithToken, device: DeviceWithKey, kind: str) -> str:
    with server.client() as client:
        response = client.post(
            f"/v1/devices/{device.device_id}/commands", json={"type": kind}, headers=owner.headers
        )
    assert response.status_code == 200, response.text
    return response.json()["command_id"]


def finished(server: LiveServer, owner: UserWithToken, command_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        body = httpx.get(
            f"{server.url}/v1/commands/{command_id}", headers=owner.headers, timeout=5
        ).json()
        return body if body["status"] in ("executed", "failed", "expired") else None

    return poll_for(done)


def device_health(server: LiveServer, owner: UserWithToken, device: DeviceWithKey) -> Any:
    response = httpx.get(
        f"{server.url}/v1/devices/{device.device_id}", headers=owner.headers, timeout=5
    )
    return response.json()["health"]


def test_agent_reports_health_answers_ping_and_diagnostics_then_restarts_with_75(
    live_server: LiveServer,
    owner: UserWithToken,
    device: DeviceWithKey,
    agents: Callable[..., AgentProcess],
    scene_jpeg: Path,
) -> None:
    agent = agents(live_server.url, device.device_id, device.key, scene_jpeg).start()
    agent.wait_for_log("command stream connected", COMMAND_WAIT)
    health = poll_for(lambda: device_health(live_server, owner, device))
    assert health["uptime_seconds"] >= 0 and health["spool_depth"] == 0
    assert health["detector"]["backend"] == "opencv" and health["camera"]["state"] in ("idle", "ok")
    assert health["disk_free_bytes"] > 0 and health["reported_at"].endswith("Z")

    ping = finished(live_server, owner, send(live_server, owner, device, "ping"))
    assert ping["status"] == "executed" and ping["result"]["round_trip_ms"] >= 0

    diagnostics = finished(live_server, owner, send(live_server, owner, device, "diagnostics"))
    report = diagnostics["result"]
    assert diagnostics["status"] == "executed"
    assert report["versions"]["agent"] and report["config"]["options"]["device_id"]
    assert isinstance(report["spool"], list)
    assert any("command stream connected" in line for line in report["log"])
    assert device.key not in str(report)  # the key never leaves the box

    restart = send(live_server, owner, device, "restart")
    assert agent.process is not None
    assert agent.process.wait(COMMAND_WAIT) == 75
    assert finished(live_server, owner, restart)["status"] == "executed"
    # Started again (as systemd would), the redelivered restart is not executed twice.
    agent.start()
    agent.wait_for_log("command stream connected", COMMAND_WAIT, count=2)
    ping = finished(live_server, owner, send(live_server, owner, device, "ping"))
    assert ping["status"] == "executed" and agent.process.poll() is None
