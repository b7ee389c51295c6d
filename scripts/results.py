"""The facts check_test_results reports: counts and the trigger-lifecycle invariants."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from cloud.models import (
    OPEN_TRIGGER_STATUSES,
    Capture,
    Device,
    EvaluationStatus,
    Trigger,
    TriggerStatus,
    TriggerType,
)

# An open trigger may outlive its expiry by up to one reaper period (VISANT_REAPER_INTERVAL_SECONDS,
# default 1 s) plus a slow transaction; past this grace it counts as never closed.
EXPIRY_GRACE = timedelta(seconds=5)


@dataclass
class Check:
    """One invariant: its [OK]/[FAIL] line and, on failure, the offending ids."""

    name: str
    ok: bool
    detail: str
    offenders: list[str] = field(default_factory=list)


@dataclass
class Results:
    device_id: str
    device_status: str
    last_seen_at: datetime | None
    since: datetime | None
    captures: dict[str, int]
    triggers_by_type: dict[str, int]
    triggers_by_status: dict[str, int]
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def as_json(self) -> dict[str, Any]:
        return {
            "device": {
                "device_id": self.device_id,
                "status": self.device_status,
                "last_seen_at": self.last_seen_at.isoformat() if self.last_seen_at else None,
            },
            "since": self.since.isoformat() if self.since else None,
            "captures": self.captures,
            "triggers": {
                "total": sum(self.triggers_by_status.values()),
                "by_type": self.triggers_by_type,
                "by_status": self.triggers_by_status,
            },
            "checks": [check.__dict__ for check in self.checks],
            "ok": self.ok,
        }


def _ids(rows: Any, limit: int = 10) -> list[str]:
    return [str(row) for row in list(rows)[:limit]]


class _Scope:
    """The rows reported: one device's triggers created / captures received since `since`."""

    def __init__(self, device_id: str, since: datetime | None) -> None:
        self.device_id = device_id
        self.since = since

    def triggers(self) -> list[sa.ColumnElement[bool]]:
        where = [Trigger.device_id == self.device_id]
        if self.since is not None:
            where.append(Trigger.created_at >= self.since)
        return where

    def captures(self) -> list[sa.ColumnElement[bool]]:
        where = [Capture.device_id == self.device_id]
        if self.since is not None:
            where.append(Capture.received_at >= self.since)
        return where


def _count_by(session: Session, column: Any, where: list[Any], values: list[str]) -> dict[str, int]:
    rows = session.execute(sa.select(column, sa.func.count()).where(*where).group_by(column))
    counts = {value: 0 for value in values}
    for value, count in rows:
        counts[str(value.value if hasattr(value, "value") else value)] = count
    return counts


def _capture_counts(session: Session, scope: _Scope) -> dict[str, int]:
    counts = _count_by(
        session, Capture.evaluation_status, scope.captures(), [s.value for s in EvaluationStatus]
    )
    total = sum(counts.values())
    with_trigger = session.scalar(
        sa.select(sa.func.count()).where(*scope.captures(), Capture.trigger_id.is_not(None))
    )
    return {"total": total, **counts, "with_trigger": with_trigger or 0}


def _no_open_past_expiry(session: Session, scope: _Scope) -> Check:
    overdue = session.scalars(
        sa.select(Trigger.trigger_id).where(
            *scope.triggers(),
            Trigger.status.in_(OPEN_TRIGGER_STATUSES),
            Trigger.expires_at < sa.func.now() - EXPIRY_GRACE,
        )
    ).all()
    grace = int(EXPIRY_GRACE.total_seconds())
    return Check(
        "no_open_trigger_past_expiry",
        not overdue,
        f"{len(overdue)} open triggers past their expiry (+{grace} s grace)"
        if overdue
        else "no open trigger past its expiry",
        _ids(overdue),
    )


def _executed_match_captures(session: Session, scope: _Scope) -> Check:
    executed = session.scalar(
        sa.select(sa.func.count()).where(
            *scope.triggers(), Trigger.status == TriggerStatus.EXECUTED
        )
    )
    in_scope = sa.select(Trigger.trigger_id).where(*scope.triggers())
    linked = session.scalar(
        sa.select(sa.func.count()).where(Capture.trigger_id.in_(in_scope.scalar_subquery()))
    )
    ok = executed == linked
    return Check(
        "executed_triggers_equal_captures",
        ok,
        f"{executed} executed triggers = {linked} captures with a trigger id"
        if ok
        else f"{executed} executed triggers != {linked} captures with a trigger id",
    )


def _trigger_of_same_device(session: Session, scope: _Scope) -> Check:
    mismatched = session.scalars(
        sa.select(Capture.record_id)
        .join(Trigger, Trigger.trigger_id == Capture.trigger_id)
        .where(
            Trigger.device_id != Capture.device_id,
            sa.or_(sa.and_(*scope.captures()), sa.and_(*scope.triggers())),
        )
    ).all()
    return Check(
        "capture_trigger_same_device",
        not mismatched,
        f"{len(mismatched)} captures reference another device's trigger"
        if mismatched
        else "every capture's trigger belongs to its device",
        _ids(mismatched),
    )


def _executed_once(session: Session, scope: _Scope) -> Check:
    """Exactly one capture per executed trigger, linked both ways; none for any other trigger."""
    linked = aliased(Capture)
    broken_executed = session.scalars(
        sa.select(Trigger.trigger_id)
        .outerjoin(linked, linked.record_id == Trigger.capture_id)
        .where(
            *scope.triggers(),
            Trigger.status == TriggerStatus.EXECUTED,
            sa.or_(
                linked.record_id.is_(None), linked.trigger_id.is_distinct_from(Trigger.trigger_id)
            ),
        )
    ).all()
    captured_but_not_executed = session.scalars(
        sa.select(Trigger.trigger_id)
        .join(Capture, Capture.trigger_id == Trigger.trigger_id)
        .where(*scope.triggers(), Trigger.status != TriggerStatus.EXECUTED)
    ).all()
    twice = session.scalars(
        sa.select(Capture.trigger_id)
        .where(*scope.captures(), Capture.trigger_id.is_not(None))
        .group_by(Capture.trigger_id)
        .having(sa.func.count() > 1)
    ).all()
    offenders = sorted({*broken_executed, *captured_but_not_executed, *twice})
    problems = []
    if broken_executed:
        problems.append(f"{len(broken_executed)} executed without their capture")
    if captured_but_not_executed:
        problems.append(f"{len(captured_but_not_executed)} captured but not marked executed")
    if twice:
        problems.append(f"{len(twice)} with several captures")
    return Check(
        "no_trigger_executed_twice",
        not offenders,
        "; ".join(problems) if problems else "every executed trigger has exactly one capture",
        _ids(offenders),
    )


def _scheduled_not_piled(session: Session, scope: _Scope) -> Check:
    open_scheduled = session.scalar(
        sa.select(sa.func.count()).where(
            Trigger.device_id == scope.device_id,
            Trigger.trigger_type == TriggerType.SCHEDULED,
            Trigger.status.in_(OPEN_TRIGGER_STATUSES),
        )
    )
    ok = (open_scheduled or 0) <= 1
    return Check(
        "scheduled_triggers_not_piled_up",
        ok,
        f"{open_scheduled} open scheduled triggers (at most 1)"
        if not ok
        else "at most one open scheduled trigger",
    )


def _all_accounted(session: Session, scope: _Scope, by_status: dict[str, int]) -> Check:
    open_live = session.scalar(
        sa.select(sa.func.count()).where(
            *scope.triggers(),
            Trigger.status.in_(OPEN_TRIGGER_STATUSES),
            Trigger.expires_at >= sa.func.now() - EXPIRY_GRACE,
        )
    )
    total = sum(by_status.values())
    executed, failed, expired = (by_status[s.value] for s in _TERMINAL)
    accounted = executed + failed + expired + (open_live or 0)
    equation = (
        f"{executed} executed + {failed} failed + {expired} expired + {open_live} open "
        f"(not yet expired)"
    )
    return Check(
        "triggers_accounted_for",
        total == accounted,
        f"{total} triggers = {equation}"
        if total == accounted
        else f"{total} triggers != {equation}",
    )


_TERMINAL = (TriggerStatus.EXECUTED, TriggerStatus.FAILED, TriggerStatus.EXPIRED)


def collect_results(session: Session, device: Device, since: datetime | None) -> Results:
    """Counts and invariant checks for one device's triggers and captures since `since`."""
    scope = _Scope(device.device_id, since)
    by_type = _count_by(
        session, Trigger.trigger_type, scope.triggers(), [t.value for t in TriggerType]
    )
    by_status = _count_by(
        session, Trigger.status, scope.triggers(), [s.value for s in TriggerStatus]
    )
    checks = [
        _no_open_past_expiry(session, scope),
        _executed_match_captures(session, scope),
        _trigger_of_same_device(session, scope),
        _executed_once(session, scope),
        _scheduled_not_piled(session, scope),
        _all_accounted(session, scope, by_status),
    ]
    return Results(
        device_id=device.device_id,
        device_status=device.status.value,
        last_seen_at=device.last_seen_at,
        since=since,
        captures=_capture_counts(session, scope),
        triggers_by_type=by_type,
        triggers_by_status=by_status,
        checks=checks,
    )
