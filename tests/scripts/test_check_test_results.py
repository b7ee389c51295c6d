"""check_test_results: the original report's counts, and exit 1 for each broken invariant."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cloud.models import EvaluationStatus, TriggerStatus, TriggerType
from scripts import check_test_results
from tests.scripts.conftest import Rows, run_script
from tests.support.factories import Factory

DEVICE = "TEST_CAM_01"


def _check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = check_test_results.main(["--json", "--device-id", DEVICE, *args])
    return code, json.loads(capsys.readouterr().out)


def _failed(report: dict[str, Any]) -> set[str]:
    return {check["name"] for check in report["checks"] if not check["ok"]}


@pytest.fixture
def device(factory: Factory) -> str:
    return factory.device(device_id=DEVICE).device_id


def _healthy_history(rows: Rows, device: str) -> None:
    """2 executed (scheduled + manual), 1 failed, 1 expired, 1 open, 1 event capture."""
    rows.capture(device, rows.trigger(device, TriggerStatus.SENT, TriggerType.SCHEDULED))
    rows.capture(
        device,
        rows.trigger(device, TriggerStatus.SENT),
        evaluation_status=EvaluationStatus.PENDING,
    )
    rows.trigger(device, TriggerStatus.FAILED, error="camera unplugged")
    rows.trigger(device, TriggerStatus.EXPIRED, expires_in=timedelta(minutes=-1))
    rows.trigger(device, TriggerStatus.PENDING)
    rows.capture(device, None)


def test_healthy_history_counts_and_exit_zero(
    script_env: dict[str, str], device: str, rows: Rows, capsys: pytest.CaptureFixture[str]
) -> None:
    _healthy_history(rows, device)
    code, report = _check(capsys)
    assert code == 0, report
    assert report["ok"] is True and not _failed(report)
    assert report["captures"] == {
        "total": 3,
        "pending": 1,
        "completed": 2,
        "failed": 0,
        "with_trigger": 2,
    }
    assert report["triggers"]["total"] == 5
    assert report["triggers"]["by_type"] == {"scheduled": 1, "manual": 4, "event": 0}
    assert report["triggers"]["by_status"] == {
        "pending": 1,
        "sent": 0,
        "executed": 2,
        "failed": 1,
        "expired": 1,
    }
    assert report["device"]["status"] == "active"


def test_text_report_has_the_original_layout_and_ok_lines(
    script_env: dict[str, str], device: str, rows: Rows, capsys: pytest.CaptureFixture[str]
) -> None:
    _healthy_history(rows, device)
    assert check_test_results.main(["--device-id", DEVICE]) == 0
    out = capsys.readouterr().out
    for line in (
        "CLOUD-TRIGGERED CAMERA TEST RESULTS",
        "Device: TEST_CAM_01",
        "Status: active",
        "Last Seen: never",
        "Total Captures: 3",
        "Total Triggers: 5",
        "  - Executed: 2",
        "[OK] 2 executed triggers = 2 captures with a trigger id",
        "[OK] 5 triggers = 2 executed + 1 failed + 1 expired + 1 open (not yet expired)",
    ):
        assert line in out
    assert "[FAIL]" not in out


def _open_past_expiry(rows: Rows, device: str, factory: Factory) -> None:
    rows.trigger(device, TriggerStatus.SENT, expires_in=timedelta(seconds=-30))


def _executed_without_capture(rows: Rows, device: str, factory: Factory) -> None:
    rows.trigger(device, TriggerStatus.EXECUTED)


def _capture_of_another_devices_trigger(rows: Rows, device: str, factory: Factory) -> None:
    other = factory.device().device_id
    rows.capture(device, rows.trigger(other, TriggerStatus.SENT))


def _capture_for_expired_trigger(rows: Rows, device: str, factory: Factory) -> None:
    trigger = rows.trigger(device, TriggerStatus.EXPIRED, expires_in=timedelta(seconds=-1))
    rows.capture(device, trigger, link=False)


def _executed_pointing_at_another_capture(rows: Rows, device: str, factory: Factory) -> None:
    first = rows.trigger(device, TriggerStatus.SENT)
    record = rows.capture(device, first)
    rows.trigger(device, TriggerStatus.EXECUTED, capture_id=record)


def _scheduled_piled_up(rows: Rows, device: str, factory: Factory) -> None:
    rows.trigger(device, TriggerStatus.SENT, TriggerType.SCHEDULED)
    rows.trigger(device, TriggerStatus.PENDING, TriggerType.SCHEDULED)


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (_open_past_expiry, {"no_open_trigger_past_expiry", "triggers_accounted_for"}),
        (
            _executed_without_capture,
            {"executed_triggers_equal_captures", "no_trigger_executed_twice"},
        ),
        (_capture_of_another_devices_trigger, {"capture_trigger_same_device"}),
        (
            _capture_for_expired_trigger,
            {"executed_triggers_equal_captures", "no_trigger_executed_twice"},
        ),
        (
            _executed_pointing_at_another_capture,
            {"executed_triggers_equal_captures", "no_trigger_executed_twice"},
        ),
        (_scheduled_piled_up, {"scheduled_triggers_not_piled_up"}),
    ],
)
def test_each_broken_invariant_fails_with_exit_one(
    script_env: dict[str, str],
    device: str,
    rows: Rows,
    factory: Factory,
    capsys: pytest.CaptureFixture[str],
    breakage: Callable[[Rows, str, Factory], None],
    expected: set[str],
) -> None:
    _healthy_history(rows, device)
    breakage(rows, device, factory)
    code, report = _check(capsys)
    assert code == 1
    assert report["ok"] is False
    assert _failed(report) == expected


def test_open_trigger_within_the_reaper_grace_is_not_a_failure(
    script_env: dict[str, str], device: str, rows: Rows, capsys: pytest.CaptureFixture[str]
) -> None:
    rows.trigger(device, TriggerStatus.SENT, expires_in=timedelta(seconds=-1))
    code, report = _check(capsys)
    assert code == 0, _failed(report)


def test_failure_lines_name_the_offending_trigger(
    script_env: dict[str, str], device: str, rows: Rows, capsys: pytest.CaptureFixture[str]
) -> None:
    stuck = rows.trigger(device, TriggerStatus.PENDING, expires_in=timedelta(minutes=-2))
    assert check_test_results.main(["--device-id", DEVICE]) == 1
    out = capsys.readouterr().out
    assert f"[FAIL] 1 open triggers past their expiry (+5 s grace) (e.g. {stuck})" in out
    assert "RESULT: INVARIANT BROKEN" in out


def test_since_leaves_out_older_rows(
    script_env: dict[str, str], device: str, rows: Rows, capsys: pytest.CaptureFixture[str]
) -> None:
    long_ago = datetime.now(UTC) - timedelta(hours=2)
    rows.trigger(device, TriggerStatus.SENT, expires_in=timedelta(hours=-1), created_at=long_ago)
    rows.capture(device, rows.trigger(device, TriggerStatus.SENT))
    assert _check(capsys)[0] == 1
    code, report = _check(capsys, "--since", "1h")
    assert code == 0
    assert report["triggers"]["total"] == 1 and report["captures"]["total"] == 1
    iso = (datetime.now(UTC) - timedelta(minutes=30)).isoformat()
    assert _check(capsys, "--since", iso)[0] == 0


def test_unknown_device_exits_one(
    script_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert check_test_results.main(["--device-id", "NOPE"]) == 1
    assert "no device 'NOPE'" in capsys.readouterr().err


def test_other_devices_rows_do_not_count(
    script_env: dict[str, str],
    device: str,
    rows: Rows,
    factory: Factory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    other = factory.device().device_id
    rows.trigger(other, TriggerStatus.SENT, expires_in=timedelta(minutes=-5))
    rows.capture(other, None)
    code, report = _check(capsys)
    assert code == 0
    assert report["triggers"]["total"] == 0 and report["captures"]["total"] == 0


@pytest.mark.parametrize(
    "how", [["scripts/check_test_results.py"], ["-m", "scripts.check_test_results"]]
)
def test_runs_as_a_file_and_as_a_module_with_its_exit_code(
    script_env: dict[str, str], device: str, rows: Rows, how: list[str]
) -> None:
    rows.trigger(device, TriggerStatus.SENT, expires_in=timedelta(minutes=-5))
    result = run_script([*how, "--device-id", DEVICE], script_env)
    assert result.returncode == 1, result.stderr
    assert "[FAIL]" in result.stdout


def test_unreachable_database_is_one_line_and_exit_one(
    script_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = script_env["DATABASE_URL"].replace("/visant_test_", "/visant_missing_")
    monkeypatch.setenv("DATABASE_URL", missing)
    assert check_test_results.main([]) == 1
    err = capsys.readouterr().err
    assert err.startswith("check_test_results: error: cannot use the database")
    assert "Traceback" not in err
