"""Device health (latest report on the device row) and device commands (ping, diagnostics,
restart) with the trigger lifecycle.

Revision ID: 0006_device_health
Revises: 0005_operations
Create Date: 2026-12-01 23:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006_device_health"
down_revision: str | None = "0005_operations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OPEN = sa.text("status IN ('pending', 'sent')")


def upgrade() -> None:
    op.add_column("devices", sa.Column("health", postgresql.JSONB(), nullable=True))
    op.add_column(
        "devices", sa.Column("health_reported_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_table(
        "device_commands",
        sa.Column("command_id", sa.String(length=40), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column(
            "command_type",
            sa.Enum(
                "ping",
                "diagnostics",
                "restart",
                name="device_command_type",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "sent",
                "executed",
                "failed",
                "expired",
                name="device_command_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("result", postgresql.JSONB(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("requested_by_user_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.device_id"],
            name=op.f("fk_device_commands_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["requested_by_user_id"],
            ["users.user_id"],
            name=op.f("fk_device_commands_requested_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("command_id", name=op.f("pk_device_commands")),
    )
    op.create_index("ix_device_commands_device_id", "device_commands", ["device_id"])
    op.create_index(
        "ix_device_commands_open_by_device",
        "device_commands",
        ["device_id", "created_at"],
        postgresql_where=_OPEN,
    )
    op.create_index(
        "ix_device_commands_open_expiry", "device_commands", ["expires_at"], postgresql_where=_OPEN
    )


def downgrade() -> None:
    op.drop_index("ix_device_commands_open_expiry", table_name="device_commands")
    op.drop_index("ix_device_commands_open_by_device", table_name="device_commands")
    op.drop_index("ix_device_commands_device_id", table_name="device_commands")
    op.drop_table("device_commands")
    op.drop_column("devices", "health_reported_at")
    op.drop_column("devices", "health")
