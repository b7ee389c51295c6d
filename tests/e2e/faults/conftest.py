"""Fault scenarios: `python -m cloud` on PostgreSQL, an agent behind a fault proxy, and the
closing accounting every scenario ends with (the check_test_results invariants plus counts)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from cloud.models import OPEN_TRIGGER_STATUSES, Capture, Device, Trigger, TriggerStatus
from device.stream import MAX_RECONNECT_DELAY
from device.uploader import RETRY_MAX_DELAY
from scripts.results import collect_results
from tests.e2e.conftest import AgentProcess
from tests.support.cloud_process import KEEPALIVE, CloudProcess
from tests.support.factories import DeviceWithKey, Factory, UserWithToken
from tests.support.fault_proxy import FaultProxy
from tests.support.waiting import free_port, wait_until

Sessions = sessionmaker[Session]
UPLOAD = b"POST /v1/captures"  # an upload's request line, as the proxy sees it
INTERVAL = 2  # seconds between scheduled captures
TRIGGER_TTL = 60  # seconds: scheduled and manual triggers of the scenarios
STREAM_RETRY_MS = 200  # the server's reconnect hint: the base of the agent's backoff
STREAM_TIMEOUT = 3.0  # seconds of silence (keepalive is 1 s) before the agent reconnects
MARGIN = 20.0  # seconds of slack for a loaded 2-core machine
# The agent is back within one capped reconnect delay; its spool within one capped retry.
RECONNECT_DEADLINE = MAX_RECONNECT_DELAY + MARGIN
DRAIN_DEADLINE = RETRY_MAX_DELAY + MARGIN
SCENARIO_ENV = {
    "VISANT_SCHEDULER_ENABLED": "true",
    "VISANT_STREAM_RETRY_MS": str(STREAM_RETRY_MS),
    "VISANT_SCHEDULED_TRIGGER_TTL_SECONDS": str(TRIGGER_TTL),
    "VISANT_MANUAL_TRIGGER_TTL_SECONDS": str(TRIGGER_TTL),
    "VISANT_LOG_LEVEL": "WARNING",
    # Not the limiter under test: retried uploads must not be slowed by 429s.
    "VISANT_UPLOADS_PER_DEVICE_PER_MINUTE": "1000",
}


@dataclass
class Scene:
    """One cloud process, one owner, one scheduled device; agents reach it through ``proxy``."""

    db: Sessions
    database_url: str
    cloud: CloudProcess
    proxy: FaultProxy
    owner: UserWithToken
    device: DeviceWithKey
    log: Path

    def restart_cloud(self) -> None:
        """A new `python -m cloud` on a new port; the proxy sends new connections there."""
        self.cloud = CloudProcess(self.database_url, free_port(), self.log, SCENARIO_ENV)
        self.proxy.target_port = self.cloud.port

    def trigger(self, label: str = "fault") -> httpx.Response:
        return httpx.post(
            f"{self.cloud.url}/v1/devices/{self.device.device_id}/trigger",
            json={"label": label},
            headers=self.owner.headers,
            timeout=15,
        )

    def connected(self) -> bool:
        try:
            response = httpx.get(
                f"{self.cloud.url}/v1/devices/connected", headers=self.owner.headers, timeout=5
            )
        except httpx.HTTPError:
            return False
        return response.status_code == 200 and self.device.device_id in response.text

    def statuses(self) -> dict[str, int]:
        with self.db() as session:
            rows = session.execute(
                sa.select(Trigger.status, sa.func.count())
                .where(Trigger.device_id == self.device.device_id)
                .group_by(Trigger.status)
            )
            return {status.value: count for status, count in rows}

    def executed(self) -> int:
        return self.statuses().get(TriggerStatus.EXECUTED.value, 0)

    def skipped_slots(self) -> int:
        """Scheduled slots the scheduler skipped because the device was offline."""
        with self.db() as session:
            device = session.get(Device, self.device.device_id)
            assert device is not None
            return device.skipped_slots

    def stop_schedule(self) -> None:
        """No more scheduled triggers: the closing accounting waits on a fixed set."""
        with self.db() as session:
            session.execute(
                sa.update(Device)
                .where(Device.device_id == self.device.device_id)
                .values(config={}, next_trigger_at=None)
            )
            session.commit()

    def open_triggers(self) -> int:
        with self.db() as session:
            return (
                session.scalar(
                    sa.select(sa.func.count()).where(
                        Trigger.device_id == self.device.device_id,
                        Trigger.status.in_(OPEN_TRIGGER_STATUSES),
                    )
                )
                or 0
            )

    def assert_accounted(self, *agents: AgentProcess) -> dict[str, int]:
        """Every trigger terminal, each executed one captured once, no spool left, no duplicate."""
        self.stop_schedule()
        describe = lambda: f"{self.statuses()}\n" + "\n".join(a.output for a in agents)  # noqa: E731
        # An open trigger closes by its capture (agents connected) or by the reaper at expiry.
        wait_until(lambda: self.open_triggers() == 0, TRIGGER_TTL + MARGIN, describe)
        for agent in agents:
            wait_until(lambda agent=agent: agent.spooled() == 0, DRAIN_DEADLINE, describe)
        with self.db() as session:
            device = session.get(Device, self.device.device_id)
            assert device is not None
            results = collect_results(session, device, None)
            duplicates = session.execute(
                sa.select(Capture.captured_at, sa.func.count())
                .where(Capture.device_id == self.device.device_id)
                .group_by(Capture.captured_at)
                .having(sa.func.count() > 1)
            ).all()
            captures = session.scalar(
                sa.select(sa.func.count()).where(Capture.device_id == self.device.device_id)
            )
        failed = [check for check in results.checks if not check.ok]
        assert not failed, failed
        by_status = results.triggers_by_status
        total = sum(by_status.values())
        terminal = by_status["executed"] + by_status["failed"] + by_status["expired"]
        assert total == terminal, by_status
        assert not duplicates, f"captures stored twice: {duplicates}"
        assert captures == by_status["executed"], (captures, by_status)  # no event captures here
        for agent in agents:
            assert "Traceback" not in agent.output, agent.output
            # A capture leaves the spool delivered, or refused because its trigger had
            # expired meanwhile (a scheduled trigger lives until the next slot at most).
            for reason in rejected_reasons(agent):
                assert reason.startswith("409 trigger is expired"), reason
        server_log = self.log.read_text()
        assert "Exception in ASGI application" not in server_log, server_log
        late = sum(len(rejected_reasons(agent)) for agent in agents)
        return {**by_status, "refused_late": late}


def rejected_reasons(agent: AgentProcess) -> list[str]:
    """Why the cloud refused each capture the agent moved out of its spool."""
    rejected = agent.spool_dir / "rejected"
    paths = sorted(rejected.glob("*.json")) if rejected.exists() else []
    return [str(json.loads(path.read_text()).get("rejected_reason")) for path in paths]


def make_scene(
    db: Sessions,
    factory: Factory,
    tmp_path: Path,
    proxy: FaultProxy | Callable[[int], FaultProxy],
    cloud_database_url: str,
    env: dict[str, str] | None = None,
) -> Scene:
    """The owner, the scheduled device and `python -m cloud` on ``cloud_database_url``."""
    owner = factory.user()
    device = factory.device(
        org_id=owner.org_id,
        config={"trigger": {"enabled": True, "interval_seconds": INTERVAL}},
        next_trigger_at=datetime.now(UTC),
    )
    log = tmp_path / "cloud.log"
    cloud = CloudProcess(cloud_database_url, free_port(), log, {**SCENARIO_ENV, **(env or {})})
    agent_proxy = proxy if isinstance(proxy, FaultProxy) else proxy(cloud.port)
    agent_proxy.target_port = cloud.port
    return Scene(db, cloud_database_url, cloud, agent_proxy, owner, device, log)


@pytest.fixture
def scene(
    database_url: str,
    db: Sessions,
    factory: Factory,
    tmp_path: Path,
    proxy_factory: Callable[[int], FaultProxy],
) -> Iterator[Scene]:
    scene = make_scene(db, factory, tmp_path, proxy_factory, database_url)
    yield scene
    scene.cloud.stop()


def start_agent(agents: Callable[..., AgentProcess], scene: Scene, image: Path) -> AgentProcess:
    """The scene's agent through its proxy, streaming: returned once `connected` lists it."""
    agent = agents(scene.proxy.url, scene.device.device_id, scene.device.key, image)
    agent.start("--stream-timeout", str(STREAM_TIMEOUT))
    wait_until(scene.connected, 30, lambda: agent.output)
    return agent


def measure(condition: Callable[[], object], deadline: float, describe: Callable[[], str]) -> float:
    """Seconds until ``condition`` holds (fails past ``deadline``): a recovery time to print."""
    began = time.monotonic()
    wait_until(condition, deadline, describe)
    return time.monotonic() - began


assert KEEPALIVE < STREAM_TIMEOUT / 2, "the agent's read timeout must only fire on a dead link"
