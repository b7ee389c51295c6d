"""What a notification says: title and text (what, where, when), templates, the webhook event.

Messages are rendered when the alert is raised and stored in the outbox row, so a retry sends
exactly what the first attempt sent. Channel templates use `string.Template` (`$device_name`)
because it substitutes values and nothing else: a format string could reach attributes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from string import Template
from typing import Any

MAX_TEMPLATE_LENGTH = 2000  # characters
MAX_TITLE_LENGTH = 300  # characters
# The placeholders a template may use; anything else is refused when the channel is saved.
PLACEHOLDERS = (
    "title",
    "message",
    "kind",
    "state",
    "alert_id",
    "device_id",
    "device_name",
    "rule",
    "label",
    "confidence",
    "capture_id",
    "time",
)


class TemplateRefused(Exception):
    """A channel template is too long, malformed or names an unknown placeholder."""


def clock(moment: datetime) -> str:
    """`14:05 UTC`: the time of day people read in a notification."""
    return moment.astimezone(UTC).strftime("%H:%M UTC")


def detection_text(
    label: str, confidence: float, rule: str, zoned: bool, device_name: str, at: datetime
) -> tuple[str, str]:
    """("person on FLOOR1", "person in zone Door on FLOOR1 at 14:05 UTC, 0.87")."""
    where = f"in zone {rule}" if zoned else f"(rule {rule})"
    return (
        f"{label} on {device_name}",
        f"{label} {where} on {device_name} at {clock(at)}, {confidence:.2f}",
    )


def offline_text(device_name: str, since: datetime, threshold: float) -> tuple[str, str]:
    return (
        f"{device_name} is offline",
        f"{device_name} offline since {clock(since)} (no stream for {threshold:.0f} s)",
    )


def online_text(device_name: str, at: datetime, offline_since: datetime | None) -> tuple[str, str]:
    gone = ""
    if offline_since is not None:
        minutes = max(0, round((at - offline_since).total_seconds() / 60))
        gone = f" after {minutes} min offline"
    return f"{device_name} is back online", f"{device_name} back online at {clock(at)}{gone}"


def capture_failed_text(
    device_name: str, count: int, at: datetime, last_error: str | None
) -> tuple[str, str]:
    reason = f" (last: {last_error[:200]})" if last_error else ""
    return (
        f"{device_name}: captures failing",
        f"{device_name}: {count} captures in a row failed or expired, at {clock(at)}{reason}",
    )


def check_template(name: str, template: str | None) -> str | None:
    """The template as given when valid; TemplateRefused naming the problem otherwise."""
    if template is None:
        return None
    if len(template) > MAX_TEMPLATE_LENGTH:
        raise TemplateRefused(f"{name} is longer than {MAX_TEMPLATE_LENGTH} characters")
    parsed = Template(template)
    if not parsed.is_valid():
        raise TemplateRefused(f"{name} is malformed (write $$ for a literal $)")
    unknown = sorted(set(parsed.get_identifiers()) - set(PLACEHOLDERS))
    if unknown:
        raise TemplateRefused(
            f"{name} uses unknown placeholder ${unknown[0]}; known: {', '.join(PLACEHOLDERS)}"
        )
    return template


def render(
    template: str | None, default: str, values: dict[str, Any], limit: int | None = None
) -> str:
    """`template` filled from `values` (missing ones left as written), else `default`."""
    text = default if template is None else Template(template).safe_substitute(values)
    return text[:limit] if limit else text


def webhook_event(
    event_type: str, timestamp: datetime, data: dict[str, Any], image_url: str | None
) -> dict[str, Any]:
    """The webhook body: `{"type": "alert.<kind>", "timestamp", "data": {..., "image_url"?}}`."""
    body = dict(data)
    if image_url is not None:
        body["image_url"] = image_url
    return {"type": event_type, "timestamp": timestamp.isoformat(), "data": body}
