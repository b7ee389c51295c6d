"""Words for the console's pages: schedules, moments, sizes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_UNITS = ((86400, "day"), (3600, "h"), (60, "min"), (1, "s"))


def interval_words(seconds: int) -> str:
    for size, unit in _UNITS:
        if seconds % size == 0:
            count = seconds // size
            if unit == "day":
                return "every day" if count == 1 else f"every {count} days"
            return f"every {count} {unit}"
    return f"every {seconds} s"  # pragma: no cover - 1 divides everything


def interval_parts(seconds: int | None) -> tuple[int | str, str]:
    """(value, unit) for the schedule form: 3600 -> (1, "h"); none -> ("", "min")."""
    if not seconds:
        return "", "min"
    for size, unit in _UNITS:
        if seconds % size == 0:
            return seconds // size, unit
    return seconds, "s"  # pragma: no cover - 1 divides everything


def days_words(days: list[str]) -> str:
    """`Mon-Fri`, `Sat,Sun`, `every day`: runs of consecutive weekdays joined."""
    chosen = [day in days for day in WEEKDAYS]
    if all(chosen):
        return "every day"
    runs: list[str] = []
    index = 0
    while index < 7:
        if not chosen[index]:
            index += 1
            continue
        end = index
        while end + 1 < 7 and chosen[end + 1]:
            end += 1
        first, last = WEEKDAYS[index].title(), WEEKDAYS[end].title()
        runs.append(
            first if end == index else f"{first}-{last}" if end > index + 1 else f"{first},{last}"
        )
        index = end + 1
    return ",".join(runs)


def schedule_words(config: dict[str, Any] | None) -> str:
    """The schedule as a person says it: `every 5 min, Mon-Fri 08:00-18:00 Europe/Berlin`."""
    trigger = (config or {}).get("trigger") or {}
    if not trigger.get("enabled"):
        return "off"
    if trigger.get("interval_seconds"):
        words = interval_words(int(trigger["interval_seconds"]))
    elif trigger.get("cron"):
        words = f"cron {trigger['cron']}"
    else:
        return "off"
    windows = [
        f"{days_words(window.get('days') or list(WEEKDAYS))} {window['start']}-{window['end']}"
        for window in trigger.get("active_hours") or []
    ]
    if windows:
        words += ", " + "; ".join(windows)
    zone = trigger.get("timezone") or "UTC"
    if windows or trigger.get("cron"):
        words += f" {zone}"
    return words


def moment(value: datetime | None) -> str:
    """`2026-12-02 06:30:10 UTC`, or an em dash for never."""
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(value: datetime | None) -> str:
    return value.astimezone(UTC).isoformat() if value is not None else ""


def ago(value: datetime | None, now: datetime | None = None) -> str:
    """`12 s ago`, `5 min ago`, `3 h ago`, `2 days ago`, or `never`."""
    if value is None:
        return "never"
    seconds = int(((now or datetime.now(UTC)) - value).total_seconds())
    if seconds < 0:
        return "in " + ago(now or datetime.now(UTC), value).removesuffix(" ago")
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


def size(value: float | int | None) -> str:
    if value is None:
        return "—"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} PiB"


FILTERS = {
    "schedule_words": schedule_words,
    "moment": moment,
    "iso": iso,
    "ago": ago,
    "size": size,
    "interval_parts": interval_parts,
}
