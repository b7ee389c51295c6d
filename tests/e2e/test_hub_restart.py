"""`python -m cloud` killed with SIGKILL and restarted: presence drops, nothing is lost."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from cloud.models import Trigger, TriggerStatus
from tests.support.cloud_process import CloudProcess
from tests.support.factories import Factory
from tests.support.live_server import LiveServer
from tests.support.streams import StreamReader
from tests.support.waiting import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0  # seconds
KEEPALIVE = 1.0  # seconds


@pytest.fixture
def cloud_processes(database_url: str, tmp_path: Path) -> Iterator[list[CloudProcess]]:
    started: list[CloudProcess] = []
    yield started
    for process in started:
        process.stop()


def _connected(server: LiveServer, headers: dict[str, str]) -> list[str]:
    with server.client() as client:
        devices = client.get("/v1/devices/connected", headers=headers).json()["devices"]
    return [d["device_id"] for d in devices]


def test_sigkilled_server_restarts_delivers_pending_triggers_and_stops_on_ctrl_c(
    database_url: str,
    tmp_path: Path,
    cloud_processes: list[CloudProcess],
    live_server: LiveServer,
    factory: Factory,
    db: sessionmaker[Session],
) -> None:
    user = factory.user()
    device = factory.device(org_id=user.org_id, reported_config_version=1)
    port = free_port()
    cloud_processes.append(CloudProcess(database_url, port, tmp_path / "cloud.log"))
    reader = StreamReader(cloud_processes[0].url, device.device_id, device.key).start()
    assert _connected(live_server, user.headers) == [device.device_id]

    cloud_processes[0].kill()
    assert reader.ended.wait(5), "stream survived its server"
    began = time.monotonic()
    while _connected(live_server, user.headers):
        assert time.monotonic() - began < 3 * KEEPALIVE + 1, "dead instance's device still listed"
        time.sleep(0.1)

    with live_server.client() as client:
        response = client.post(
            f"/v1/devices/{device.device_id}/trigger", json={}, headers=user.headers
        )
    assert response.json()["status"] == "pending"
    trigger_id = response.json()["trigger_id"]

    cloud_processes.append(CloudProcess(database_url, port, tmp_path / "cloud.log"))
    again = StreamReader(cloud_processes[1].url, device.device_id, device.key).start()
    try:
        assert again.next().id == trigger_id
        assert _connected(live_server, user.headers) == [device.device_id]
        deadline = time.monotonic() + 5
        while True:
            with db() as session:
                trigger = session.get(Trigger, trigger_id)
                assert trigger is not None
                if trigger.status == TriggerStatus.SENT:
                    break
            assert time.monotonic() < deadline, "trigger never marked sent"
            time.sleep(0.05)
        # Ctrl-C with a stream open: the device is told, the process exits promptly.
        began = time.monotonic()
        cloud_processes[1].process.send_signal(signal.SIGINT)
        assert cloud_processes[1].process.wait(timeout=10) == 0
        assert time.monotonic() - began < 5
        assert again.next().data == {"reason": "server shutting down"}
    finally:
        again.close()
        reader.close()
