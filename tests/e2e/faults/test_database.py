"""Database faults under a running cloud: the LISTEN connection's backend terminated."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from cloud.hub.listener import BACKOFF_MAX, LISTENER_APPLICATION_NAME
from cloud.models import TriggerStatus
from tests.e2e.conftest import AgentProcess
from tests.e2e.faults.conftest import INTERVAL, MARGIN, Scene, measure, start_agent
from tests.support.waiting import wait_until

TRIGGERS_AFTER = 3


def _listener_pids(scene: Scene) -> list[int]:
    with scene.db() as session:
        query = "SELECT pid FROM pg_stat_activity WHERE application_name = :name"
        return list(session.scalars(sa.text(query), {"name": LISTENER_APPLICATION_NAME}))


def _terminate(scene: Scene, pid: int) -> None:
    with scene.db() as session:
        assert session.scalar(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


def test_listener_backend_terminated_comes_back_and_no_trigger_is_lost(
    scene: Scene, agents: Callable[..., AgentProcess], scene_jpeg: Path
) -> None:
    agent = start_agent(agents, scene, scene_jpeg)
    wait_until(lambda: scene.executed() >= 1, 4 * INTERVAL + MARGIN, lambda: agent.output)
    (pid,) = _listener_pids(scene)
    _terminate(scene, pid)
    # The listener reconnects within its backoff ceiling; until then triggers wait in PostgreSQL.
    back = measure(
        lambda: len(pids := _listener_pids(scene)) == 1 and pids != [pid],
        BACKOFF_MAX + MARGIN,
        scene.log.read_text,
    )
    answers = []
    for index in range(TRIGGERS_AFTER):
        response = scene.trigger(f"after-terminate-{index}")
        assert response.status_code == 200, response.text
        answers.append(response.json()["status"])
    # `sent` comes back only through NOTIFY on the listener: it listens again.
    assert answers[-1] == TriggerStatus.SENT.value, answers
    by_status = scene.assert_accounted(agent)
    assert by_status["failed"] == 0, by_status
    print(
        f"\nlistener backend terminated: LISTEN back in {back:.1f}s; trigger answers "
        f"{answers}; {by_status}"
    )
