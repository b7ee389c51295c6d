"""Processes killed with SIGKILL: an agent with a full spool while the cloud is down."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa

from cloud.models import Capture
from tests.e2e.conftest import AgentProcess
from tests.e2e.faults.conftest import (
    DRAIN_DEADLINE,
    MARGIN,
    RECONNECT_DEADLINE,
    STREAM_TIMEOUT,
    UPLOAD,
    Scene,
    measure,
    start_agent,
)
from tests.support.factories import Factory
from tests.support.waiting import wait_until

SPOOLED = 50  # captures waiting in the spool when the agent is killed
CAPTURE_DEADLINE = 2.0  # seconds per capture (grab, HOG detector, encode) on a loaded machine


@pytest.mark.slow
def test_agent_killed_with_50_spooled_and_cloud_down_delivers_all_once_oldest_first(
    scene: Scene, agents: Callable[..., AgentProcess], scene_jpeg: Path
) -> None:
    scene.stop_schedule()  # manual triggers only: the order below is theirs
    agent = start_agent(agents, scene, scene_jpeg)
    scene.proxy.cut_requests(UPLOAD, fraction=0.0)  # every upload dies after its head
    trigger_ids = []
    for index in range(SPOOLED):
        response = scene.trigger(f"k{index}")
        assert response.status_code == 200, response.text
        trigger_ids.append(response.json()["trigger_id"])
    wait_until(
        lambda: agent.spooled() == SPOOLED,
        SPOOLED * CAPTURE_DEADLINE + MARGIN,
        lambda: agent.output,
    )
    agent.kill()
    before_restart = len(agent.output)
    scene.cloud.kill()
    scene.cloud.stop()
    scene.proxy.heal()
    scene.restart_cloud()
    agent.start("--stream-timeout", str(STREAM_TIMEOUT))
    delivered = measure(
        lambda: agent.spooled() == 0, RECONNECT_DEADLINE + DRAIN_DEADLINE, lambda: agent.output
    )
    with scene.db() as session:
        received = session.scalars(
            sa.select(Capture.trigger_id)
            .where(Capture.device_id == scene.device.device_id)
            .order_by(Capture.received_at, Capture.record_id)
        ).all()
    assert list(received) == trigger_ids, "not delivered once each, oldest first"
    # Redelivered after the restart, never captured again (a capture's log line follows its
    # upload attempt, so the kill may have come before it: the spool is the record).
    assert "capture trigger=" not in agent.output[before_restart:], agent.output
    by_status = scene.assert_accounted(agent)
    assert by_status["executed"] == SPOOLED and by_status["refused_late"] == 0, by_status
    print(f"\n{SPOOLED} spooled delivered {delivered:.1f}s after the restarts; {by_status}")


AGENTS = 4  # devices uploading at once
PER_AGENT = 5  # spooled captures each: 20 uploads in flight across the link
SLOW_LINK = 16 * 1024  # bytes per second: the uploads are still in flight at the kill


@pytest.mark.slow
def test_server_killed_during_parallel_uploads_every_spooled_capture_is_delivered_once(
    scene: Scene, agents: Callable[..., AgentProcess], scene_jpeg: Path, factory: Factory
) -> None:
    scene.stop_schedule()
    scenes = [scene] + [
        replace(scene, device=factory.device(org_id=scene.owner.org_id)) for _ in range(AGENTS - 1)
    ]
    fleet = []
    for index, member in enumerate(scenes):
        agent = agents(
            scene.proxy.url, member.device.device_id, member.device.key, scene_jpeg, f"a{index}"
        )
        fleet.append(agent.start("--stream-timeout", str(STREAM_TIMEOUT)))
    for member, agent in zip(scenes, fleet, strict=True):
        wait_until(member.connected, 30, lambda agent=agent: agent.output)
    scene.proxy.cut_requests(UPLOAD, fraction=0.0)
    for member in scenes:
        for index in range(PER_AGENT):
            assert member.trigger(f"p{index}").status_code == 200
    spooled = lambda: sum(agent.spooled() for agent in fleet)  # noqa: E731
    outputs = lambda: "\n".join(agent.output for agent in fleet)  # noqa: E731
    total = AGENTS * PER_AGENT
    wait_until(lambda: spooled() == total, total * CAPTURE_DEADLINE + MARGIN, outputs)
    scene.proxy.heal()
    scene.proxy.bandwidth(SLOW_LINK)
    scene.proxy.cut()  # each agent's stream reconnects, which wakes its spool drain at once
    # Killed once the first upload is stored: the others, and its answer, are on the wire.
    wait_until(lambda: sum(m.executed() for m in scenes) >= 1, RECONNECT_DEADLINE, outputs)
    scene.cloud.kill()
    in_spools = spooled()
    scene.cloud.stop()
    scene.proxy.heal()
    scene.restart_cloud()
    delivered = measure(
        lambda: spooled() == 0,
        RECONNECT_DEADLINE + DRAIN_DEADLINE,
        lambda: "\n".join(a.output for a in fleet),
    )
    results = [member.assert_accounted(agent) for member, agent in zip(scenes, fleet, strict=True)]
    for by_status in results:
        assert by_status["executed"] == PER_AGENT and by_status["refused_late"] == 0, results
    print(
        f"\nserver SIGKILLed with {in_spools} of {total} captures still spooled; "
        f"all delivered once {delivered:.1f}s after the restart"
    )
