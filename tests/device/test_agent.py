"""The agent in-process: real camera file, real detector interface, real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.agent import EXIT_OK, EXIT_REJECTED, STOP_GRACE, Agent, AgentOptions
from device.camera import Camera, CameraSettings
from device.capture import CapturePipeline
from device.detection import Detection, Detector, DetectorSettings, NullDetector
from device.spool import Spool
from device.state import AgentState
from device.uploader import CloudClient
from tests.device.conftest import DEVICE_ID, DEVICE_KEY, FakeCloud, envelope
from tests.support.waiting import async_wait_until


class PersonEverywhere(Detector):
    """Stands in for a model: reports one person in every frame."""

    name = "stub"

    def detect(self, frame: np.ndarray) -> list[Detection]:
        return [Detection("person", 0.9, (1.0, 2.0, 30.0, 40.0))]


AgentFactory = Callable[..., Agent]


@pytest.fixture
def make_agent(fake_cloud: FakeCloud, tmp_path: Path, scene_image: Path) -> AgentFactory:
    def make(
        detector: Detector | None = None,
        api_key: str = DEVICE_KEY,
        save_dir: Path | None = None,
        **options: object,
    ) -> Agent:
        state = AgentState(tmp_path / "state")
        camera = Camera(str(scene_image), None, CameraSettings(warmup=0))
        settings = DetectorSettings(detector="none")
        return Agent(
            AgentOptions(fake_cloud.url, DEVICE_ID, api_key, reconnect_delay=0.1, **options),  # type: ignore[arg-type]
            CapturePipeline(camera, detector or NullDetector(), save_dir),
            CameraSettings(warmup=0),
            settings,
            settings,
            state,
            Spool(tmp_path / "spool", 50_000_000),
            CloudClient(fake_cloud.url, DEVICE_ID, api_key, 5),
        )

    return make


@contextlib.asynccontextmanager
async def running(agent: Agent) -> AsyncIterator[asyncio.Task[int]]:
    task = asyncio.create_task(agent.run())
    try:
        yield task
    finally:
        agent.stop()
        assert await asyncio.wait_for(task, 10) == EXIT_OK


async def test_capture_command_uploads_a_jpeg_with_detections(
    fake_cloud: FakeCloud,
    make_agent: AgentFactory,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    agent = make_agent(detector=PersonEverywhere(), save_dir=tmp_path / "frames")
    caplog.set_level(logging.INFO, logger="device.outbox")
    async with running(agent):
        fake_cloud.live.put(envelope("trg_1", trigger_label="front door"))
        await async_wait_until(lambda: len(fake_cloud.uploads) == 1)
    upload = fake_cloud.uploads[0]
    frame = cv2.imdecode(np.frombuffer(upload["image"], np.uint8), cv2.IMREAD_COLOR)
    assert frame.shape == (240, 320, 3)
    assert upload["trigger_id"] == "trg_1"
    assert upload["trigger_label"] == "front door"
    assert upload["detections"] == [{"label": "person", "confidence": 0.9, "box": [1, 2, 30, 40]}]
    assert upload["metadata"]["trigger_type"] == "manual"
    assert agent.state.was_executed("trg_1")
    assert len(list((tmp_path / "frames").glob("*_trg_1.jpg"))) == 1
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("capture ")]
    assert len(lines) == 1 and "grab=" in lines[0] and "upload=" in lines[0]


async def test_a_command_already_spooled_is_not_captured_again(
    fake_cloud: FakeCloud, make_agent: AgentFactory
) -> None:
    # As if the agent was killed after spooling the capture but before recording the command.
    agent = make_agent()
    agent.spool.put(b"\xff\xd8spooled\xff\xd9", {"trigger_id": "trg_spooled"}, "trg_spooled")
    async with running(agent):
        fake_cloud.live.put(envelope("trg_spooled"))
        fake_cloud.live.put(envelope("trg_next"))
        await async_wait_until(lambda: len(fake_cloud.uploads) == 2)
    assert sorted(u["trigger_id"] for u in fake_cloud.uploads) == ["trg_next", "trg_spooled"]
    assert agent.state.was_executed("trg_spooled")


async def test_duplicate_delivery_executes_once(
    fake_cloud: FakeCloud, make_agent: AgentFactory
) -> None:
    fake_cloud.on_connect = [envelope("trg_dup")]  # resent on each connect, like open triggers
    async with running(make_agent()):
        await async_wait_until(lambda: len(fake_cloud.uploads) == 1)
        fake_cloud.live.put(envelope("trg_dup"))
        fake_cloud.live.put(("shutdown", "server shutting down"))
        await async_wait_until(lambda: len(fake_cloud.connections) >= 2)
        fake_cloud.live.put(envelope("trg_next"))
        await async_wait_until(lambda: len(fake_cloud.uploads) == 2)
    assert [u["trigger_id"] for u in fake_cloud.uploads] == ["trg_dup", "trg_next"]


async def test_executed_ids_survive_an_agent_restart(
    fake_cloud: FakeCloud, make_agent: AgentFactory
) -> None:
    fake_cloud.on_connect = [envelope("trg_once")]
    async with running(make_agent()):
        await async_wait_until(lambda: len(fake_cloud.uploads) == 1)
    async with running(make_agent()):
        await async_wait_until(lambda: len(fake_cloud.connections) == 2)
        fake_cloud.live.put(envelope("trg_marker"))
        await async_wait_until(lambda: len(fake_cloud.uploads) == 2)
    assert [u["trigger_id"] for u in fake_cloud.uploads] == ["trg_once", "trg_marker"]


async def test_capture_that_cannot_be_taken_reports_the_trigger_failed(
    fake_cloud: FakeCloud, make_agent: AgentFactory, scene_image: Path
) -> None:
    agent = make_agent()
    async with running(agent):
        await async_wait_until(lambda: len(fake_cloud.connections) == 1)
        await asyncio.to_thread(scene_image.unlink)
        fake_cloud.live.put(envelope("trg_dark"))
        await async_wait_until(lambda: len(fake_cloud.failed) == 1)
    trigger_id, reason = fake_cloud.failed[0]
    assert trigger_id == "trg_dark"
    assert "image file not found" in reason
    assert fake_cloud.uploads == []


async def test_upload_failure_spools_and_delivers_later(
    fake_cloud: FakeCloud, make_agent: AgentFactory, tmp_path: Path
) -> None:
    fake_cloud.upload_statuses = [503]
    agent = make_agent()
    async with running(agent):
        fake_cloud.live.put(envelope("trg_retry"))
        await async_wait_until(lambda: len(fake_cloud.uploads) == 1, within=15)
        await async_wait_until(lambda: agent.spool.entries() == [])
    assert fake_cloud.uploads[0]["trigger_id"] == "trg_retry"


async def test_config_is_applied_persisted_and_acknowledged(
    fake_cloud: FakeCloud, make_agent: AgentFactory, tmp_path: Path
) -> None:
    config = {"camera": {"resolution": "160x120", "warmup": 1}, "trigger": {"enabled": True}}
    agent = make_agent()
    async with running(agent):
        fake_cloud.live.put(envelope("cfg_2", "config", version=2, config=config))
        await async_wait_until(lambda: len(fake_cloud.acks) == 1)
        fake_cloud.live.put(envelope("trg_small"))
        await async_wait_until(lambda: len(fake_cloud.uploads) == 1)
        fake_cloud.live.put(envelope("cfg_2", "config", version=2, config=config))  # redelivery
        await async_wait_until(lambda: len(fake_cloud.acks) == 2)
    ack = fake_cloud.acks[0]
    assert ack["version"] == 2
    assert ack["config"]["camera"] == {"resolution": "160x120", "warmup": 1}
    assert ack["config"]["trigger"] == {"enabled": True}
    assert fake_cloud.acks[1]["version"] == 2
    frame = cv2.imdecode(np.frombuffer(fake_cloud.uploads[0]["image"], np.uint8), 1)
    assert frame.shape == (120, 160, 3)
    persisted = AgentState(tmp_path / "state")
    assert (persisted.config_version, persisted.config) == (2, config)


async def test_config_can_switch_the_detector_live(
    fake_cloud: FakeCloud, make_agent: AgentFactory
) -> None:
    agent = make_agent()
    async with running(agent):
        config = {"detection": {"detector": "opencv", "confidence": 0.6}}
        fake_cloud.live.put(envelope("cfg_3", "config", version=3, config=config))
        await async_wait_until(lambda: len(fake_cloud.acks) == 1)
    assert agent.pipeline.detector.name == "opencv"
    assert fake_cloud.acks[0]["config"]["detection"]["confidence"] == 0.6


async def test_wrong_key_ends_the_agent_with_a_clear_exit_code(
    fake_cloud: FakeCloud, make_agent: AgentFactory, caplog: pytest.LogCaptureFixture
) -> None:
    agent = make_agent(api_key="vsk_wrong")
    assert await asyncio.wait_for(agent.run(), 10) == EXIT_REJECTED
    assert "check --api-key" in caplog.text


async def test_watch_uploads_rate_limited_event_captures(
    fake_cloud: FakeCloud, make_agent: AgentFactory
) -> None:
    agent = make_agent(
        detector=PersonEverywhere(), watch_labels=frozenset({"person"}), watch_interval=60.0
    )
    async with running(agent):
        await async_wait_until(lambda: len(fake_cloud.uploads) == 1)
        await asyncio.sleep(1.5)  # about three more frames with a person: rate limited
    assert len(fake_cloud.uploads) == 1
    event = fake_cloud.uploads[0]
    assert event["trigger_id"] is None
    assert event["trigger_label"] == "watch:person"
    assert event["metadata"]["trigger_type"] == "event"


async def test_stop_during_a_slow_upload_exits_promptly_with_the_capture_spooled(
    fake_cloud: FakeCloud, make_agent: AgentFactory
) -> None:
    fake_cloud.upload_delay = 30.0
    agent = make_agent()
    task = asyncio.create_task(agent.run())
    fake_cloud.live.put(envelope("trg_slow"))
    await async_wait_until(lambda: agent.state.was_executed("trg_slow"))
    began = time.monotonic()
    agent.stop()
    assert await asyncio.wait_for(task, 15) == EXIT_OK
    assert time.monotonic() - began < STOP_GRACE + 2
    (entry,) = agent.spool.entries()
    assert agent.spool.load(entry)[1]["trigger_id"] == "trg_slow"  # type: ignore[index]


async def test_config_from_a_reset_cloud_with_a_lower_version_is_applied(
    fake_cloud: FakeCloud, make_agent: AgentFactory, tmp_path: Path
) -> None:
    AgentState(tmp_path / "state").set_config(9, {"camera": {"warmup": 3}})
    agent = make_agent()
    async with running(agent):
        config = {"camera": {"warmup": 1}}
        fake_cloud.live.put(envelope("cfg_1", "config", version=1, config=config))
        await async_wait_until(lambda: len(fake_cloud.acks) == 1)
    assert fake_cloud.acks[0]["version"] == 1
    assert agent.pipeline.camera.settings.warmup == 1
    assert AgentState(tmp_path / "state").config_version == 1


async def test_capture_id_is_made_once_and_resent_from_the_spool(
    fake_cloud: FakeCloud, make_agent: AgentFactory
) -> None:
    fake_cloud.upload_statuses = [503]  # the first try fails: the retry reads the spool entry
    agent = make_agent()
    async with running(agent):
        fake_cloud.live.put(envelope("trg_1"))
        await async_wait_until(lambda: len(fake_cloud.uploads) == 1, within=30)
    capture_id = fake_cloud.uploads[0]["capture_id"]
    assert isinstance(capture_id, str) and len(capture_id) == 32
