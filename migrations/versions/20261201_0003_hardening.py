"""Hardening: shared rate counters, idempotent event captures, lower(email) index.

Revision ID: 0003_hardening
Revises: 0004_alerts
Create Date: 2026-12-01 23:30:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_hardening"
down_revision: str | None = "0004_alerts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_counters",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", "window_start", name="pk_rate_counters"),
    )
    op.create_index("ix_rate_counters_expires_at", "rate_counters", ["expires_at"])
    op.add_column("captures", sa.Column("client_capture_id", sa.String(64), nullable=True))
    op.create_index(
        "uq_captures_device_client_capture",
        "captures",
        ["device_id", "client_capture_id"],
        unique=True,
        postgresql_where=sa.text("client_capture_id IS NOT NULL"),
    )
    op.create_index("ix_users_email_lower", "users", [sa.text("lower(email)")])


def downgrade() -> None:
    op.drop_index("ix_users_email_lower", table_name="users")
    op.drop_index("uq_captures_device_client_capture", table_name="captures")
    op.drop_column("captures", "client_capture_id")
    op.drop_index("ix_rate_counters_expires_at", table_name="rate_counters")
    op.drop_table("rate_counters")
