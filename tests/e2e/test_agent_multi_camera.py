"""One agent process serving several cameras from a config file, one of them unreadable."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from cloud.models import Capture, Trigger, TriggerStatus
from cloud.scheduling.slots import first_slot
from tests.e2e.conftest import AgentProcess
from tests.support.factories import Factory
from tests.support.waiting import wait_until

SCHEDULE = {"trigger": {"enabled": True, "interval_seconds": 1}}
CAPTURE_WAIT = 60.0  # seconds for two scheduled captures per camera on a loaded machine


def _count(db: sessionmaker[Session], model: type, device_id: str, *where: object) -> int:
    with db() as session:
        query = sa.select(sa.func.count()).select_from(model).where(model.device_id == device_id)
        return int(session.scalar(query.where(*where)) or 0)


def test_two_cameras_capture_on_schedule_while_a_third_source_is_missing(
    start_server: Callable[..., object],
    factory: Factory,
    db: sessionmaker[Session],
    agents: Callable[..., AgentProcess],
    scene_jpeg: Path,
    tmp_path: Path,
) -> None:
    server = start_server(scheduler_enabled=True, scheduler_tick_seconds=0.2)
    owner = factory.user()
    start = first_slot(SCHEDULE, datetime.now(UTC))
    cameras = [
        factory.device(org_id=owner.org_id, config=SCHEDULE, next_trigger_at=start)
        for _ in range(3)
    ]
    key_file = tmp_path / "second.key"
    key_file.write_text(cameras[1].key + "\n")
    config = tmp_path / "agent.toml"
    config.write_text(
        "# two good cameras and one whose file is missing\n"
        "health_interval_seconds = 1\n"
        f'[[cameras]]\ndevice_id = "{cameras[0].device_id}"\nkey = "{cameras[0].key}"\n'
        f'source = "{scene_jpeg}"\nresolution = "160x120"\n'
        f'[[cameras]]\ndevice_id = "{cameras[1].device_id}"\nkey_file = "{key_file}"\n'
        f'source = "{scene_jpeg}"\n'
        f'[[cameras]]\ndevice_id = "{cameras[2].device_id}"\nkey = "{cameras[2].key}"\n'
        f'source = "{tmp_path / "missing.jpg"}"\n'
    )
    agent = agents(server.url, cameras[0].device_id, "unused", scene_jpeg).start(
        "--config", str(config)
    )

    def progress() -> str:
        counts = [_count(db, Capture, c.device_id) for c in cameras]
        return f"captures per camera {counts}\n{agent.output}"

    wait_until(
        lambda: (
            all(_count(db, Capture, c.device_id) >= 2 for c in cameras[:2])
            and _count(db, Trigger, cameras[2].device_id, Trigger.status == TriggerStatus.FAILED)
            >= 1
        ),
        CAPTURE_WAIT,
        progress,
    )
    assert agent.process is not None and agent.process.poll() is None
    assert _count(db, Capture, cameras[2].device_id) == 0
    with db() as session:
        error = session.scalar(
            sa.select(Trigger.error).where(
                Trigger.device_id == cameras[2].device_id, Trigger.status == TriggerStatus.FAILED
            )
        )
        small = session.scalar(
            sa.select(Capture.width).where(Capture.device_id == cameras[0].device_id).limit(1)
        )
    assert "not found" in (error or "")
    assert small == 160  # the file's per-camera resolution
    health = httpx.get(
        f"{server.url}/v1/devices/{cameras[2].device_id}", headers=owner.headers, timeout=5
    ).json()["health"]
    assert health["camera"]["state"] == "error", json.dumps(health)
    spools = sorted(p.parent.name for p in agent.state_dir.glob("*/spool"))
    assert spools == sorted(c.device_id for c in cameras)  # one state dir and spool per camera
