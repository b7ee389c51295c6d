"""devices pages keep room for in-place updates (fillfactor 70).

Every keepalive each instance sets last_seen_at of all the devices streaming to it. In pages
packed full, as a fleet's rows are inserted, a new row version rarely fits beside the old one:
the update writes the version elsewhere and an entry in each of the table's six indexes (2-3 %
of the first rounds' updates were heap-only). With room left on the page it is a heap-only
tuple (last_seen_at is in no index) and no index is touched: in a 10,000-device database the
median 500-row slice of that update took 13-15 ms before and 9-12 ms after (docs/performance.md).
Applies to pages written from now on; existing ones stay as they are (no table rewrite).

Revision ID: 0010_devices_fillfactor
Revises: 0009_events_when_heard
Create Date: 2026-12-04 04:30:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010_devices_fillfactor"
down_revision: str | None = "0009_events_when_heard"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FILLFACTOR = 70  # percent of a page filled by inserts


def upgrade() -> None:
    op.execute(f"ALTER TABLE devices SET (fillfactor = {FILLFACTOR})")


def downgrade() -> None:
    op.execute("ALTER TABLE devices RESET (fillfactor)")
