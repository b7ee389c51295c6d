"""Two cloud instances; the one holding 50 device streams is SIGKILLed behind the proxy."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import AgentProcess
from tests.e2e.faults.conftest import (
    MARGIN,
    RECONNECT_DEADLINE,
    SCENARIO_ENV,
    STREAM_RETRY_MS,
    STREAM_TIMEOUT,
    Scene,
    measure,
)
from tests.support.cloud_process import KEEPALIVE, CloudProcess
from tests.support.factories import Factory
from tests.support.streams import StreamReader
from tests.support.waiting import free_port, wait_until

DEVICES = 50
REAL_AGENTS = 3  # the rest are raw SSE clients


class ReconnectingReader:
    """A raw SSE device that reopens its stream after the server's retry hint, like an agent."""

    def __init__(self, url: str, device_id: str, key: str) -> None:
        self.url, self.device_id, self.key = url, device_id, key
        self.command_ids: set[str] = set()
        self.streams = 0
        self._stop = threading.Event()
        self._reader: StreamReader | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._reader = StreamReader(self.url, self.device_id, self.key).start()
            except AssertionError:
                self._stop.wait(STREAM_RETRY_MS / 1000)  # the reconnect delay, as agents wait
                continue
            self.streams += 1
            with contextlib.suppress(AssertionError):  # the stream ended
                while not self._stop.is_set():
                    try:
                        event = self._reader.next(timeout=STREAM_TIMEOUT)
                    except queue.Empty:
                        continue  # keepalives are not queued: an idle stream is quiet
                    if event.event == "capture":
                        self.command_ids.add(event.id)
            self._reader.close()
            self._stop.wait(STREAM_RETRY_MS / 1000)

    def close(self) -> None:
        self._stop.set()
        if self._reader is not None:
            self._reader.close()
        self._thread.join(STREAM_TIMEOUT + 5)


def _all_connected(scene: Scene, members: list[Scene]) -> bool:
    """One `GET /v1/devices/connected` for the whole org: every member listed."""
    try:
        response = httpx.get(
            f"{scene.cloud.url}/v1/devices/connected", headers=scene.owner.headers, timeout=5
        )
    except httpx.HTTPError:
        return False
    if response.status_code != 200:
        return False
    listed = {device["device_id"] for device in response.json()["devices"]}
    return all(m.device.device_id in listed for m in members)


@pytest.mark.slow
def test_instance_killed_under_50_streams_its_devices_move_and_no_trigger_is_lost(
    scene: Scene,
    agents: Callable[..., AgentProcess],
    scene_jpeg: Path,
    factory: Factory,
    tmp_path: Path,
) -> None:
    scene.stop_schedule()
    other = CloudProcess(scene.database_url, free_port(), tmp_path / "cloud-b.log", SCENARIO_ENV)
    members = [scene] + [
        replace(scene, device=factory.device(org_id=scene.owner.org_id)) for _ in range(DEVICES - 1)
    ]
    fleet = []
    for index, member in enumerate(members[:REAL_AGENTS]):
        device = member.device
        agent = agents(scene.proxy.url, device.device_id, device.key, scene_jpeg, f"a{index}")
        fleet.append(agent.start("--stream-timeout", str(STREAM_TIMEOUT)))
    readers = [
        ReconnectingReader(scene.proxy.url, m.device.device_id, m.device.key)
        for m in members[REAL_AGENTS:]
    ]
    try:
        wait_until(lambda: _all_connected(scene, members), 60, lambda: fleet[0].output)
        scene.cloud.kill()
        scene.proxy.target_port = other.port  # the load balancer's failover
        scene.cloud.stop()
        for member in members:
            member.cloud = other
        # Made while the devices are between instances: pending, delivered on reconnect.
        trigger_ids = {}
        for member in members:
            response = member.trigger("failover")
            assert response.status_code == 200, response.text
            trigger_ids[member.device.device_id] = response.json()["trigger_id"]
        moved = measure(
            lambda: _all_connected(scene, members),
            RECONNECT_DEADLINE + 2 * KEEPALIVE,
            lambda: fleet[0].output,
        )
        for reader in readers:
            wanted = trigger_ids[reader.device_id]
            wait_until(lambda r=reader, w=wanted: w in r.command_ids, MARGIN)
        accounted = [m.assert_accounted(a) for m, a in zip(members, fleet, strict=False)]
        for by_status in accounted:
            assert by_status["executed"] == 1, accounted
    finally:
        for reader in readers:
            reader.close()
    print(
        f"\ninstance SIGKILLed under {DEVICES} streams: all listed on the other instance "
        f"{moved:.1f}s later; every trigger delivered; agents {accounted}"
    )
