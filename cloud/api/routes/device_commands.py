"""Device commands: users send ping/diagnostics/restart and read them; devices answer them."""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter

from cloud.api.deps import (
    CurrentDevice,
    CurrentUser,
    HubDep,
    OperatorUser,
    OrgDevice,
    SessionDep,
    SettingsDep,
)
from cloud.api.schemas.device_commands import (
    CommandAccepted,
    CommandOut,
    CommandRequest,
    CommandResultReport,
)
from cloud.commands.service import json_size, org_command, record_result, request_command
from cloud.core.errors import ApiError
from cloud.core.ids import DEVICE_COMMAND_ID
from cloud.models import TriggerStatus

router = APIRouter(tags=["device commands"])


@router.post("/v1/devices/{device_id}/commands", response_model=CommandAccepted)
async def send_command(
    body: CommandRequest,
    device: OrgDevice,
    user: OperatorUser,
    session: SessionDep,
    settings: SettingsDep,
    hub: HubDep,
) -> CommandAccepted:
    """Send ping, diagnostics or restart: `sent` if a live stream took it, else `pending`."""
    command, online = await request_command(
        session, settings, device, user, body.type, body.ttl_seconds
    )
    # Registered before the commit: the NOTIFY (hence the delivery) can only follow it.
    delivered = hub.expect_delivery(command.command_id) if online else None
    try:
        await session.commit()
        if delivered is None:
            return CommandAccepted(command_id=command.command_id, status=TriggerStatus.PENDING)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(delivered), settings.delivery_wait_seconds)
    finally:
        hub.forget_delivery(command.command_id)
    status = TriggerStatus.SENT if delivered.done() else TriggerStatus.PENDING
    return CommandAccepted(command_id=command.command_id, status=status)


@router.get("/v1/commands/{command_id}", response_model=CommandOut)
async def get_command(command_id: str, user: CurrentUser, session: SessionDep) -> CommandOut:
    """One device command of the org, with the device's result once executed."""
    if not DEVICE_COMMAND_ID.match(command_id):
        raise ApiError(404, "command not found")
    return CommandOut.model_validate(await org_command(session, user, command_id))


@router.post("/v1/devices/{device_id}/commands/{command_id}/result", response_model=CommandOut)
async def report_command_result(
    command_id: str,
    body: CommandResultReport,
    device: CurrentDevice,
    session: SessionDep,
    settings: SettingsDep,
) -> CommandOut:
    """The device's answer to a command; 409 when the command is already terminal."""
    if not DEVICE_COMMAND_ID.match(command_id):
        raise ApiError(404, "command not found")
    if (body.result is None) == (body.error is None):
        raise ApiError(422, "send exactly one of `result` and `error`")
    if body.result is not None and json_size(body.result) > settings.max_command_result_bytes:
        raise ApiError(422, f"result larger than {settings.max_command_result_bytes} bytes of JSON")
    command = await record_result(session, device.device_id, command_id, body.result, body.error)
    await session.commit()
    return CommandOut.model_validate(command)
