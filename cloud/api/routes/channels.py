"""Notification channels (admin only): create, list, change, delete, test, delivery history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from cloud.alerts.channels import (
    ChannelFields,
    channel_deliveries,
    create_channel,
    delete_channel,
    list_channels,
    org_channel,
    send_test,
    update_channel,
)
from cloud.api.deps import AdminUser, SessionDep, SettingsDep
from cloud.api.schemas.channels import (
    ChannelCreate,
    ChannelCreated,
    ChannelList,
    ChannelOut,
    ChannelUpdate,
    DeliveryList,
    DeliveryOut,
    TestQueued,
)
from cloud.models import AlertChannel, NotificationState

router = APIRouter(prefix="/v1/channels", tags=["channels"])

MAX_DELIVERIES = 500


def _out(channel: AlertChannel) -> dict[str, object]:
    fields = {name: getattr(channel, name) for name in ChannelOut.model_fields if name != "url"}
    return {**fields, "url": channel.url_display}


def _fields(body: ChannelCreate | ChannelUpdate) -> ChannelFields:
    values = body.model_dump(exclude={"kind"})
    if values.get("alert_kinds") is not None:
        values["alert_kinds"] = [kind.value for kind in body.alert_kinds or []]
    return ChannelFields(**values)


@router.post("", response_model=ChannelCreated, status_code=201)
async def create(
    body: ChannelCreate, user: AdminUser, session: SessionDep, settings: SettingsDep
) -> ChannelCreated:
    """Add a channel; a webhook's signing secret is in this answer only."""
    channel, secret = await create_channel(session, settings, user, body.kind, _fields(body))
    return ChannelCreated(**_out(channel), secret=secret)


@router.get("", response_model=ChannelList)
async def list_all(user: AdminUser, session: SessionDep) -> ChannelList:
    """The org's channels (URLs with credentials hidden, no secrets)."""
    channels = await list_channels(session, user.org_id)
    return ChannelList(channels=[ChannelOut(**_out(c)) for c in channels])


@router.patch("/{channel_id}", response_model=ChannelOut)
async def update(
    channel_id: str,
    body: ChannelUpdate,
    user: AdminUser,
    session: SessionDep,
    settings: SettingsDep,
) -> ChannelOut:
    """Change a channel's name, URL, routing, templates or enabled flag."""
    channel = await org_channel(session, user, channel_id)
    channel = await update_channel(session, settings, channel, _fields(body), body.model_fields_set)
    return ChannelOut(**_out(channel))


@router.delete("/{channel_id}", status_code=204, response_class=Response)
async def delete(channel_id: str, user: AdminUser, session: SessionDep) -> Response:
    """Delete a channel and its pending notifications."""
    await delete_channel(session, await org_channel(session, user, channel_id))
    return Response(status_code=204)


@router.post("/{channel_id}/test", response_model=TestQueued, status_code=202)
async def test(channel_id: str, user: AdminUser, session: SessionDep) -> TestQueued:
    """Queue a test notification; its attempts appear under `/deliveries`."""
    notification_id = await send_test(session, await org_channel(session, user, channel_id))
    return TestQueued(notification_id=notification_id, status=NotificationState.PENDING)


@router.get("/{channel_id}/deliveries", response_model=DeliveryList)
async def deliveries(
    channel_id: str,
    user: AdminUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_DELIVERIES)] = 100,
) -> DeliveryList:
    """Every attempt to send to this channel, newest first: outcome, HTTP status, error, time."""
    rows = await channel_deliveries(session, await org_channel(session, user, channel_id), limit)
    return DeliveryList(deliveries=[DeliveryOut(**row._mapping) for row in rows])
