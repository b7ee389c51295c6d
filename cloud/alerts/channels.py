"""Notification channels of an org: create (secret shown once), change, delete, test, history."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.alerts import channel_secrets, messages, outbox
from cloud.alerts.urls import UrlRefused, checked_channel_url
from cloud.core.config import Settings
from cloud.core.errors import ApiError
from cloud.core.ids import CHANNEL_ID, new_channel_id
from cloud.models import AlertChannel, ChannelKind, Notification, NotificationAttempt, User

MAX_CHANNELS_PER_ORG = 100


@dataclass
class ChannelFields:
    """The settable fields of a channel; None leaves a field as it is on update."""

    name: str | None = None
    url: str | None = None
    alert_kinds: list[str] | None = None
    device_ids: list[str] | None = None
    rules: list[str] | None = None
    title_template: str | None = None
    body_template: str | None = None
    enabled: bool | None = None


async def _checked_url(kind: ChannelKind, url: str, settings: Settings) -> str:
    try:
        return await checked_channel_url(kind.value, url, settings.allow_private_webhooks)
    except UrlRefused as exc:
        raise ApiError(422, str(exc)) from exc


def _checked_templates(fields: ChannelFields) -> None:
    try:
        messages.check_template("title_template", fields.title_template)
        messages.check_template("body_template", fields.body_template)
    except messages.TemplateRefused as exc:
        raise ApiError(422, str(exc)) from exc


async def create_channel(
    session: AsyncSession, settings: Settings, user: User, kind: ChannelKind, fields: ChannelFields
) -> tuple[AlertChannel, str | None]:
    """A new channel and, for a webhook, its signing secret (returned this once only)."""
    assert fields.name is not None and fields.url is not None
    _checked_templates(fields)
    display = await _checked_url(kind, fields.url, settings)
    count = await session.scalar(
        sa.select(sa.func.count()).where(AlertChannel.org_id == user.org_id)
    )
    if (count or 0) >= MAX_CHANNELS_PER_ORG:
        raise ApiError(409, f"an org has at most {MAX_CHANNELS_PER_ORG} channels")
    secret = channel_secrets.new_webhook_secret() if kind is ChannelKind.WEBHOOK else None
    channel = AlertChannel(
        channel_id=new_channel_id(),
        org_id=user.org_id,
        name=fields.name,
        kind=kind,
        url_ciphertext=channel_secrets.encrypt(settings.secret_key, fields.url.strip()),
        url_display=display,
        secret_ciphertext=channel_secrets.encrypt(settings.secret_key, secret) if secret else None,
        alert_kinds=fields.alert_kinds,
        device_ids=fields.device_ids,
        rules=fields.rules,
        title_template=fields.title_template,
        body_template=fields.body_template,
        enabled=True if fields.enabled is None else fields.enabled,
    )
    session.add(channel)
    await session.commit()
    return channel, secret


async def org_channel(session: AsyncSession, user: User, channel_id: str) -> AlertChannel:
    """One channel of the user's org; 404 otherwise."""
    if not CHANNEL_ID.match(channel_id):
        raise ApiError(404, "channel not found")
    channel = await session.get(AlertChannel, channel_id)
    if channel is None or channel.org_id != user.org_id:
        raise ApiError(404, "channel not found")
    return channel


async def list_channels(session: AsyncSession, org_id: uuid.UUID) -> Sequence[AlertChannel]:
    return (
        await session.scalars(
            sa.select(AlertChannel)
            .where(AlertChannel.org_id == org_id)
            .order_by(AlertChannel.created_at, AlertChannel.channel_id)
        )
    ).all()


async def update_channel(
    session: AsyncSession,
    settings: Settings,
    channel: AlertChannel,
    fields: ChannelFields,
    given: set[str],
) -> AlertChannel:
    """Change the fields the request named (`given`); a routing list set to null means all."""
    _checked_templates(fields)
    if "url" in given:
        if fields.url is None:
            raise ApiError(422, "url cannot be null")
        channel.url_display = await _checked_url(channel.kind, fields.url, settings)
        channel.url_ciphertext = channel_secrets.encrypt(settings.secret_key, fields.url.strip())
    for name in ("name", "enabled"):
        if name in given:
            if getattr(fields, name) is None:
                raise ApiError(422, f"{name} cannot be null")
            setattr(channel, name, getattr(fields, name))
    for name in ("alert_kinds", "device_ids", "rules", "title_template", "body_template"):
        if name in given:
            setattr(channel, name, getattr(fields, name))
    channel.updated_at = datetime.now(UTC)
    await session.commit()
    return channel


async def delete_channel(session: AsyncSession, channel: AlertChannel) -> None:
    """Delete the channel; its undelivered notifications and attempt history go with it."""
    await session.delete(channel)
    await session.commit()


async def send_test(session: AsyncSession, channel: AlertChannel) -> str:
    """Queue a test notification for the channel (sent by the worker); its notification id."""
    now = datetime.now(UTC)
    data: dict[str, Any] = {
        "channel_id": channel.channel_id,
        "message": f"Test notification from Visant to channel {channel.name}",
    }
    payload = {
        "title": "Visant test notification",
        "body": f"Channel {channel.name} works ({messages.clock(now)}).",
        "timestamp": now.isoformat(),
        "data": data,
        "snapshot": None,
    }
    ids = await outbox.enqueue(
        session,
        [
            {
                "channel_id": channel.channel_id,
                "alert_id": None,
                "event_type": "test",
                "payload": payload,
            }
        ],
    )
    await session.commit()
    return ids[0]


async def channel_deliveries(
    session: AsyncSession, channel: AlertChannel, limit: int
) -> Sequence[sa.Row]:
    """The channel's latest attempts, newest first, with their notification's state."""
    result = await session.execute(
        sa.select(
            NotificationAttempt.attempt_id,
            NotificationAttempt.notification_id,
            Notification.alert_id,
            Notification.event_type,
            Notification.state.label("notification_state"),
            NotificationAttempt.attempt,
            NotificationAttempt.started_at,
            NotificationAttempt.duration_ms,
            NotificationAttempt.outcome,
            NotificationAttempt.http_status,
            NotificationAttempt.error,
        )
        .join(Notification, Notification.notification_id == NotificationAttempt.notification_id)
        .where(NotificationAttempt.channel_id == channel.channel_id)
        .order_by(NotificationAttempt.attempt_id.desc())
        .limit(limit)
    )
    return result.all()
