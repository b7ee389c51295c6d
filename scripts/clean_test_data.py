"""Delete the test org's captures, triggers and snapshot files; nothing of any other org.

The org, user and devices stay (setup_test_device keeps working); asks before deleting unless --yes.
"""

from __future__ import annotations

import argparse
import logging
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as `python scripts/x.py`: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from cloud.captures.storage import SnapshotStore, build_store  # noqa: E402
from cloud.core.config import Settings  # noqa: E402
from cloud.models import Capture, Device, Org, Trigger  # noqa: E402
from scripts.common import (  # noqa: E402
    DATABASE_HELP,
    EXIT_FAILED,
    EXIT_OK,
    TEST_ORG_NAME,
    ScriptError,
    add_database_arguments,
    configure_logging,
    fail,
    open_database,
)

logger = logging.getLogger(__name__)
PROG = "clean_test_data"


@dataclass
class Plan:
    """What a clean would delete."""

    org_id: uuid.UUID
    device_ids: list[str]
    capture_count: int
    trigger_count: int
    snapshot_keys: list[str]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"python -m scripts.{PROG}",
        description=__doc__,
        epilog=f"Only org {TEST_ORG_NAME!r} is touched. " + DATABASE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    parser.add_argument(
        "--device-id", default=None, help="only this device of the test org (default: all of them)"
    )
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    add_database_arguments(parser)
    return parser


def plan_clean(session: Session, device_id: str | None) -> Plan | None:
    """What the test org (or one of its devices) holds; None when there is no test org."""
    org_id = session.scalar(sa.select(Org.org_id).where(Org.name == TEST_ORG_NAME))
    if org_id is None:
        return None
    devices = sa.select(Device.device_id).where(Device.org_id == org_id)
    if device_id is not None:
        devices = devices.where(Device.device_id == device_id)
    device_ids = list(session.scalars(devices.order_by(Device.device_id)))
    if device_id is not None and not device_ids:
        raise ScriptError(f"device {device_id!r} is not in the test org; nothing of it is touched")
    keys = list(
        session.scalars(sa.select(Capture.snapshot_key).where(Capture.device_id.in_(device_ids)))
    )
    triggers = session.scalar(sa.select(sa.func.count()).where(Trigger.device_id.in_(device_ids)))
    return Plan(org_id, device_ids, len(keys), triggers or 0, keys)


def delete_rows(session: Session, plan: Plan) -> None:
    """Delete the plan's captures and triggers in one transaction."""
    # Triggers and captures point at each other; unlink first so the order does not matter.
    session.execute(
        sa.update(Trigger).where(Trigger.device_id.in_(plan.device_ids)).values(capture_id=None)
    )
    session.execute(sa.delete(Capture).where(Capture.device_id.in_(plan.device_ids)))
    session.execute(sa.delete(Trigger).where(Trigger.device_id.in_(plan.device_ids)))
    session.commit()


def open_store(settings: Settings) -> SnapshotStore:
    """The snapshot store the server writes to (opened before any row is deleted: fail early)."""
    try:
        return build_store(settings)
    except RuntimeError as exc:
        raise ScriptError(f"snapshot store unusable: {exc}") from exc


def delete_snapshots(store: SnapshotStore, keys: list[str]) -> int:
    """Delete the snapshots behind `keys`; the count of keys handled (malformed ones skipped)."""
    removed = 0
    for key in keys:
        try:
            store.delete(key)
        except ValueError:
            # The store refuses keys it could not have written (e.g. ones escaping its root).
            logger.warning("skipping malformed snapshot key %r", key)
            continue
        removed += 1
    return removed


def _confirm(plan: Plan) -> bool:
    devices = ", ".join(plan.device_ids) or "none"
    question = (
        f"Delete {plan.capture_count} captures, {plan.trigger_count} triggers and their snapshot "
        f"files of org {TEST_ORG_NAME!r} (devices: {devices})? [y/N] "
    )
    try:
        answer = input(question)
    except EOFError:
        return False
    return answer.strip().lower() in {"y", "yes"}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    try:
        with open_database(args.data_dir) as database, database.sessions() as session:
            plan = plan_clean(session, args.device_id)
            if plan is None:
                print(f"No test org {TEST_ORG_NAME!r}: nothing to clean.")
                return EXIT_OK
            if plan.capture_count == 0 and plan.trigger_count == 0:
                print("No test captures or triggers: nothing to clean.")
                return EXIT_OK
            if not args.yes and not _confirm(plan):
                print("Aborted; nothing deleted.")
                return EXIT_FAILED
            store = open_store(database.settings)
            delete_rows(session, plan)
            removed = delete_snapshots(store, plan.snapshot_keys)
    except ScriptError as exc:
        return fail(PROG, str(exc))
    print(
        f"Deleted {plan.capture_count} captures, {plan.trigger_count} triggers and "
        f"{removed} snapshots of {', '.join(plan.device_ids)}."
    )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
