"""Index for keyset pages of the capture listing: (captured_at, record_id).

Revision ID: 0002_captures_listing
Revises: 0001
Create Date: 2026-11-25 16:05:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002_captures_listing"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_captures_captured_record", "captures", ["captured_at", "record_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_captures_captured_record", table_name="captures")
