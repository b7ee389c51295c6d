"""Schedule slots: epoch-anchored intervals, cron and active hours in a zone, across DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cloud.core.errors import ApiError
from cloud.devices.config_document import DeviceConfig, TriggerSchedule
from cloud.devices.service import check_schedule_limits
from cloud.scheduling.slots import due_slots, first_slot, next_slot_after
from tests.support.factories import Factory
from tests.support.live_server import LiveServer

BERLIN = ZoneInfo("Europe/Berlin")
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]


def _schedule(**fields: Any) -> TriggerSchedule:
    return TriggerSchedule(enabled=True, **fields)


def _slots(schedule: TriggerSchedule, after: datetime, count: int) -> list[datetime]:
    slots = []
    for _ in range(count):
        nxt = next_slot_after(schedule, after)
        assert nxt is not None
        slots.append(nxt)
        after = nxt
    return slots


def _berlin(slots: list[datetime]) -> list[str]:
    return [s.astimezone(BERLIN).strftime("%m-%d %H:%M %Z") for s in slots]


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_interval_slots_are_epoch_anchored_whatever_the_start() -> None:
    schedule = _schedule(interval_seconds=300)
    late = _utc(2026, 1, 1, 12, 3, 17)
    assert _slots(schedule, late, 3) == [
        _utc(2026, 1, 1, 12, 5),
        _utc(2026, 1, 1, 12, 10),
        _utc(2026, 1, 1, 12, 15),
    ]
    assert next_slot_after(schedule, _utc(2026, 1, 1, 12, 5)) == _utc(2026, 1, 1, 12, 10)


def test_interval_does_not_drift_over_a_long_run() -> None:
    schedule = _schedule(interval_seconds=7)
    slots = _slots(schedule, _utc(2026, 1, 1), 10_000)
    assert all(int(s.timestamp()) % 7 == 0 for s in slots)
    assert slots[-1] - slots[0] == timedelta(seconds=7 * 9_999)


def test_disabled_or_ruleless_schedule_has_no_slots() -> None:
    assert next_slot_after(None, _utc(2026, 1, 1)) is None
    assert (
        next_slot_after(TriggerSchedule(enabled=False, interval_seconds=5), _utc(2026, 1, 1))
        is None
    )
    assert first_slot({}) is None
    assert first_slot({"trigger": {"enabled": False, "cron": "* * * * *"}}) is None


def test_cron_is_read_in_the_schedule_time_zone() -> None:
    schedule = _schedule(cron="0 9 * * *", timezone="America/New_York")
    assert _slots(schedule, _utc(2026, 1, 1), 2) == [
        _utc(2026, 1, 1, 14),  # 09:00 EST
        _utc(2026, 1, 2, 14),
    ]


def test_cron_on_spring_forward_day_fires_missing_times_once_after_the_gap() -> None:
    schedule = _schedule(cron="*/30 * * * *", timezone="Europe/Berlin")
    slots = _slots(schedule, _utc(2026, 3, 28, 23, 59), 6)
    assert _berlin(slots) == [
        "03-29 01:00 CET",
        "03-29 01:30 CET",
        "03-29 03:00 CEST",  # 02:00 and 02:30 do not exist that night
        "03-29 03:30 CEST",
        "03-29 04:00 CEST",
        "03-29 04:30 CEST",
    ]
    daily = _schedule(cron="30 2 * * *", timezone="Europe/Berlin")
    assert _berlin(_slots(daily, _utc(2026, 3, 27), 4)) == [
        "03-27 02:30 CET",
        "03-28 02:30 CET",
        "03-29 03:00 CEST",  # still once that day, at the end of the gap
        "03-30 02:30 CEST",
    ]


def test_cron_on_fall_back_day_fires_repeated_times_once() -> None:
    schedule = _schedule(cron="*/30 * * * *", timezone="Europe/Berlin")
    slots = _slots(schedule, _utc(2026, 10, 24, 23, 0), 5)
    assert _berlin(slots) == [
        "10-25 01:30 CEST",
        "10-25 02:00 CEST",
        "10-25 02:30 CEST",
        "10-25 03:00 CET",  # 02:00 and 02:30 CET (the repeat) are not fired again
        "10-25 03:30 CET",
    ]
    assert slots[3] - slots[2] == timedelta(minutes=90)
    daily = _schedule(cron="30 2 * * *", timezone="Europe/Berlin")
    assert _berlin(_slots(daily, _utc(2026, 10, 24), 3)) == [
        "10-24 02:30 CEST",
        "10-25 02:30 CEST",
        "10-26 02:30 CET",
    ]
    # Asked from inside the repeated hour, the next slot is after it, not in the past.
    inside_repeat = _utc(2026, 10, 25, 1, 10)  # 02:10 CET
    assert _berlin([next_slot_after(schedule, inside_repeat)]) == ["10-25 03:00 CET"]


def test_interval_with_weekday_active_hours_in_a_zone() -> None:
    schedule = _schedule(
        interval_seconds=3600,
        timezone="Europe/Berlin",
        active_hours=[{"days": WEEKDAYS, "start": "09:00", "end": "12:00"}],
    )
    # Thursday before the spring-forward weekend to the Monday after it.
    assert _berlin(_slots(schedule, _utc(2026, 3, 26), 8)) == [
        "03-26 09:00 CET",
        "03-26 10:00 CET",
        "03-26 11:00 CET",
        "03-27 09:00 CET",
        "03-27 10:00 CET",
        "03-27 11:00 CET",
        "03-30 09:00 CEST",
        "03-30 10:00 CEST",
    ]


def test_overnight_window_across_spring_forward() -> None:
    schedule = _schedule(
        interval_seconds=3600,
        timezone="Europe/Berlin",
        active_hours=[{"days": ["sat"], "start": "22:00", "end": "04:00"}],
    )
    assert _berlin(_slots(schedule, _utc(2026, 3, 26), 6)) == [
        "03-28 22:00 CET",
        "03-28 23:00 CET",
        "03-29 00:00 CET",
        "03-29 01:00 CET",
        "03-29 03:00 CEST",  # the night is an hour shorter
        "04-04 22:00 CEST",
    ]


def test_window_across_fall_back_counts_the_repeated_hour_for_intervals() -> None:
    schedule = _schedule(
        interval_seconds=3600,
        timezone="Europe/Berlin",
        active_hours=[{"days": ["sun"], "start": "01:00", "end": "04:00"}],
    )
    # Interval slots are instants: the window holds four hours that night, so four slots.
    assert _berlin(_slots(schedule, _utc(2026, 10, 24), 5)) == [
        "10-25 01:00 CEST",
        "10-25 02:00 CEST",
        "10-25 02:00 CET",
        "10-25 03:00 CET",
        "11-01 01:00 CET",
    ]


def test_cron_with_active_hours_keeps_only_slots_inside_windows() -> None:
    schedule = _schedule(
        cron="0,30 * * * *",
        timezone="Asia/Tokyo",
        active_hours=[{"days": ["mon"], "start": "08:00", "end": "09:00"}],
    )
    tokyo = ZoneInfo("Asia/Tokyo")
    slots = _slots(schedule, _utc(2026, 6, 1), 3)  # Monday 09:00 in Tokyo: window just closed
    assert [s.astimezone(tokyo).strftime("%a %m-%d %H:%M") for s in slots] == [
        "Mon 06-08 08:00",
        "Mon 06-08 08:30",
        "Mon 06-15 08:00",
    ]


def test_cron_that_never_matches_has_no_slot() -> None:
    assert next_slot_after(_schedule(cron="0 0 30 2 *"), _utc(2026, 1, 1)) is None


def test_due_slots_counts_an_outage_and_points_past_now() -> None:
    interval = _schedule(interval_seconds=10)
    due = due_slots(interval, _utc(2026, 1, 1), _utc(2026, 1, 1, 0, 1, 5))
    assert (due.latest, due.count, due.following) == (
        _utc(2026, 1, 1, 0, 1),
        7,
        _utc(2026, 1, 1, 0, 1, 10),
    )
    cron = _schedule(cron="*/10 * * * *")
    due = due_slots(cron, _utc(2026, 1, 1), _utc(2026, 1, 1, 1, 0))
    assert (due.latest, due.count, due.following) == (
        _utc(2026, 1, 1, 1, 0),
        7,
        _utc(2026, 1, 1, 1, 10),
    )
    assert due_slots(cron, _utc(2026, 1, 2), _utc(2026, 1, 1)).count == 0


def test_interval_below_runtime_minimum_is_refused() -> None:
    config = DeviceConfig.model_validate({"trigger": {"enabled": True, "interval_seconds": 5}})
    check_schedule_limits(config, 5)
    with pytest.raises(ApiError) as refused:
        check_schedule_limits(config, 10)
    assert refused.value.status_code == 422


def test_schedule_that_never_fires_is_refused() -> None:
    never = [
        {"enabled": True, "cron": "0 0 30 2 *"},
        # Daily slots fall at 00:00 UTC, never inside a 10:00-11:00 UTC window.
        {
            "enabled": True,
            "interval_seconds": 86400,
            "active_hours": [{"start": "10:00", "end": "11:00"}],
        },
    ]
    for trigger in never:
        config = DeviceConfig.model_validate({"trigger": trigger})
        with pytest.raises(ApiError, match="never fires"):
            check_schedule_limits(config, 1)
    check_schedule_limits(
        DeviceConfig.model_validate({"trigger": {**never[1], "enabled": False}}), 1
    )


def test_register_and_config_change_set_next_trigger_at(
    start_server: Any, factory: Factory
) -> None:
    server: LiveServer = start_server(min_interval_seconds=10)
    user = factory.user()
    every_minute = {"trigger": {"enabled": True, "interval_seconds": 60}}
    with server.client(headers=user.headers) as client:
        before = datetime.now(UTC)
        created = client.post("/v1/devices", json={"device_id": "CAM1", "config": every_minute})
        assert created.status_code == 201
        next_at = datetime.fromisoformat(created.json()["next_trigger_at"])
        assert before < next_at <= before + timedelta(seconds=60)
        assert next_at.timestamp() % 60 == 0
        assert created.json()["skipped_slots"] == 0

        too_fast = {"trigger": {"enabled": True, "interval_seconds": 5}}
        refused = client.patch("/v1/devices/CAM1", json={"config": too_fast})
        assert refused.status_code == 422
        assert refused.json() == {"detail": "interval_seconds must be at least 10"}
        refused = client.post("/v1/devices", json={"device_id": "CAM2", "config": too_fast})
        assert refused.status_code == 422

        hourly = {"trigger": {"enabled": True, "cron": "0 * * * *"}}
        changed = client.patch("/v1/devices/CAM1", json={"config": hourly}).json()
        assert datetime.fromisoformat(changed["next_trigger_at"]).minute == 0

        camera_only = {**hourly, "camera": {"warmup": 2}}
        unchanged = client.patch("/v1/devices/CAM1", json={"config": camera_only}).json()
        assert unchanged["next_trigger_at"] == changed["next_trigger_at"]

        disabled = {"trigger": {"enabled": False}}
        cleared = client.patch("/v1/devices/CAM1", json={"config": disabled}).json()
        assert cleared["next_trigger_at"] is None
