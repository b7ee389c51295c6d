"""User-side trigger routes: manual triggers, listing, cancel, and who is connected."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query
from fastapi.responses import JSONResponse

from cloud.api.deps import (
    CurrentUser,
    HubDep,
    OperatorUser,
    SessionDep,
    SettingsDep,
    TriggerBatcherDep,
    valid_device_id,
)
from cloud.api.schemas.errors import responses
from cloud.api.schemas.triggers import (
    ConnectedDevice,
    ConnectedList,
    ManualTriggerRequest,
    ManualTriggerResponse,
    TriggerList,
    TriggerOut,
)
from cloud.auth.actor import Actor
from cloud.core.config import Settings
from cloud.core.ids import new_trigger_id
from cloud.core.schema_types import DeviceId, UtcDateTime
from cloud.hub.hub import CommandHub
from cloud.hub.presence import connected_devices_of_org
from cloud.models import TriggerStatus, TriggerType, User
from cloud.triggers.batcher import ManualTriggerBatcher
from cloud.triggers.manual import request_manual_trigger
from cloud.triggers.service import (
    CANCELLED_ERROR,
    TriggerFilter,
    finish_open_trigger,
    list_triggers,
    org_trigger,
)

router = APIRouter(tags=["triggers"])

DEFAULT_PAGE = 100
MAX_PAGE = 500


@router.get("/v1/devices/connected", response_model=ConnectedList, responses=responses(401, 503))
async def connected_devices(
    user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> ConnectedList:
    """Devices of the user's org with a live stream on any live instance."""
    rows = await connected_devices_of_org(session, user.org_id, settings.keepalive_seconds)
    devices = [ConnectedDevice(**row._mapping) for row in rows]
    return ConnectedList(devices=devices, connected_devices=[d.device_id for d in devices])


@router.post(
    "/v1/devices/{device_id}/trigger",
    response_model=ManualTriggerResponse,
    responses=responses(401, 403, 404, 409, 413, 422, 429, 503),
)
async def trigger_device(
    device_id: Annotated[str, Depends(valid_device_id)],
    user: OperatorUser,
    settings: SettingsDep,
    hub: HubDep,
    batcher: TriggerBatcherDep,
    body: Annotated[ManualTriggerRequest | None, Body()] = None,
) -> JSONResponse:
    """Ask the device for a capture now: `sent` if a live stream took it, else `pending`.

    The body is optional: none (or `{}`) means no label and the default time to live.
    """
    # Served by cloud/api/trigger_fast_path.py under uvicorn when the request parses; this
    # route documents it, answers what does not parse, and serves in-process ASGI callers.
    return await manual_trigger(batcher, settings, hub, user, device_id, body)


async def manual_trigger(
    batcher: ManualTriggerBatcher,
    settings: Settings,
    hub: CommandHub,
    user: User | Actor,
    device_id: str,
    body: ManualTriggerRequest | None,
) -> JSONResponse:
    """Store the trigger and wait up to `delivery_wait_seconds` for its `sent`."""
    body = body or ManualTriggerRequest()
    trigger_id = new_trigger_id()
    # Registered before the statement: its commit sends the NOTIFY, and the delivery on
    # another instance can follow at once.
    delivered = hub.expect_delivery(trigger_id)
    try:
        trigger = await request_manual_trigger(
            batcher,
            settings,
            user,
            device_id,
            body.label,
            body.ttl_seconds,
            trigger_id=trigger_id,
        )
        if trigger.instance_id is None:
            return _trigger_answer(trigger_id, TriggerStatus.PENDING)
        if trigger.instance_id == hub.instance_id:
            hub.hand_over(device_id, trigger.envelope)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(delivered), settings.delivery_wait_seconds)
    finally:
        hub.forget_delivery(trigger_id)
    status = TriggerStatus.SENT if delivered.done() else TriggerStatus.PENDING
    return _trigger_answer(trigger_id, status)


def _trigger_answer(trigger_id: str, status: TriggerStatus) -> JSONResponse:
    # A ManualTriggerResponse, built directly: FastAPI's response validation and encoding
    # were a visible share of a manual trigger's CPU time.
    return JSONResponse({"trigger_id": trigger_id, "status": status.value})


@router.get("/v1/triggers", response_model=TriggerList, responses=responses(401, 422, 503))
async def get_triggers(
    user: CurrentUser,
    session: SessionDep,
    device_id: DeviceId | None = None,
    status: TriggerStatus | None = None,
    trigger_type: TriggerType | None = None,
    since: UtcDateTime | None = None,
    until: UtcDateTime | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> TriggerList:
    """The org's triggers, newest first, filtered; follow `next_cursor` for more."""
    where = TriggerFilter(device_id, status, trigger_type, since, until)
    triggers, next_cursor = await list_triggers(session, user, where, limit, cursor)
    return TriggerList(
        triggers=[TriggerOut.model_validate(t) for t in triggers], next_cursor=next_cursor
    )


@router.get(
    "/v1/triggers/{trigger_id}", response_model=TriggerOut, responses=responses(401, 404, 503)
)
async def get_trigger(trigger_id: str, user: CurrentUser, session: SessionDep) -> TriggerOut:
    """One trigger of the org."""
    return TriggerOut.model_validate(await org_trigger(session, user, trigger_id))


@router.post(
    "/v1/triggers/{trigger_id}/cancel",
    response_model=TriggerOut,
    responses=responses(401, 403, 404, 409, 503, s409="The trigger is already terminal"),
)
async def cancel_trigger(trigger_id: str, user: OperatorUser, session: SessionDep) -> TriggerOut:
    """Cancel an open trigger (it ends `failed`, error "cancelled by user"); 409 if terminal."""
    trigger = await org_trigger(session, user, trigger_id)
    trigger = await finish_open_trigger(session, trigger, CANCELLED_ERROR)
    await session.commit()
    return TriggerOut.model_validate(trigger)
