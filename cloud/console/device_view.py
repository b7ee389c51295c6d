"""What the device page shows: the device, its presence, timeline and gallery, in few queries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.captures.queries import CaptureFilter, list_captures
from cloud.core.errors import ApiError
from cloud.core.ids import DEVICE_ID
from cloud.hub.presence import is_connected
from cloud.models import Capture, Device, Trigger, User
from cloud.triggers.service import TriggerFilter, list_triggers

TIMELINE_SIZE = 30
GALLERY_SIZE = 12


@dataclass
class Shot:
    """One capture as the gallery draws it: boxes and zones in the image's own pixels."""

    capture: Capture
    boxes: list[dict[str, Any]]
    zones: list[list[list[float]]]
    matched_rules: list[str]


@dataclass
class DeviceView:
    device: Device
    online: bool
    triggers: list[Trigger]
    shots: list[Shot] = field(default_factory=list)

    @property
    def last_capture(self) -> Capture | None:
        return self.shots[0].capture if self.shots else None


async def org_device(session: AsyncSession, user: User, device_id: str) -> Device:
    """The org's device; 404 for a malformed id, another org's device or a deleted one."""
    if not DEVICE_ID.match(device_id):
        raise ApiError(404, "no such device in your organisation")
    row = (
        await session.execute(sa.select(Device).where(Device.device_id == device_id))
    ).scalar_one_or_none()
    if row is None or row.org_id != user.org_id or row.deleted_at is not None:
        raise ApiError(404, "no such device in your organisation")
    return row


async def device_online(session: AsyncSession, device_id: str, keepalive_seconds: float) -> bool:
    online = await session.scalar(
        sa.select(is_connected(keepalive_seconds)).where(Device.device_id == device_id)
    )
    return bool(online)


def shot_of(capture: Capture, config: dict[str, Any] | None) -> Shot:
    boxes = [
        {
            "label": detection.get("label", "?"),
            "confidence": float(detection.get("confidence", 0.0)),
            "x": detection["box"][0],
            "y": detection["box"][1],
            "w": max(detection["box"][2] - detection["box"][0], 0),
            "h": max(detection["box"][3] - detection["box"][1], 0),
        }
        for detection in capture.detections or []
        if isinstance(detection.get("box"), list) and len(detection["box"]) == 4
    ]
    result = capture.evaluation_result or {}
    matched = [rule.get("name", "?") for rule in result.get("matched_rules") or []]
    rules = ((config or {}).get("evaluation") or {}).get("rules") or []
    zones = [
        [[x * capture.width, y * capture.height] for x, y in rule["zone"]]
        for rule in rules
        if rule.get("zone") and (not matched or rule.get("name") in matched)
    ]
    return Shot(capture, boxes, zones, matched)


async def device_view(
    session: AsyncSession, user: User, device_id: str, keepalive_seconds: float
) -> DeviceView:
    device = await org_device(session, user, device_id)
    online = await device_online(session, device_id, keepalive_seconds)
    triggers, _ = await list_triggers(
        session, user, TriggerFilter(device_id=device_id), TIMELINE_SIZE, None
    )
    captures, _ = await list_captures(
        session, user, CaptureFilter(device_id=device_id), GALLERY_SIZE, None
    )
    return DeviceView(device, online, triggers, [shot_of(c, device.config) for c in captures])
