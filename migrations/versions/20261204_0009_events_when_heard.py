"""visant_notify_heard(): a console event is NOTIFYed only while some instance hears it.

Every change announced a console event with pg_notify, also when no console page was open
anywhere. A transaction that NOTIFYs takes PostgreSQL's one NOTIFY lock at commit and holds it
until the commit is flushed, so such commits cannot share a WAL flush: at 1,000 manual
triggers/s the trigger batches and the delivery updates queued behind each other on that lock
(docs/performance.md). An instance hears the events channel only while it has a console
stream open, and its LISTEN connection says so in its application_name (a word
` #<channel>`, cloud/hub/listener.py); this function NOTIFYs only when a backend of this
database carries that word. It reads PostgreSQL's in-memory backend table (once per
transaction) and no table of ours: a listener that dies stops counting at once. After marking
itself the listener waits for the transactions begun before its mark (they may have looked).

visant_manual_trigger() (0008) is rewritten in place to announce its event through it.

Revision ID: 0009_events_when_heard
Revises: 0008_manual_trigger_function
Create Date: 2026-12-04 04:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009_events_when_heard"
down_revision: str | None = "0008_manual_trigger_function"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The answer is kept for the rest of the transaction in a transaction-local setting: the
# backend table read is cached per transaction anyway, and reading it costs ~15 us a call.
NOTIFY_HEARD = """
CREATE FUNCTION visant_notify_heard(p_channel text, p_payload text) RETURNS void
LANGUAGE plpgsql VOLATILE AS $function$
DECLARE
    v_setting text := 'visant.heard_' || p_channel;
    v_heard text := current_setting(v_setting, true);
BEGIN
    IF v_heard IS NULL OR v_heard = '' THEN
        v_heard := CASE WHEN EXISTS (
            SELECT 1 FROM pg_stat_get_activity(NULL) AS a
             WHERE a.datid = (SELECT d.oid FROM pg_database AS d
                               WHERE d.datname = current_database())
               AND position(' #' || p_channel || ' ' IN a.application_name || ' ') > 0
        ) THEN 'yes' ELSE 'no' END;
        PERFORM set_config(v_setting, v_heard, true);
    END IF;
    IF v_heard = 'yes' THEN
        PERFORM pg_notify(p_channel, p_payload);
    END IF;
END
$function$
"""

MANUAL_TRIGGER = (
    "'visant_manual_trigger(integer, text, uuid, interval, text, text, text, timestamptz, "
    "timestamptz, uuid, integer, text, text, text, text, text, uuid, text, text, jsonb)'"
)
ALWAYS = "PERFORM pg_notify(p_events_channel, p_event);"
WHEN_HEARD = "PERFORM visant_notify_heard(p_events_channel, p_event);"


def _rewrite_manual_trigger(old: str, new: str) -> None:
    """Re-create visant_manual_trigger() with `old` replaced by `new` in its definition."""
    op.execute(
        f"""
        DO $rewrite$
        DECLARE
            v_definition text := pg_get_functiondef({MANUAL_TRIGGER}::regprocedure);
        BEGIN
            IF position('{old}' IN v_definition) = 0 THEN
                RAISE EXCEPTION 'visant_manual_trigger() does not contain: {old}';
            END IF;
            EXECUTE replace(v_definition, '{old}', '{new}');
        END
        $rewrite$
        """
    )


def upgrade() -> None:
    op.execute(NOTIFY_HEARD)
    _rewrite_manual_trigger(ALWAYS, WHEN_HEARD)


def downgrade() -> None:
    _rewrite_manual_trigger(WHEN_HEARD, ALWAYS)
    op.execute("DROP FUNCTION visant_notify_heard(text, text)")
