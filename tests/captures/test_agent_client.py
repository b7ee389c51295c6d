"""The device agent's own upload client against the real route: what it sends is accepted."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from cloud.models import Capture, Trigger, TriggerStatus
from device.uploader import CloudClient, UploadOutcome
from tests.support.captures import jpeg_bytes, make_trigger
from tests.support.factories import Factory
from tests.support.live_server import LiveServer


def _agent_metadata(device_id: str, trigger_id: str | None) -> dict:
    """The document `device.agent` builds for an upload (same keys, same value types)."""
    return {
        "device_id": device_id,
        "trigger_id": trigger_id,
        "captured_at": datetime.now(UTC).isoformat(),
        "trigger_label": None,
        "detections": [{"label": "person", "confidence": 0.77, "box": [1.5, 2.0, 30.0, 60.5]}],
        "metadata": {
            "device_version": "test",
            "trigger_type": "manual",
            "command_id": trigger_id,
            "width": 320,
            "height": 240,
            "detector": "opencv",
            "config_version": 1,
            "timings_ms": {"grab": 1.0, "detect": 2.0, "encode": 3.0},
        },
    }


async def test_agent_upload_is_delivered_then_idempotent_then_final_refusal(
    live_server: LiveServer, factory: Factory, db: sessionmaker[Session]
) -> None:
    device = factory.device()
    trigger_id = make_trigger(db, device.device_id, TriggerStatus.SENT)
    expired = make_trigger(db, device.device_id, TriggerStatus.EXPIRED)
    client = CloudClient(live_server.url, device.device_id, device.key, timeout=10.0)
    try:
        first = await client.upload(jpeg_bytes(), _agent_metadata(device.device_id, trigger_id))
        again = await client.upload(jpeg_bytes(), _agent_metadata(device.device_id, trigger_id))
        late = await client.upload(jpeg_bytes(), _agent_metadata(device.device_id, expired))
    finally:
        await client.aclose()
    assert (first.outcome, first.status_code) == (UploadOutcome.DELIVERED, 201)
    assert (again.outcome, again.status_code) == (UploadOutcome.DELIVERED, 200)
    assert first.record_id == again.record_id
    assert (late.outcome, late.status_code) == (UploadOutcome.REJECTED, 409)
    with db() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Capture)) == 1
        trigger = session.get(Trigger, trigger_id)
    assert trigger is not None and trigger.capture_id == first.record_id
