"""Fleet listing index: an org's devices in registration order, deleted ones left out.

The console's fleet page reads one page of an org's devices by (created_at, device_id); without
this index PostgreSQL joined every device of the org to its latest capture before sorting.

Revision ID: 0007_fleet_index
Revises: 0003_hardening
Create Date: 2026-12-02 07:20:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_fleet_index"
down_revision: str | None = "0003_hardening"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_devices_org_created",
        "devices",
        ["org_id", "created_at", "device_id"],
        postgresql_where=sa.text("deleted_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_devices_org_created", table_name="devices")
