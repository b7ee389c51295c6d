"""Device-side command routes: the SSE stream, its long-poll fallback, failures, config acks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.background import BackgroundTask

from cloud.api.deps import (
    BearerToken,
    CurrentDevice,
    HubDep,
    SessionDep,
    SettingsDep,
    StreamOpenerDep,
)
from cloud.api.schemas.errors import responses
from cloud.api.schemas.triggers import (
    CommandList,
    ConfigAck,
    ConfigAckResponse,
    FailureReport,
    FailureResponse,
)
from cloud.core.config import Settings, StreamImpl
from cloud.core.errors import ApiError
from cloud.core.ids import COMMAND_ID, TRIGGER_ID
from cloud.hub.delivery import record_config_ack
from cloud.hub.hub import CommandHub, LocalStream
from cloud.hub.mailbox import Command, StreamClosed
from cloud.hub.stream_open import StreamOpener
from cloud.hub.stream_response import CommandStreamResponse
from cloud.hub.stream_sse_starlette import sse_starlette_response
from cloud.models import TriggerStatus
from cloud.triggers.service import device_trigger, finish_open_trigger

router = APIRouter(prefix="/v1/devices/{device_id}", tags=["device commands"])

DEFAULT_POLL_WAIT = 25.0  # seconds
MAX_POLL_WAIT = 60.0  # seconds


@router.get(
    "/commands",
    response_class=Response,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "The SSE command stream"},
        **responses(400, 401, 403, 404, 429, 503),
    },
)
async def command_stream(
    device_id: str,
    request: Request,
    token: BearerToken,
    hub: HubDep,
    opener: StreamOpenerDep,
    settings: SettingsDep,
) -> Response:
    """The device's SSE command stream: backlog first, then live commands."""
    # Served by cloud/api/stream_fast_path.py under uvicorn; this route documents it and
    # serves in-process ASGI callers.
    return await open_command_stream(
        hub, opener, settings, device_id, token, request.headers.get("last-event-id")
    )


async def open_command_stream(
    hub: CommandHub,
    opener: StreamOpener,
    settings: Settings,
    device_id: str,
    token: str | None,
    last_event_id: str | None,
) -> Response:
    """The stream's response, its backlog read; raises the ApiError of a refused open."""
    if last_event_id and not COMMAND_ID.match(last_event_id):
        raise ApiError(400, "invalid Last-Event-ID")
    # The backlog is every open command whatever Last-Event-ID says: a command written before
    # the link broke may never have reached the device, and the device dedupes by command id.
    stream = await opener.open(device_id, token)
    respond = (
        sse_starlette_response
        if settings.stream_impl == StreamImpl.SSE_STARLETTE
        else CommandStreamResponse
    )
    return respond(
        hub,
        stream,
        keepalive=settings.keepalive_seconds,
        retry_ms=settings.stream_retry_ms,
        send_timeout=settings.stream_send_timeout_seconds,
    )


@router.get(
    "/commands/poll", response_model=CommandList, responses=responses(401, 403, 404, 422, 429, 503)
)
async def poll_commands(
    device_id: str,
    token: BearerToken,
    hub: HubDep,
    opener: StreamOpenerDep,
    wait: Annotated[float, Query(ge=0, le=MAX_POLL_WAIT)] = DEFAULT_POLL_WAIT,
) -> Response:
    """Long-poll fallback: the same envelopes as the stream, as soon as there is one."""
    stream = await opener.open(device_id, token)
    commands: list[Command] = []
    try:
        first = await stream.mailbox.next(wait)
        if first is not None:
            commands = [first, *stream.mailbox.drain()]
    except StreamClosed:
        commands = stream.mailbox.drain()
    finally:
        hub.end_stream(stream)
    return JSONResponse(
        {"commands": [command.envelope for command in commands]},
        background=BackgroundTask(_record_polled, hub, stream, commands),
    )


def _record_polled(hub: CommandHub, stream: LocalStream, commands: list[Command]) -> None:
    """Runs after the response body went out: the polled commands count as sent."""
    for command in commands:
        hub.written(stream, command)


@router.post(
    "/triggers/{trigger_id}/failed",
    response_model=FailureResponse,
    responses=responses(401, 403, 404, 409, 413, 422, 503),
)
async def report_trigger_failed(
    trigger_id: str, body: FailureReport, device: CurrentDevice, session: SessionDep
) -> FailureResponse:
    """The device could not capture for this trigger; 409 when it is already terminal."""
    if not TRIGGER_ID.match(trigger_id):
        raise ApiError(404, "trigger not found")
    trigger = await device_trigger(session, device.device_id, trigger_id)
    trigger = await finish_open_trigger(session, trigger, body.reason)
    await session.commit()
    return FailureResponse(trigger_id=trigger.trigger_id, status=TriggerStatus.FAILED)


@router.post(
    "/config/ack",
    response_model=ConfigAckResponse,
    responses=responses(401, 403, 404, 409, 413, 422, 503),
)
async def acknowledge_config(
    body: ConfigAck, device: CurrentDevice, session: SessionDep
) -> ConfigAckResponse:
    """Record the config version the device applied (its reported twin)."""
    if body.version > device.config_version:
        raise ApiError(
            409,
            f"version {body.version} is newer than the desired version {device.config_version}",
        )
    await record_config_ack(session, device, body.version, body.config)
    await session.commit()
    await session.refresh(device)
    return ConfigAckResponse(
        device_id=device.device_id,
        reported_config_version=device.reported_config_version or body.version,
    )
