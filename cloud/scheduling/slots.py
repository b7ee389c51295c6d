"""Schedule slots: pure functions from a device's `trigger` config to the instants it is owed.

Rules:
- Interval slots are anchored to the Unix epoch: slot = k * interval_seconds (UTC), never
  "now + interval", so a schedule does not drift however late a tick runs.
- Cron expressions (5 fields) and active-hours windows are read in the schedule's time zone.
- A wall time that does not exist (spring-forward gap) fires at the first instant after the gap;
  a wall time that occurs twice (fall-back overlap) fires at its first occurrence only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, croniter

from cloud.devices.config_document import ActiveHours, TriggerSchedule

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_STEPS = 2000  # window jumps / cron steps before a schedule is declared slot-less
MAX_CATCHUP = 10_000  # due slots walked one by one after an outage (cron, active hours)
_ONE_SECOND = timedelta(seconds=1)


def has_slots(schedule: TriggerSchedule | None) -> bool:
    """True when the schedule is enabled and names an interval or a cron expression."""
    return bool(
        schedule is not None
        and schedule.enabled
        and (schedule.interval_seconds is not None or schedule.cron is not None)
    )


def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def wall_to_instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant of a naive wall time in `zone` (gap: the gap's end; overlap: first)."""
    instant = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == wall:
        return instant
    # `wall` falls in a spring-forward gap: find the transition (the first existing instant).
    low = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)  # before the transition
    high = instant  # after it
    while high - low > _ONE_SECOND:
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == high.astimezone(zone).utcoffset():
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)


def _window_contains(window: ActiveHours, local: datetime) -> bool:
    start, end = time.fromisoformat(window.start), time.fromisoformat(window.end)
    clock = local.time()
    today = WEEKDAYS[local.weekday()]
    if start < end:
        return today in window.days and start <= clock < end
    # Overnight (or 24-hour when start == end): `days` names the day the window opens.
    yesterday = WEEKDAYS[(local.weekday() - 1) % 7]
    return (today in window.days and clock >= start) or (yesterday in window.days and clock < end)


def in_active_hours(schedule: TriggerSchedule, instant: datetime) -> bool:
    """True when `instant` lies in one of the schedule's windows (no windows: always)."""
    if not schedule.active_hours:
        return True
    local = instant.astimezone(_zone(schedule.timezone))
    return any(_window_contains(window, local) for window in schedule.active_hours)


def _next_window_opening(schedule: TriggerSchedule, after: datetime) -> datetime | None:
    """The first instant > `after` at which one of the schedule's windows opens."""
    zone = _zone(schedule.timezone)
    first_day: date = after.astimezone(zone).date() - timedelta(days=1)
    best: datetime | None = None
    for offset in range(9):
        day = first_day + timedelta(days=offset)
        for window in schedule.active_hours or ():
            if WEEKDAYS[day.weekday()] not in window.days:
                continue
            opening = wall_to_instant(datetime.combine(day, time.fromisoformat(window.start)), zone)
            if opening > after and (best is None or opening < best):
                best = opening
    return best


def _next_interval_slot(interval: int, after: datetime) -> datetime:
    elapsed = int((after - EPOCH).total_seconds() // interval) + 1
    return EPOCH + timedelta(seconds=elapsed * interval)


def _next_cron_slot(expression: str, zone: ZoneInfo, after: datetime) -> datetime | None:
    """The first instant > `after` whose wall time in `zone` matches `expression`."""
    # Cron times before `after`'s wall time map to instants <= `after` (gap times map to the
    # gap's end, overlap times to their first occurrence), so the search starts there.
    wall = after.astimezone(zone).replace(tzinfo=None, microsecond=0)
    iterator = croniter(expression, wall)
    try:
        for _ in range(MAX_STEPS):
            candidate = wall_to_instant(iterator.get_next(datetime), zone)
            if candidate > after:
                return candidate
    except CroniterBadDateError:  # e.g. "0 0 30 2 *": a date that never comes
        return None
    return None


def _next_base_slot(schedule: TriggerSchedule, after: datetime) -> datetime | None:
    if schedule.interval_seconds is not None:
        return _next_interval_slot(schedule.interval_seconds, after)
    assert schedule.cron is not None
    return _next_cron_slot(schedule.cron, _zone(schedule.timezone), after)


def next_slot_after(schedule: TriggerSchedule | None, after: datetime) -> datetime | None:
    """The first slot strictly after `after` (UTC), or None when the schedule has none."""
    if not has_slots(schedule):
        return None
    assert schedule is not None
    after = after.astimezone(UTC)
    candidate = _next_base_slot(schedule, after)
    for _ in range(MAX_STEPS):
        if candidate is None or in_active_hours(schedule, candidate):
            return candidate
        opening = _next_window_opening(schedule, candidate)
        if opening is None:
            return None
        # The first base slot at or after the opening.
        candidate = _next_base_slot(schedule, opening - timedelta(microseconds=1))
    return None


@dataclass(frozen=True)
class DueSlots:
    """The slots of a schedule that are due at some moment."""

    latest: datetime | None  # the most recent due slot (the one a trigger may be made for)
    count: int  # how many slots are due, `latest` included
    following: datetime | None  # the first slot after the moment (the new next_trigger_at)


def due_slots(schedule: TriggerSchedule | None, first: datetime, now: datetime) -> DueSlots:
    """Slots from `first` (the stored next slot) up to `now` inclusive, and the one after.

    Interval schedules are counted exactly by arithmetic; others are walked, at most
    MAX_CATCHUP slots (a longer outage is counted as MAX_CATCHUP).
    """
    if not has_slots(schedule) or first > now:
        return DueSlots(None, 0, first if has_slots(schedule) else None)
    assert schedule is not None
    if schedule.interval_seconds is not None and not schedule.active_hours:
        step = timedelta(seconds=schedule.interval_seconds)
        count = int((now - first) // step) + 1
        return DueSlots(
            first + step * (count - 1), count, _next_interval_slot(schedule.interval_seconds, now)
        )
    latest, count, slot = first, 0, first
    while slot is not None and slot <= now and count < MAX_CATCHUP:
        latest, count = slot, count + 1
        slot = next_slot_after(schedule, slot)
    if slot is not None and slot <= now:
        return DueSlots(None, count, next_slot_after(schedule, now))
    return DueSlots(latest, count, slot)


@lru_cache(maxsize=4096)
def _parse(document: str) -> TriggerSchedule:
    return TriggerSchedule.model_validate_json(document)


def schedule_of(config: dict[str, Any] | None) -> TriggerSchedule | None:
    """The trigger schedule stored in a device config document (validated, cached)."""
    section = (config or {}).get("trigger")
    if section is None:
        return None
    return _parse(json.dumps(section, sort_keys=True))


def schedule_problem(schedule: TriggerSchedule | None, min_interval_seconds: int) -> str | None:
    """Why the runtime settings forbid this schedule, or None when they allow it."""
    if not has_slots(schedule):
        return None
    assert schedule is not None
    if schedule.interval_seconds is not None and schedule.interval_seconds < min_interval_seconds:
        return f"interval_seconds must be at least {min_interval_seconds}"
    if next_slot_after(schedule, datetime.now(UTC)) is None:
        return "the schedule never fires (no slot inside its active hours)"
    return None


def first_slot(config: dict[str, Any] | None, now: datetime | None = None) -> datetime | None:
    """The next slot owed to a device with this config from `now` on (None: no schedule)."""
    return next_slot_after(schedule_of(config), now or datetime.now(UTC))
