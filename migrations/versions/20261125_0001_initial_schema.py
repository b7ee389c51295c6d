"""Initial schema: orgs, users, tokens, devices, triggers, captures, presence.

Revision ID: 0001
Revises:
Create Date: 2026-11-25 15:45:01.918273+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "orgs",
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_orgs")),
        sa.UniqueConstraint("name", name=op.f("uq_orgs_name")),
    )
    op.create_table(
        "server_instances",
        sa.Column("instance_id", sa.String(length=64), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "heartbeat_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("instance_id", name=op.f("pk_server_instances")),
    )
    op.create_index(
        op.f("ix_server_instances_heartbeat_at"), "server_instances", ["heartbeat_at"], unique=False
    )
    op.create_table(
        "users",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column(
            "role",
            sa.Enum(
                "admin",
                "operator",
                "viewer",
                name="user_role",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.org_id"], name=op.f("fk_users_org_id_orgs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_index(op.f("ix_users_org_id"), "users", ["org_id"], unique=False)
    op.create_table(
        "devices",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("friendly_name", sa.String(length=200), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "active",
                "inactive",
                "suspended",
                name="device_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column(
            "config",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("config_version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("reported_config", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("reported_config_version", sa.Integer(), nullable=True),
        sa.Column("reported_config_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("activated_by_user_id", sa.Uuid(), nullable=True),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("key_prefix", sa.String(length=16), nullable=False),
        sa.Column("key_rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("next_trigger_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("skipped_slots", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("last_slot_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "device_id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'",
            name=op.f("ck_devices_device_id_format"),
        ),
        sa.ForeignKeyConstraint(
            ["activated_by_user_id"],
            ["users.user_id"],
            name=op.f("fk_devices_activated_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.org_id"], name=op.f("fk_devices_org_id_orgs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_devices")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_devices_key_hash")),
    )
    op.create_index(
        "ix_devices_next_trigger_at",
        "devices",
        ["next_trigger_at"],
        unique=False,
        postgresql_where=sa.text("next_trigger_at IS NOT NULL"),
    )
    op.create_index(op.f("ix_devices_org_id"), "devices", ["org_id"], unique=False)
    op.create_index(op.f("ix_devices_status"), "devices", ["status"], unique=False)
    op.create_table(
        "user_tokens",
        sa.Column("token_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.user_id"],
            name=op.f("fk_user_tokens_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_id", name=op.f("pk_user_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_user_tokens_token_hash")),
    )
    op.create_index(op.f("ix_user_tokens_user_id"), "user_tokens", ["user_id"], unique=False)
    op.create_table(
        "device_connections",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("instance_id", sa.String(length=64), nullable=False),
        sa.Column("stream_id", sa.String(length=40), nullable=False),
        sa.Column(
            "connected_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.device_id"],
            name=op.f("fk_device_connections_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["server_instances.instance_id"],
            name=op.f("fk_device_connections_instance_id_server_instances"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_device_connections")),
    )
    op.create_index(
        op.f("ix_device_connections_instance_id"),
        "device_connections",
        ["instance_id"],
        unique=False,
    )
    op.create_table(
        "scheduled_triggers",
        sa.Column("trigger_id", sa.String(length=40), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column(
            "trigger_type",
            sa.Enum(
                "scheduled",
                "manual",
                "event",
                name="trigger_type",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("trigger_label", sa.String(length=200), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "sent",
                "executed",
                "failed",
                "expired",
                name="trigger_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("executed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("capture_id", sa.String(length=40), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("requested_by_user_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.device_id"],
            name=op.f("fk_scheduled_triggers_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["requested_by_user_id"],
            ["users.user_id"],
            name=op.f("fk_scheduled_triggers_requested_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("trigger_id", name=op.f("pk_scheduled_triggers")),
    )
    op.create_index(
        "ix_scheduled_triggers_device_scheduled",
        "scheduled_triggers",
        ["device_id", "scheduled_at"],
        unique=False,
    )
    op.create_index(
        "ix_scheduled_triggers_open_by_device",
        "scheduled_triggers",
        ["device_id", "created_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('pending', 'sent')"),
    )
    op.create_index(
        "ix_scheduled_triggers_open_expiry",
        "scheduled_triggers",
        ["expires_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('pending', 'sent')"),
    )
    op.create_index("ix_scheduled_triggers_status", "scheduled_triggers", ["status"], unique=False)
    op.create_index(
        "uq_scheduled_triggers_slot",
        "scheduled_triggers",
        ["device_id", "scheduled_at"],
        unique=True,
        postgresql_where=sa.text("trigger_type = 'scheduled'"),
    )
    op.create_table(
        "captures",
        sa.Column("record_id", sa.String(length=40), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("captured_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("trigger_id", sa.String(length=40), nullable=True),
        sa.Column(
            "trigger_type",
            sa.Enum(
                "scheduled",
                "manual",
                "event",
                name="capture_trigger_type",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("trigger_label", sa.String(length=200), nullable=True),
        sa.Column(
            "evaluation_status",
            sa.Enum(
                "pending",
                "completed",
                "failed",
                name="evaluation_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("evaluation_result", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "metadata",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "detections",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("snapshot_key", sa.String(length=300), nullable=False),
        sa.Column("content_type", sa.String(length=32), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.device_id"],
            name=op.f("fk_captures_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["trigger_id"],
            ["scheduled_triggers.trigger_id"],
            name=op.f("fk_captures_trigger_id_scheduled_triggers"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("record_id", name=op.f("pk_captures")),
        sa.UniqueConstraint("trigger_id", name=op.f("uq_captures_trigger_id")),
    )
    op.create_index(
        "ix_captures_device_captured", "captures", ["device_id", "captured_at"], unique=False
    )
    op.create_index(
        op.f("ix_captures_evaluation_status"), "captures", ["evaluation_status"], unique=False
    )
    op.create_index("ix_captures_received_at", "captures", ["received_at"], unique=False)
    # captures and triggers point at each other: this key can only exist once both tables do.
    op.create_foreign_key(
        "fk_triggers_capture",
        "scheduled_triggers",
        "captures",
        ["capture_id"],
        ["record_id"],
        ondelete="SET NULL",
    )


def downgrade() -> None:
    op.drop_constraint("fk_triggers_capture", "scheduled_triggers", type_="foreignkey")
    op.drop_index("ix_captures_received_at", table_name="captures")
    op.drop_index(op.f("ix_captures_evaluation_status"), table_name="captures")
    op.drop_index("ix_captures_device_captured", table_name="captures")
    op.drop_table("captures")
    op.drop_index(
        "uq_scheduled_triggers_slot",
        table_name="scheduled_triggers",
        postgresql_where=sa.text("trigger_type = 'scheduled'"),
    )
    op.drop_index("ix_scheduled_triggers_status", table_name="scheduled_triggers")
    op.drop_index(
        "ix_scheduled_triggers_open_expiry",
        table_name="scheduled_triggers",
        postgresql_where=sa.text("status IN ('pending', 'sent')"),
    )
    op.drop_index(
        "ix_scheduled_triggers_open_by_device",
        table_name="scheduled_triggers",
        postgresql_where=sa.text("status IN ('pending', 'sent')"),
    )
    op.drop_index("ix_scheduled_triggers_device_scheduled", table_name="scheduled_triggers")
    op.drop_table("scheduled_triggers")
    op.drop_index(op.f("ix_device_connections_instance_id"), table_name="device_connections")
    op.drop_table("device_connections")
    op.drop_index(op.f("ix_user_tokens_user_id"), table_name="user_tokens")
    op.drop_table("user_tokens")
    op.drop_index(op.f("ix_devices_status"), table_name="devices")
    op.drop_index(op.f("ix_devices_org_id"), table_name="devices")
    op.drop_index(
        "ix_devices_next_trigger_at",
        table_name="devices",
        postgresql_where=sa.text("next_trigger_at IS NOT NULL"),
    )
    op.drop_table("devices")
    op.drop_index(op.f("ix_users_org_id"), table_name="users")
    op.drop_table("users")
    op.drop_index(op.f("ix_server_instances_heartbeat_at"), table_name="server_instances")
    op.drop_table("server_instances")
    op.drop_table("orgs")
