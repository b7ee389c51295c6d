"""Faults on the agent <-> cloud link: cut, blackhole, uploads cut mid-body, a slow link."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cloud.core.tcp import USER_TIMEOUT_KEEPALIVES
from tests.e2e.conftest import AgentProcess
from tests.e2e.faults.conftest import (
    DRAIN_DEADLINE,
    INTERVAL,
    MARGIN,
    RECONNECT_DEADLINE,
    STREAM_TIMEOUT,
    UPLOAD,
    Scene,
    measure,
    start_agent,
)
from tests.support.cloud_process import KEEPALIVE
from tests.support.waiting import wait_until

CUT = 20.0  # seconds the link stays down
SKIPPED_SLOTS = 2  # scheduled slots skipped while the server lists the device offline
# The server's TCP aborts a stream whose writes stayed unacknowledged for the user timeout
# (by default the presence window); the proxy's ~1.8 KB window fills first with what the
# server writes: a keepalive every second and a command every slot.
USER_TIMEOUT = KEEPALIVE * USER_TIMEOUT_KEEPALIVES
WINDOW_FILL = 1900 / 100  # seconds: the window over 100 B/s (keepalives, a command each slot)
OFFLINE_DEADLINE = WINDOW_FILL + USER_TIMEOUT + MARGIN
UPLOAD_CUTS = 3  # uploads cut after half their body before the link is restored
SLOW_WINDOW = 3 * INTERVAL + 2  # seconds of a slow link: a few scheduled captures
LATENCY = 0.3  # seconds each way
BANDWIDTH = 64 * 1024  # bytes per second each way


def _held_for(seconds: float, began: float) -> None:
    """Keep a fault on until ``seconds`` after ``began`` (the fault's length, not a condition)."""
    time.sleep(max(0.0, seconds - (time.monotonic() - began)))


@pytest.mark.slow
def test_link_cut_for_20s_during_captures_loses_nothing(
    scene: Scene, agents: Callable[..., AgentProcess], scene_jpeg: Path
) -> None:
    agent = start_agent(agents, scene, scene_jpeg)
    wait_until(lambda: scene.executed() >= 2, 4 * INTERVAL + MARGIN, lambda: agent.output)
    pending = scene.trigger("during cut")  # made while the link goes down
    assert pending.status_code == 200, pending.text
    scene.proxy.refuse()
    cut_at = time.monotonic()
    scene.proxy.cut()
    wait_until(lambda: not scene.connected(), 2 * KEEPALIVE + MARGIN, lambda: agent.output)
    offline_after = time.monotonic() - cut_at
    executed_during = scene.executed()
    _held_for(CUT, cut_at)
    scene.proxy.heal()
    back = measure(scene.connected, RECONNECT_DEADLINE, lambda: agent.output)
    caught_up = measure(
        lambda: scene.executed() > executed_during + 1, DRAIN_DEADLINE, lambda: agent.output
    )
    by_status = scene.assert_accounted(agent)
    print(
        f"\nlink cut {CUT:.0f}s: offline in {offline_after:.1f}s, stream back {back:.1f}s after "
        f"the link, captures flowing {back + caught_up:.1f}s after it; {by_status}"
    )


@pytest.mark.slow
def test_blackholed_link_both_ends_drop_the_stream_and_the_agent_catches_up(
    scene: Scene, agents: Callable[..., AgentProcess], scene_jpeg: Path
) -> None:
    agent = start_agent(agents, scene, scene_jpeg)
    wait_until(lambda: scene.executed() >= 1, 4 * INTERVAL + MARGIN, lambda: agent.output)
    silent_before = agent.output.count("command stream silent")
    scene.proxy.blackhole()
    began = time.monotonic()
    # Nothing reaches the agent, keepalives included: its read timeout ends the stream.
    wait_until(
        lambda: agent.output.count("command stream silent") > silent_before,
        STREAM_TIMEOUT + MARGIN,
        lambda: agent.output,
    )
    agent_detected = time.monotonic() - began
    during = scene.trigger("during blackhole")  # written into the dead stream
    assert during.status_code == 200, during.text
    # Nothing the server writes is acknowledged: once the proxy's small window is full its
    # TCP_USER_TIMEOUT (the presence window by default) aborts the connection, the stream ends.
    wait_until(lambda: not scene.connected(), OFFLINE_DEADLINE, scene.log.read_text)
    server_detected = time.monotonic() - began
    skipped_before = scene.skipped_slots()
    wait_until(
        lambda: scene.skipped_slots() >= skipped_before + SKIPPED_SLOTS,
        (SKIPPED_SLOTS + 1) * INTERVAL + MARGIN,
        lambda: str(scene.statuses()),
    )
    assert not scene.connected(), "the device came back while the link was still dead"
    executed_during = scene.executed()
    scene.proxy.blackhole(False)
    held = time.monotonic() - began
    back = measure(scene.connected, RECONNECT_DEADLINE, lambda: agent.output)
    measure(lambda: scene.executed() > executed_during, DRAIN_DEADLINE, lambda: agent.output)
    by_status = scene.assert_accounted(agent)
    print(
        f"\nblackhole {held:.0f}s: agent read timeout after {agent_detected:.1f}s "
        f"(--stream-timeout {STREAM_TIMEOUT:.0f}), server dropped the stream and listed the "
        f"device offline after {server_detected:.1f}s (TCP_USER_TIMEOUT {USER_TIMEOUT:.0f}s), "
        f"{scene.skipped_slots() - skipped_before}+ slots skipped, stream back {back:.1f}s "
        f"after the link; {by_status}"
    )


def test_uploads_cut_after_half_their_body_are_delivered_once_when_restored(
    scene: Scene, agents: Callable[..., AgentProcess], scene_jpeg: Path
) -> None:
    agent = start_agent(agents, scene, scene_jpeg)
    scene.proxy.cut_requests(UPLOAD, fraction=0.5)
    wait_until(
        lambda: scene.proxy.requests_cut >= UPLOAD_CUTS,
        UPLOAD_CUTS * DRAIN_DEADLINE,
        lambda: agent.output,
    )
    assert agent.spooled() >= 1
    executed_during = scene.executed()
    scene.proxy.heal()
    drained = measure(lambda: agent.spooled() == 0, DRAIN_DEADLINE, lambda: agent.output)
    assert scene.executed() > executed_during
    by_status = scene.assert_accounted(agent)
    print(
        f"\n{scene.proxy.requests_cut} uploads cut at half their body; spool drained "
        f"{drained:.1f}s after the link was restored; {by_status}"
    )


def test_slow_link_300ms_64kbps_still_delivers_captures(
    scene: Scene, agents: Callable[..., AgentProcess], scene_jpeg: Path
) -> None:
    agent = start_agent(agents, scene, scene_jpeg)
    scene.proxy.latency(LATENCY)
    scene.proxy.bandwidth(BANDWIDTH)
    began = time.monotonic()
    executed_before = scene.executed()
    wait_until(
        lambda: scene.executed() >= executed_before + 2,
        SLOW_WINDOW + MARGIN,
        lambda: agent.output,
    )
    first_two = time.monotonic() - began
    _held_for(SLOW_WINDOW, began)
    assert scene.connected()
    scene.proxy.heal()
    by_status = scene.assert_accounted(agent)
    print(
        f"\n{LATENCY * 1000:.0f} ms + {BANDWIDTH // 1024} KB/s: two scheduled captures "
        f"stored {first_two:.1f}s into the slow window; {by_status}"
    )
