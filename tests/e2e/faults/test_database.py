"""Database faults under a running cloud: the LISTEN connection's backend terminated, and the
cloud <-> PostgreSQL TCP link cut for 10 s through the fault proxy."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from cloud.hub.listener import BACKOFF_MAX, LISTENER_APPLICATION_NAME
from cloud.models import TriggerStatus
from tests.e2e.conftest import AgentProcess
from tests.e2e.faults.conftest import (
    INTERVAL,
    MARGIN,
    Scene,
    Sessions,
    make_scene,
    measure,
    start_agent,
)
from tests.support.db_proxy import proxy_to_database
from tests.support.factories import Factory
from tests.support.fault_proxy import FaultProxy
from tests.support.waiting import wait_until

TRIGGERS_AFTER = 3
DB_CUT = 10.0  # seconds the cloud <-> PostgreSQL link stays down
PROBE_EVERY = 0.5  # seconds between API calls while the link is down (a pace, not a wait)
# The cloud's connect and statement timeouts: what bounds a request on a blackholed link.
DB_TIMEOUT = 5.0
DB_ENV = {
    "VISANT_DB_CONNECT_TIMEOUT_SECONDS": str(DB_TIMEOUT),
    "VISANT_DB_COMMAND_TIMEOUT_SECONDS": str(DB_TIMEOUT),
}
# A request waits for a connection and then its statements: a few timeouts at most.
ANSWER_LIMIT = 4 * DB_TIMEOUT + MARGIN


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


@pytest.fixture
def db_link(database_url: str) -> Iterator[tuple[FaultProxy, str]]:
    """A fault proxy in front of the test PostgreSQL, and the URL that reaches it over TCP."""
    proxy, url = proxy_to_database(database_url)
    yield proxy, url
    proxy.close()


@pytest.fixture
def db_scene(
    db: Sessions,
    factory: Factory,
    tmp_path: Path,
    proxy_factory: Callable[[int], FaultProxy],
    db_link: tuple[FaultProxy, str],
) -> Iterator[Scene]:
    """The scene with `python -m cloud` reaching PostgreSQL through the proxy (the test's own
    sessions go straight to it)."""
    scene = make_scene(db, factory, tmp_path, proxy_factory, db_link[1], DB_ENV)
    yield scene
    scene.cloud.stop()


def _probe(scene: Scene) -> tuple[int, int]:
    """A manual trigger and a `connected` read: their status codes (503 checked for shape)."""
    responses = [
        httpx.post(
            f"{scene.cloud.url}/v1/devices/{scene.device.device_id}/trigger",
            json={"label": "during db fault"},
            headers=scene.owner.headers,
            timeout=ANSWER_LIMIT,
        ),
        httpx.get(
            f"{scene.cloud.url}/v1/devices/connected",
            headers=scene.owner.headers,
            timeout=ANSWER_LIMIT,
        ),
    ]
    for response in responses:
        if response.status_code == 503:
            assert response.json() == {"detail": "database unavailable"}, response.text
            assert response.headers["Retry-After"].isdigit()
    return responses[0].status_code, responses[1].status_code


def _database_fault_loses_no_trigger(
    scene: Scene, link: FaultProxy, agent: AgentProcess, fault: str
) -> str:
    """Hold ``fault`` on the cloud <-> PostgreSQL link for DB_CUT s while probing the API,
    restore it, check recovery and the closing accounting; return the figures to print."""
    wait_until(lambda: scene.executed() >= 1, 4 * INTERVAL + MARGIN, lambda: agent.output)
    (listener,) = _listener_pids(scene)
    before = scene.trigger(f"before db {fault}")
    assert before.status_code == 200, before.text
    began = time.monotonic()
    if fault == "cut":
        link.refuse()
        link.cut()
    else:
        link.blackhole()
    answers: list[tuple[int, int]] = []
    slowest = 0.0  # seconds: the longest a probe waited for its answers
    while time.monotonic() - began < DB_CUT:
        sent_at = time.monotonic()
        answers.append(_probe(scene))
        slowest = max(slowest, time.monotonic() - sent_at)
        time.sleep(PROBE_EVERY)
    assert all(code in (200, 503) for pair in answers for code in pair), answers
    assert any(code == 503 for code, _ in answers), f"no 503 during the {fault}: {answers}"
    link.heal()
    healed_at = time.monotonic()
    # The listener reconnects within its backoff ceiling and replays what it may have missed.
    listening = measure(
        lambda: len(pids := _listener_pids(scene)) == 1 and pids != [listener],
        BACKOFF_MAX + DB_TIMEOUT + MARGIN,
        scene.log.read_text,
    )
    wait_until(lambda: _probe(scene) == (200, 200), MARGIN, scene.log.read_text)
    api_back = time.monotonic() - healed_at
    after = [scene.trigger(f"after-db-{fault}-{index}") for index in range(TRIGGERS_AFTER)]
    assert all(response.status_code == 200 for response in after), [r.text for r in after]
    # `sent` comes back only through NOTIFY on the listener: it listens again.
    assert after[-1].json()["status"] == TriggerStatus.SENT.value, after[-1].text
    assert agent.output.count("command stream connected") == 1, "the idle stream was cut too"
    by_status = scene.assert_accounted(agent)
    assert by_status["failed"] == 0, by_status
    refused = sum(code == 503 for code, _ in answers)
    return (
        f"database link {fault} {DB_CUT:.0f}s: {refused} of {len(answers)} triggers answered "
        f"503 (slowest answer {slowest:.1f}s), none 500; API answering 200 {api_back:.1f}s "
        f"after the link returned, LISTEN back {listening:.1f}s after it; {by_status}"
    )


@pytest.mark.slow
def test_database_link_cut_for_10s_answers_503_and_loses_no_trigger(
    db_scene: Scene,
    db_link: tuple[FaultProxy, str],
    agents: Callable[..., AgentProcess],
    scene_jpeg: Path,
) -> None:
    agent = start_agent(agents, db_scene, scene_jpeg)
    print("\n" + _database_fault_loses_no_trigger(db_scene, db_link[0], agent, "cut"))


@pytest.mark.slow
def test_database_link_blackholed_for_10s_answers_503_and_loses_no_trigger(
    db_scene: Scene,
    db_link: tuple[FaultProxy, str],
    agents: Callable[..., AgentProcess],
    scene_jpeg: Path,
) -> None:
    # Nothing comes back on the pooled connections: only the statement timeout ends a request.
    agent = start_agent(agents, db_scene, scene_jpeg)
    print("\n" + _database_fault_loses_no_trigger(db_scene, db_link[0], agent, "blackhole"))
