"""SQLAlchemy models: orgs, users, devices, triggers, captures, and the hub's presence rows."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import Enum, StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class UserRole(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    VIEWER = "viewer"


class DeviceStatus(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"
    SUSPENDED = "suspended"


class TriggerType(StrEnum):
    SCHEDULED = "scheduled"
    MANUAL = "manual"
    EVENT = "event"


class TriggerStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    EXECUTED = "executed"
    FAILED = "failed"
    EXPIRED = "expired"


OPEN_TRIGGER_STATUSES = (TriggerStatus.PENDING, TriggerStatus.SENT)


class EvaluationStatus(StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"


def _enum(enum_cls: type[Enum], name: str) -> sa.Enum:
    """A portable enum column: VARCHAR plus a CHECK constraint, values stored as written."""
    return sa.Enum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda members: [member.value for member in members],
    )


def _utcnow_default() -> sa.TextClause:
    return sa.text("now()")


TIMESTAMP = sa.DateTime(timezone=True)
_OPEN_STATUS_SQL = "status IN ('pending', 'sent')"


class Org(Base):
    __tablename__ = "orgs"

    org_id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(TIMESTAMP, server_default=_utcnow_default())


class User(Base):
    __tablename__ = "users"
    # Login looks users up by lower(email).
    __table_args__ = (sa.Index("ix_users_email_lower", sa.func.lower(sa.text("email"))),)

    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    org_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("orgs.org_id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(sa.String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    role: Mapped[UserRole] = mapped_column(_enum(UserRole, "user_role"), default=UserRole.ADMIN)
    is_active: Mapped[bool] = mapped_column(default=True, server_default=sa.true())
    created_at: Mapped[datetime] = mapped_column(TIMESTAMP, server_default=_utcnow_default())

    org: Mapped[Org] = relationship(lazy="raise")


class UserToken(Base):
    __tablename__ = "user_tokens"

    token_id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("users.user_id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(TIMESTAMP, server_default=_utcnow_default())
    expires_at: Mapped[datetime] = mapped_column(TIMESTAMP)
    revoked_at: Mapped[datetime | None] = mapped_column(TIMESTAMP)


class Device(Base):
    __tablename__ = "devices"
    __table_args__ = (
        sa.CheckConstraint(
            r"device_id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'", name="device_id_format"
        ),
        sa.Index(
            "ix_devices_next_trigger_at",
            "next_trigger_at",
            postgresql_where=sa.text("next_trigger_at IS NOT NULL"),
        ),
        # The fleet page: an org's devices in registration order.
        sa.Index(
            "ix_devices_org_created",
            "org_id",
            "created_at",
            "device_id",
            postgresql_where=sa.text("deleted_at IS NULL"),
        ),
    )

    device_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    org_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("orgs.org_id", ondelete="CASCADE"), index=True
    )
    friendly_name: Mapped[str | None] = mapped_column(sa.String(200))
    status: Mapped[DeviceStatus] = mapped_column(
        _enum(DeviceStatus, "device_status"), default=DeviceStatus.ACTIVE, index=True
    )
    config: Mapped[dict[str, Any]] = mapped_column(
        JSONB, default=dict, server_default=sa.text("'{}'::jsonb")
    )
    config_version: Mapped[int] = mapped_column(default=1, server_default="1")
    reported_config: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    reported_config_version: Mapped[int | None]
    reported_config_at: Mapped[datetime | None] = mapped_column(TIMESTAMP)
    last_seen_at: Mapped[datetime | None] = mapped_column(TIMESTAMP)
    activated_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("users.user_id", ondelete="SET NULL")
    )
    activated_at: Mapped[datetime | None] = mapped_column(TIMESTAMP)
    key_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(sa.String(16))
    key_rotated_at: Mapped[datetime | None] = mapped_column(TIMESTAMP)
    created_at: Mapped[datetime] = mapped_column(TIMESTAMP, server_default=_utcnow_default())
    # Scheduling state: the next slot the scheduler owes this device (NULL = no schedule).
    next_trigger_at: Mapped[datetime | None] = mapped_column(TIMESTAMP)
    skipped_slots: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    last_slot_at: Mapped[datetime | None] = mapped_column(TIMESTAMP)
    # Set by DELETE /v1/devices/{id} when its captures are kept: the row stays for them.
    deleted_at: Mapped[datetime | None] = mapped_column(TIMESTAMP)
    # The device's latest health report (device health section at the end of this module).
    health: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    health_reported_at: Mapped[datetime | None] = mapped_column(TIMESTAMP)


class Trigger(Base):
    __tablename__ = "scheduled_triggers"
    __table_args__ = (
        sa.Index("ix_scheduled_triggers_device_scheduled", "device_id", "scheduled_at"),
        sa.Index("ix_scheduled_triggers_status", "status"),
        sa.Index(
            "ix_scheduled_triggers_open_by_device",
            "device_id",
            "created_at",
            postgresql_where=sa.text(_OPEN_STATUS_SQL),
        ),
        sa.Index(
            "ix_scheduled_triggers_open_expiry",
            "expires_at",
            postgresql_where=sa.text(_OPEN_STATUS_SQL),
        ),
        # One trigger per schedule slot, whatever number of scheduler instances run.
        sa.Index(
            "uq_scheduled_triggers_slot",
            "device_id",
            "scheduled_at",
            unique=True,
            postgresql_where=sa.text("trigger_type = 'scheduled'"),
        ),
    )

    trigger_id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    device_id: Mapped[str] = mapped_column(sa.ForeignKey("devices.device_id", ondelete="CASCADE"))
    trigger_type: Mapped[TriggerType] = mapped_column(_enum(TriggerType, "trigger_type"))
    trigger_label: Mapped[str | None] = mapped_column(sa.String(200))
    status: Mapped[TriggerStatus] = mapped_column(
        _enum(TriggerStatus, "trigger_status"), default=TriggerStatus.PENDING
    )
    scheduled_at: Mapped[datetime] = mapped_column(TIMESTAMP)
    created_at: Mapped[datetime] = mapped_column(TIMESTAMP, server_default=_utcnow_default())
    sent_at: Mapped[datetime | None] = mapped_column(TIMESTAMP)
    executed_at: Mapped[datetime | None] = mapped_column(TIMESTAMP)
    finished_at: Mapped[datetime | None] = mapped_column(TIMESTAMP)
    expires_at: Mapped[datetime] = mapped_column(TIMESTAMP)
    capture_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey(
            "captures.record_id", ondelete="SET NULL", use_alter=True, name="fk_triggers_capture"
        )
    )
    error: Mapped[str | None] = mapped_column(sa.Text)
    requested_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("users.user_id", ondelete="SET NULL")
    )


class Capture(Base):
    __tablename__ = "captures"
    __table_args__ = (
        sa.Index("ix_captures_device_captured", "device_id", "captured_at"),
        sa.Index("ix_captures_received_at", "received_at"),
        # Keyset pages of GET /v1/captures: newest first by (captured_at, record_id).
        sa.Index("ix_captures_captured_record", "captured_at", "record_id"),
        # The device's own id for a capture: a retried upload finds the first record.
        sa.Index(
            "uq_captures_device_client_capture",
            "device_id",
            "client_capture_id",
            unique=True,
            postgresql_where=sa.text("client_capture_id IS NOT NULL"),
        ),
    )

    record_id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    device_id: Mapped[str] = mapped_column(sa.ForeignKey("devices.device_id", ondelete="CASCADE"))
    captured_at: Mapped[datetime] = mapped_column(TIMESTAMP)
    received_at: Mapped[datetime] = mapped_column(TIMESTAMP, server_default=_utcnow_default())
    trigger_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("scheduled_triggers.trigger_id", ondelete="SET NULL"), unique=True
    )
    trigger_type: Mapped[TriggerType] = mapped_column(_enum(TriggerType, "capture_trigger_type"))
    trigger_label: Mapped[str | None] = mapped_column(sa.String(200))
    evaluation_status: Mapped[EvaluationStatus] = mapped_column(
        _enum(EvaluationStatus, "evaluation_status"), default=EvaluationStatus.PENDING, index=True
    )
    evaluation_result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    capture_metadata: Mapped[dict[str, Any]] = mapped_column(
        "metadata", JSONB, default=dict, server_default=sa.text("'{}'::jsonb")
    )
    detections: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, default=list, server_default=sa.text("'[]'::jsonb")
    )
    snapshot_key: Mapped[str] = mapped_column(sa.String(300))
    content_type: Mapped[str] = mapped_column(sa.String(32))
    size_bytes: Mapped[int]
    width: Mapped[int]
    height: Mapped[int]
    sha256: Mapped[str] = mapped_column(sa.String(64))
    client_capture_id: Mapped[str | None] = mapped_column(sa.String(64))


class ServerInstance(Base):
    """A running cloud process; its heartbeat keeps its device connections alive."""

    __tablename__ = "server_instances"

    instance_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    hostname: Mapped[str] = mapped_column(sa.String(255))
    pid: Mapped[int]
    started_at: Mapped[datetime] = mapped_column(TIMESTAMP, server_default=_utcnow_default())
    heartbeat_at: Mapped[datetime] = mapped_column(
        TIMESTAMP, server_default=_utcnow_default(), index=True
    )


class DeviceConnection(Base):
    """Presence: which instance holds the device's live stream, since when."""

    __tablename__ = "device_connections"

    device_id: Mapped[str] = mapped_column(
        sa.ForeignKey("devices.device_id", ondelete="CASCADE"), primary_key=True
    )
    instance_id: Mapped[str] = mapped_column(
        sa.ForeignKey("server_instances.instance_id", ondelete="CASCADE"), index=True
    )
    stream_id: Mapped[str] = mapped_column(sa.String(40))
    connected_at: Mapped[datetime] = mapped_column(TIMESTAMP, server_default=_utcnow_default())


# -- Accounts and operations: audit log, device connection history -------------------------------


class AuditEntry(Base):
    """Who changed what: config pushes, key rotations, suspensions, role changes, triggers..."""

    __tablename__ = "audit_log"
    __table_args__ = (sa.Index("ix_audit_log_org_created", "org_id", "created_at", "audit_id"),)

    audit_id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    org_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("orgs.org_id", ondelete="CASCADE"))
    # Kept when the user is deleted; the email is copied so the entry still reads.
    actor_user_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("users.user_id", ondelete="SET NULL")
    )
    actor_email: Mapped[str | None] = mapped_column(sa.String(320))
    action: Mapped[str] = mapped_column(sa.String(64))
    target: Mapped[str] = mapped_column(sa.String(200))
    details: Mapped[dict[str, Any]] = mapped_column(
        JSONB, default=dict, server_default=sa.text("'{}'::jsonb")
    )
    created_at: Mapped[datetime] = mapped_column(TIMESTAMP, server_default=_utcnow_default())


class ConnectionEventKind(StrEnum):
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"


class DeviceConnectionEvent(Base):
    """A device stream opened or ended on an instance, with why it ended."""

    __tablename__ = "device_connection_events"
    __table_args__ = (
        sa.Index("ix_device_connection_events_device_at", "device_id", "at", "event_id"),
    )

    event_id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    device_id: Mapped[str] = mapped_column(sa.ForeignKey("devices.device_id", ondelete="CASCADE"))
    event: Mapped[ConnectionEventKind] = mapped_column(
        _enum(ConnectionEventKind, "connection_event_kind")
    )
    reason: Mapped[str | None] = mapped_column(sa.String(64))
    instance_id: Mapped[str] = mapped_column(sa.String(64))
    stream_id: Mapped[str] = mapped_column(sa.String(40))
    at: Mapped[datetime] = mapped_column(TIMESTAMP)


# -- Device health and device commands (ping, diagnostics, restart) ----------------------------


class DeviceCommandType(StrEnum):
    PING = "ping"
    DIAGNOSTICS = "diagnostics"
    RESTART = "restart"


class DeviceCommand(Base):
    """A user's command to a device beside captures: the trigger lifecycle, with a result."""

    __tablename__ = "device_commands"
    __table_args__ = (
        sa.Index(
            "ix_device_commands_open_by_device",
            "device_id",
            "created_at",
            postgresql_where=sa.text(_OPEN_STATUS_SQL),
        ),
        sa.Index(
            "ix_device_commands_open_expiry",
            "expires_at",
            postgresql_where=sa.text(_OPEN_STATUS_SQL),
        ),
    )

    command_id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    device_id: Mapped[str] = mapped_column(
        sa.ForeignKey("devices.device_id", ondelete="CASCADE"), index=True
    )
    command_type: Mapped[DeviceCommandType] = mapped_column(
        _enum(DeviceCommandType, "device_command_type")
    )
    status: Mapped[TriggerStatus] = mapped_column(
        _enum(TriggerStatus, "device_command_status"), default=TriggerStatus.PENDING
    )
    created_at: Mapped[datetime] = mapped_column(TIMESTAMP, server_default=_utcnow_default())
    sent_at: Mapped[datetime | None] = mapped_column(TIMESTAMP)
    finished_at: Mapped[datetime | None] = mapped_column(TIMESTAMP)
    expires_at: Mapped[datetime] = mapped_column(TIMESTAMP)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(sa.Text)
    requested_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("users.user_id", ondelete="SET NULL")
    )


# --- Alerts and notifications: alert rows, channels, the notification outbox, attempts ---


class AlertKind(StrEnum):
    DETECTION = "detection"
    DEVICE_OFFLINE = "device_offline"
    DEVICE_ONLINE = "device_online"
    CAPTURE_FAILED = "capture_failed"


class AlertState(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class ChannelKind(StrEnum):
    APPRISE = "apprise"
    WEBHOOK = "webhook"


class NotificationState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class AttemptOutcome(StrEnum):
    DELIVERED = "delivered"
    FAILED = "failed"


class Alert(Base):
    __tablename__ = "alerts"
    __table_args__ = (
        # Keyset pages of GET /v1/alerts: newest first by (created_at, alert_id) within an org.
        sa.Index("ix_alerts_org_created", "org_id", "created_at", "alert_id"),
        sa.Index(
            "ix_alerts_detection_cooldown",
            "device_id",
            "rule",
            "created_at",
            postgresql_where=sa.text("kind = 'detection'"),
        ),
        # At most one unresolved offline (or capture-failed) alert per device, whichever
        # instance notices first: the others' inserts do nothing.
        sa.Index(
            "uq_alerts_unresolved_device_kind",
            "device_id",
            "kind",
            unique=True,
            postgresql_where=sa.text(
                "state <> 'resolved' AND kind IN ('device_offline', 'capture_failed')"
            ),
        ),
    )

    alert_id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    org_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("orgs.org_id", ondelete="CASCADE"))
    device_id: Mapped[str] = mapped_column(sa.ForeignKey("devices.device_id", ondelete="CASCADE"))
    kind: Mapped[AlertKind] = mapped_column(_enum(AlertKind, "alert_kind"))
    state: Mapped[AlertState] = mapped_column(_enum(AlertState, "alert_state"))
    capture_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("captures.record_id", ondelete="SET NULL")
    )
    rule: Mapped[str | None] = mapped_column(sa.String(100))
    title: Mapped[str] = mapped_column(sa.String(300))
    message: Mapped[str] = mapped_column(sa.Text)
    details: Mapped[dict[str, Any]] = mapped_column(
        JSONB, default=dict, server_default=sa.text("'{}'::jsonb")
    )
    created_at: Mapped[datetime] = mapped_column(TIMESTAMP, server_default=_utcnow_default())
    acknowledged_at: Mapped[datetime | None] = mapped_column(TIMESTAMP)
    acknowledged_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("users.user_id", ondelete="SET NULL")
    )
    resolved_at: Mapped[datetime | None] = mapped_column(TIMESTAMP)
    resolved_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("users.user_id", ondelete="SET NULL")
    )


class AlertChannel(Base):
    """Where an org's alerts go; the URL and webhook secret are stored encrypted."""

    __tablename__ = "alert_channels"

    channel_id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    org_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("orgs.org_id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(100))
    kind: Mapped[ChannelKind] = mapped_column(_enum(ChannelKind, "channel_kind"))
    url_ciphertext: Mapped[str] = mapped_column(sa.Text)
    url_display: Mapped[str] = mapped_column(sa.String(300))
    secret_ciphertext: Mapped[str | None] = mapped_column(sa.Text)
    # Routing: NULL means every alert kind / device / rule.
    # none_as_null: Python None is SQL NULL (routing's "all"), not the JSON value null.
    alert_kinds: Mapped[list[str] | None] = mapped_column(JSONB(none_as_null=True))
    device_ids: Mapped[list[str] | None] = mapped_column(JSONB(none_as_null=True))
    rules: Mapped[list[str] | None] = mapped_column(JSONB(none_as_null=True))
    title_template: Mapped[str | None] = mapped_column(sa.Text)
    body_template: Mapped[str | None] = mapped_column(sa.Text)
    enabled: Mapped[bool] = mapped_column(default=True, server_default=sa.true())
    created_at: Mapped[datetime] = mapped_column(TIMESTAMP, server_default=_utcnow_default())
    updated_at: Mapped[datetime] = mapped_column(TIMESTAMP, server_default=_utcnow_default())


class Notification(Base):
    """The outbox: one message for one channel, written with its alert, sent by a worker."""

    __tablename__ = "notifications"
    __table_args__ = (
        sa.Index(
            "ix_notifications_due",
            "next_attempt_at",
            postgresql_where=sa.text("state = 'pending'"),
        ),
    )

    # Also the webhook-id header: the same on every retry, so receivers can deduplicate.
    notification_id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    channel_id: Mapped[str] = mapped_column(
        sa.ForeignKey("alert_channels.channel_id", ondelete="CASCADE"), index=True
    )
    alert_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("alerts.alert_id", ondelete="CASCADE"), index=True
    )
    event_type: Mapped[str] = mapped_column(sa.String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    state: Mapped[NotificationState] = mapped_column(
        _enum(NotificationState, "notification_state"), default=NotificationState.PENDING
    )
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(TIMESTAMP, server_default=_utcnow_default())
    created_at: Mapped[datetime] = mapped_column(TIMESTAMP, server_default=_utcnow_default())
    delivered_at: Mapped[datetime | None] = mapped_column(TIMESTAMP)
    last_error: Mapped[str | None] = mapped_column(sa.Text)


class NotificationAttempt(Base):
    """One try at sending a notification: outcome, HTTP status, error, duration."""

    __tablename__ = "notification_attempts"
    __table_args__ = (sa.Index("ix_notification_attempts_channel", "channel_id", "attempt_id"),)

    attempt_id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    notification_id: Mapped[str] = mapped_column(
        sa.ForeignKey("notifications.notification_id", ondelete="CASCADE"), index=True
    )
    channel_id: Mapped[str] = mapped_column(
        sa.ForeignKey("alert_channels.channel_id", ondelete="CASCADE")
    )
    attempt: Mapped[int]
    started_at: Mapped[datetime] = mapped_column(TIMESTAMP)
    duration_ms: Mapped[float]
    outcome: Mapped[AttemptOutcome] = mapped_column(_enum(AttemptOutcome, "attempt_outcome"))
    http_status: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(sa.Text)


# The capture-failed watcher reads only recent failures of the trigger table.
sa.Index(
    "ix_scheduled_triggers_failed_finished",
    Trigger.finished_at,
    postgresql_where=sa.text("status IN ('failed', 'expired')"),
)


# --- Hardening: rate limits shared by every instance (logins, uploads, stream opens) ---
class RateCounter(Base):
    """Events counted per key in fixed windows; every instance adds to the same row."""

    __tablename__ = "rate_counters"

    key: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(TIMESTAMP, primary_key=True)
    count: Mapped[int] = mapped_column(default=0, server_default="0")
    expires_at: Mapped[datetime] = mapped_column(TIMESTAMP, index=True)
