"""The channel forms of the console, read into the alerts service's `ChannelFields` with the
limits of the channels API (the service then checks URLs and templates as for the API)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from cloud.alerts.channels import ChannelFields
from cloud.core.errors import ApiError
from cloud.core.ids import DEVICE_ID
from cloud.models import AlertChannel, AlertKind, ChannelKind, NotificationAttempt

KINDS = tuple(kind.value for kind in AlertKind)
MAX_NAME = 100
MAX_URL = 10_000
MAX_TEMPLATE = 100_000
MAX_DEVICES = 1000
MAX_RULES = 100
MAX_RULE_NAME = 100
_SPLIT = re.compile(r"[\s,]+")


def _text(form: Any, name: str, limit: int) -> str:
    value = form.get(name) or ""
    if not isinstance(value, str):
        raise ApiError(422, f"{name}: expected text")
    if len(value) > limit:
        raise ApiError(422, f"{name}: at most {limit} characters")
    return value


def _words(form: Any, name: str) -> list[str] | None:
    """A comma- or space-separated list; blank means every one (None)."""
    text = _text(form, name, 200_000).strip()
    return [word for word in _SPLIT.split(text) if word] or None


def _routing(form: Any) -> dict[str, Any]:
    kinds = [value for value in form.getlist("alert_kinds") if isinstance(value, str)]
    unknown = [value for value in kinds if value not in KINDS]
    if unknown:
        raise ApiError(422, f"alert_kinds: unknown kind {unknown[0]!r}")
    if not kinds:
        raise ApiError(422, "alert_kinds: choose at least one kind of alert")
    device_ids = _words(form, "device_ids")
    if device_ids is not None:
        if len(device_ids) > MAX_DEVICES:
            raise ApiError(422, f"device_ids: at most {MAX_DEVICES} devices")
        bad = [d for d in device_ids if not DEVICE_ID.match(d)]
        if bad:
            raise ApiError(422, f"device_ids: {bad[0][:80]!r} is not a device id")
    rules = _words(form, "rules")
    if rules is not None:
        if len(rules) > MAX_RULES:
            raise ApiError(422, f"rules: at most {MAX_RULES} rules")
        if any(len(rule) > MAX_RULE_NAME for rule in rules):
            raise ApiError(422, f"rules: a rule name has at most {MAX_RULE_NAME} characters")
    return {
        "alert_kinds": None if set(kinds) == set(KINDS) else [k for k in KINDS if k in kinds],
        "device_ids": device_ids,
        "rules": rules,
        "title_template": _text(form, "title_template", MAX_TEMPLATE).strip() or None,
        "body_template": _text(form, "body_template", MAX_TEMPLATE).strip() or None,
    }


def _name(form: Any) -> str:
    name = _text(form, "name", MAX_NAME).strip()
    if not name:
        raise ApiError(422, "name: give the channel a name")
    return name


def new_channel(form: Any) -> tuple[ChannelKind, ChannelFields]:
    kind = form.get("kind")
    if kind not in (ChannelKind.APPRISE.value, ChannelKind.WEBHOOK.value):
        raise ApiError(422, "kind: choose an Apprise URL or a webhook")
    url = _text(form, "url", MAX_URL).strip()
    if not url:
        raise ApiError(422, "url: enter the channel's URL")
    fields = ChannelFields(name=_name(form), url=url, enabled=True, **_routing(form))
    return ChannelKind(kind), fields


def changed_channel(form: Any) -> tuple[ChannelFields, set[str]]:
    """The edit form names every field but the URL, which is kept when left blank."""
    url = _text(form, "url", MAX_URL).strip() or None
    fields = ChannelFields(
        name=_name(form), url=url, enabled=form.get("enabled") == "on", **_routing(form)
    )
    given = {"name", "enabled", "alert_kinds", "device_ids", "rules"}
    given |= {"title_template", "body_template"}
    if url is not None:
        given.add("url")
    return fields, given


def form_values(form: Any) -> dict[str, Any]:
    """What the admin typed, to show the form again with a message (never the URL's secret
    parts of a saved channel: the edit form starts with its URL blank)."""
    return {
        "name": form.get("name") or "",
        "kind": form.get("kind") or "",
        "url": form.get("url") or "",
        "alert_kinds": [v for v in form.getlist("alert_kinds") if v in KINDS],
        "device_ids": form.get("device_ids") or "",
        "rules": form.get("rules") or "",
        "title_template": form.get("title_template") or "",
        "body_template": form.get("body_template") or "",
        "enabled": form.get("enabled") == "on",
    }


def channel_values(channel: AlertChannel) -> dict[str, Any]:
    return {
        "name": channel.name,
        "kind": channel.kind.value,
        "url": "",
        "alert_kinds": list(channel.alert_kinds or KINDS),
        "device_ids": ", ".join(channel.device_ids or []),
        "rules": ", ".join(channel.rules or []),
        "title_template": channel.title_template or "",
        "body_template": channel.body_template or "",
        "enabled": channel.enabled,
    }


async def last_outcomes(session: AsyncSession, org_id: uuid.UUID) -> dict[str, sa.Row]:
    """Each channel's latest delivery attempt (one index walk per channel of the org)."""
    latest = (
        sa.select(
            NotificationAttempt.outcome,
            NotificationAttempt.started_at,
            NotificationAttempt.http_status,
            NotificationAttempt.error,
        )
        .where(NotificationAttempt.channel_id == AlertChannel.channel_id)
        .order_by(NotificationAttempt.attempt_id.desc())
        .limit(1)
        .lateral("latest")
    )
    result = await session.execute(
        sa.select(AlertChannel.channel_id, latest)
        .join(latest, sa.true())
        .where(AlertChannel.org_id == org_id)
    )
    return {row.channel_id: row for row in result}
