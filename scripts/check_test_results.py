"""Report a device's captures and triggers and check the trigger-lifecycle invariants.

Exit 0 when every invariant holds, 1 when one is broken or the device is unknown, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

if __package__ in (None, ""):  # run as `python scripts/x.py`: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cloud.models import Device  # noqa: E402
from scripts.common import (  # noqa: E402
    DATABASE_HELP,
    EXIT_FAILED,
    EXIT_OK,
    TEST_DEVICE_ID,
    ScriptError,
    add_database_arguments,
    configure_logging,
    fail,
    open_database,
)
from scripts.results import EXPIRY_GRACE, Results, collect_results  # noqa: E402

PROG = "check_test_results"
RULE = "=" * 70
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

INVARIANTS_HELP = f"""invariants checked (each an [OK] or [FAIL] line):
  no open (pending/sent) trigger past its expires_at, allowing {int(EXPIRY_GRACE.total_seconds())} s
    for the expiry reaper's period;
  executed triggers = captures carrying one of those trigger ids;
  every capture's trigger belongs to the capture's device;
  no trigger executed twice: each executed trigger links exactly one capture that links it back,
    and no capture points at a trigger that is not executed;
  at most one open scheduled trigger (schedules advance, triggers do not pile up);
  triggers = executed + failed + expired + open-not-yet-expired.
--since limits the report to triggers created and captures received since then.

{DATABASE_HELP}"""


def parse_since(text: str) -> datetime:
    """An ISO 8601 time (naive = UTC) or a duration back from now: 90s, 10m, 2h, 1d."""
    match = _DURATION.match(text.strip())
    if match:
        amount, unit = match.groups()
        return datetime.now(UTC) - timedelta(seconds=float(amount) * _UNIT_SECONDS[unit])
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO 8601 time or a duration like 10m, got {text!r}"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"python -m scripts.{PROG}",
        description=__doc__,
        epilog=INVARIANTS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--device-id", default=TEST_DEVICE_ID, help="device to report (default: %(default)s)"
    )
    parser.add_argument(
        "--since",
        type=parse_since,
        default=None,
        help="only triggers created / captures received since: ISO time or 90s, 10m, 2h, 1d",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    add_database_arguments(parser)
    return parser


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def render_report(results: Results) -> str:
    """The original report layout, with one [OK]/[FAIL] line per invariant."""
    captures, by_type, by_status = (
        results.captures,
        results.triggers_by_type,
        results.triggers_by_status,
    )
    lines = [
        RULE,
        "CLOUD-TRIGGERED CAMERA TEST RESULTS",
        RULE,
        "",
        f"Device: {results.device_id}",
        f"Status: {results.device_status}",
        f"Last Seen: {_when(results.last_seen_at)}",
    ]
    if results.since is not None:
        lines.append(f"Since: {_when(results.since)}")
    lines += [
        "",
        "[CAPTURES]",
        f"Total Captures: {captures['total']}",
        f"  - Pending Evaluation: {captures['pending']}",
        f"  - Evaluation Completed: {captures['completed']}",
        f"  - Evaluation Failed: {captures['failed']}",
        f"  - With a trigger: {captures['with_trigger']}",
        f"  - Event (no trigger): {captures['total'] - captures['with_trigger']}",
        "",
        "[TRIGGERS]",
        f"Total Triggers: {sum(by_status.values())}",
        f"  - Scheduled: {by_type['scheduled']}",
        f"  - Manual: {by_type['manual']}",
    ]
    if by_type.get("event"):
        lines.append(f"  - Event: {by_type['event']}")
    lines += [f"  - {status.capitalize()}: {count}" for status, count in by_status.items()]
    lines.append("")
    device_line = (
        "Device is active" if results.device_status == "active" else "Device is not active"
    )
    lines.append(f"[{'OK' if results.device_status == 'active' else '--'}] {device_line}")
    for check in results.checks:
        line = f"[{'OK' if check.ok else 'FAIL'}] {check.detail}"
        if check.offenders:
            line += f" (e.g. {', '.join(check.offenders[:3])})"
        lines.append(line)
    lines += [
        RULE,
        "RESULT: " + ("all invariants hold" if results.ok else "INVARIANT BROKEN"),
        RULE,
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    try:
        with open_database(args.data_dir) as database, database.sessions() as session:
            device = session.get(Device, args.device_id)
            if device is None:
                raise ScriptError(f"no device {args.device_id!r} (run setup_test_device first)")
            results = collect_results(session, device, args.since)
    except ScriptError as exc:
        if args.json:
            print(json.dumps({"ok": False, "error": str(exc)}))
        return fail(PROG, str(exc))
    if args.json:
        print(json.dumps(results.as_json()))
    else:
        print(render_report(results))
    return EXIT_OK if results.ok else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
