"""Behind a proxy that buffers (or refuses) the SSE stream, the agent long-polls instead and
every trigger is still executed exactly once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from cloud.models import TriggerStatus
from tests.e2e.conftest import AgentProcess, BufferingProxy
from tests.e2e.test_agent_e2e import captures_for, trigger, trigger_status
from tests.support.factories import DeviceWithKey, Factory, UserWithToken
from tests.support.live_server import LiveServer
from tests.support.waiting import wait_until

TRIGGERS = 3
EXECUTE_WAIT = 40.0  # seconds for every trigger, polls included, on a loaded machine
SWITCH_LINE = "switching to long-poll"
RETRY_LINE = "trying the SSE command stream again"


@pytest.fixture
def owner(factory: Factory) -> UserWithToken:
    return factory.user()


@pytest.fixture
def device(factory: Factory, owner: UserWithToken) -> DeviceWithKey:
    return factory.device(org_id=owner.org_id)


@pytest.mark.parametrize("refuse_streams", [False, True], ids=["buffered", "refused"])
def test_every_trigger_executed_through_long_poll_when_stream_unusable(
    refuse_streams: bool,
    live_server: LiveServer,
    owner: UserWithToken,
    device: DeviceWithKey,
    agents: Callable[..., AgentProcess],
    scene_jpeg: Path,
    db: sessionmaker[Session],
) -> None:
    proxy = BufferingProxy(live_server.port, refuse_streams=refuse_streams)
    try:
        agent = agents(proxy.url, device.device_id, device.key, scene_jpeg).start(
            "--stream-first-byte-timeout",
            "2",
            "--stream-failures-before-poll",
            "2",
            "--sse-retry-interval",
            "600",
        )
        agent.wait_for_log(SWITCH_LINE, EXECUTE_WAIT)
        triggers = [trigger(live_server.url, owner, device, f"poll-{n}") for n in range(TRIGGERS)]
        wait_until(
            lambda: all(trigger_status(db, t) == TriggerStatus.EXECUTED for t in triggers),
            EXECUTE_WAIT,
            lambda: agent.output,
        )
        assert sorted(c.trigger_id for c in captures_for(db, device)) == sorted(triggers)
        assert agent.output.count(SWITCH_LINE) == 1
        reason = "failed 2 times in a row" if refuse_streams else "no byte within 2s"
        assert reason in agent.output
        assert any("/commands/poll" in line for line in proxy.requests)
    finally:
        proxy.close()


def test_stream_is_tried_again_after_the_retry_interval_and_each_switch_logged_once(
    live_server: LiveServer,
    device: DeviceWithKey,
    agents: Callable[..., AgentProcess],
    scene_jpeg: Path,
) -> None:
    proxy = BufferingProxy(live_server.port)
    try:
        agent = agents(proxy.url, device.device_id, device.key, scene_jpeg).start(
            "--stream-first-byte-timeout", "1", "--sse-retry-interval", "2"
        )
        agent.wait_for_log(RETRY_LINE, EXECUTE_WAIT)
        agent.wait_for_log(SWITCH_LINE, EXECUTE_WAIT, count=2)
        # One line per switch: as many fallbacks as stream attempts, polls not logged.
        assert agent.output.count(SWITCH_LINE) <= agent.output.count(RETRY_LINE) + 1
    finally:
        proxy.close()
