"""Upload classification and the spool sender against a real HTTP server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.spool import REJECTED_DIR, Spool
from device.uploader import CloudClient, SpoolSender, UploadOutcome
from tests.device.conftest import DEVICE_ID, DEVICE_KEY, FakeCloud
from tests.support.waiting import async_wait_until, free_port


@pytest.fixture
def jpeg() -> bytes:
    ok, buffer = cv2.imencode(".jpg", np.full((48, 64, 3), 90, np.uint8))
    assert ok
    return buffer.tobytes()


def metadata(trigger_id: str | None) -> dict[str, object]:
    return {
        "device_id": DEVICE_ID,
        "trigger_id": trigger_id,
        "captured_at": "2026-01-01T00:00:00+00:00",
        "trigger_label": "t",
        "metadata": {},
        "detections": [{"label": "person", "confidence": 0.9, "box": [1, 2, 3, 4]}],
    }


async def test_upload_is_multipart_with_image_metadata_and_key(
    fake_cloud: FakeCloud, jpeg: bytes
) -> None:
    client = CloudClient(fake_cloud.url, DEVICE_ID, DEVICE_KEY, 5)
    result = await client.upload(jpeg, metadata("trg_1"))
    await client.aclose()
    assert result.outcome is UploadOutcome.DELIVERED and result.status_code == 201
    upload = fake_cloud.uploads[0]
    assert upload["image"] == jpeg
    assert upload["trigger_id"] == "trg_1"
    assert upload["detections"][0]["box"] == [1, 2, 3, 4]
    assert upload["authorization"] == f"Bearer {DEVICE_KEY}"


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (500, UploadOutcome.RETRY),
        (503, UploadOutcome.RETRY),
        (408, UploadOutcome.RETRY),
        (429, UploadOutcome.RETRY),
        (409, UploadOutcome.REJECTED),
        (413, UploadOutcome.REJECTED),
        (422, UploadOutcome.REJECTED),
    ],
)
async def test_answers_are_classified_per_contract(
    fake_cloud: FakeCloud, jpeg: bytes, status: int, outcome: UploadOutcome
) -> None:
    fake_cloud.upload_statuses = [status]
    client = CloudClient(fake_cloud.url, DEVICE_ID, DEVICE_KEY, 5)
    result = await client.upload(jpeg, metadata("trg_1"))
    await client.aclose()
    assert result.outcome is outcome
    assert result.detail == f"answer {status}"


async def test_unreachable_server_means_retry(jpeg: bytes) -> None:
    client = CloudClient(f"http://127.0.0.1:{free_port()}", DEVICE_ID, DEVICE_KEY, 2)
    result = await client.upload(jpeg, metadata("trg_1"))
    await client.aclose()
    assert result.outcome is UploadOutcome.RETRY


async def test_sender_delivers_spool_oldest_first_once_server_returns(
    tmp_path: Path, jpeg: bytes
) -> None:
    cloud = FakeCloud()  # not started yet: the server is down
    spool = Spool(tmp_path, 10_000_000)
    client = CloudClient(cloud.url, DEVICE_ID, DEVICE_KEY, 2)
    sender = SpoolSender(spool, client)
    for name in ("trg_1", "trg_2", "trg_3"):
        spool.put(jpeg, metadata(name), name)
    task = asyncio.create_task(sender.run())
    try:
        await async_wait_until(lambda: sender.backlogged)
        await asyncio.to_thread(cloud.start)
        sender.wake(reset_backoff=True)
        await async_wait_until(lambda: len(cloud.uploads) == 3)
        assert [u["trigger_id"] for u in cloud.uploads] == ["trg_1", "trg_2", "trg_3"]
        await async_wait_until(lambda: spool.entries() == [])
    finally:
        sender.stop()
        await asyncio.wait_for(task, 5)
        await client.aclose()
        cloud.stop()


async def test_refused_capture_is_moved_aside_and_the_next_is_sent(
    fake_cloud: FakeCloud, tmp_path: Path, jpeg: bytes
) -> None:
    fake_cloud.upload_statuses = [422]
    spool = Spool(tmp_path, 10_000_000)
    client = CloudClient(fake_cloud.url, DEVICE_ID, DEVICE_KEY, 2)
    sender = SpoolSender(spool, client)
    spool.put(jpeg, metadata("trg_bad"), "trg_bad")
    spool.put(jpeg, metadata("trg_ok"), "trg_ok")
    task = asyncio.create_task(sender.run())
    try:
        await async_wait_until(lambda: len(fake_cloud.uploads) == 1 and not spool.entries())
    finally:
        sender.stop()
        await asyncio.wait_for(task, 5)
        await client.aclose()
    assert fake_cloud.uploads[0]["trigger_id"] == "trg_ok"
    rejected = list((tmp_path / REJECTED_DIR).glob("*.json"))
    assert len(rejected) == 1
    assert json.loads(rejected[0].read_text())["rejected_reason"] == "422 answer 422"


async def test_report_failed_and_config_ack_reach_the_cloud(fake_cloud: FakeCloud) -> None:
    client = CloudClient(fake_cloud.url, DEVICE_ID, DEVICE_KEY, 5)
    assert await client.report_failed("trg_9", "camera unplugged")
    assert await client.ack_config(3, {"camera": {"warmup": 1}})
    await client.aclose()
    assert fake_cloud.failed == [("trg_9", "camera unplugged")]
    assert fake_cloud.acks == [{"version": 3, "config": {"camera": {"warmup": 1}}}]


async def test_capture_that_keeps_failing_5xx_does_not_block_newer_ones(
    fake_cloud: FakeCloud, tmp_path: Path, jpeg: bytes
) -> None:
    fake_cloud.upload_statuses = [500]  # the first attempt (the oldest entry) fails
    spool = Spool(tmp_path, 10_000_000)
    client = CloudClient(fake_cloud.url, DEVICE_ID, DEVICE_KEY, 2)
    sender = SpoolSender(spool, client)
    spool.put(jpeg, metadata("trg_poisoned"), "trg_poisoned")
    spool.put(jpeg, metadata("trg_newer"), "trg_newer")
    task = asyncio.create_task(sender.run())
    try:
        await async_wait_until(lambda: len(fake_cloud.uploads) == 2, within=30)
    finally:
        sender.stop()
        await asyncio.wait_for(task, 5)
        await client.aclose()
    # The newer capture went first; the failing one was retried alone after its own backoff.
    assert [u["trigger_id"] for u in fake_cloud.uploads] == ["trg_newer", "trg_poisoned"]
    assert spool.entries() == []
