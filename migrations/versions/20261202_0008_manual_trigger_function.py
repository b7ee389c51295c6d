"""visant_manual_trigger(): a manual trigger request in one round trip.

The request was four (BEGIN, lock and locate, cap + INSERT + NOTIFY + audit, COMMIT). As one
PL/pgSQL function it is one statement, which commits by itself when the caller has no
transaction open, and its steps keep the semantics they had as separate statements: in READ
COMMITTED each statement of a VOLATILE function takes a fresh snapshot, so the cap counted
after the per-device advisory lock sees triggers committed while it waited. The lock and the
FOR SHARE on the presence row are held to the end of the (caller's) transaction.

Returns one row: whether the device was found (in the org, not deleted), the live instance
holding its stream (NULL: none), the open manual triggers counted, the first of their
expiries, and whether the trigger was stored (false: over the cap; nothing inserted, announced
or audited then). The command's NOTIFY goes to the holder's own channel, the shared channel
when no instance holds the stream, and none at all when the holder is the calling instance
(which hands the command to the stream itself).

Revision ID: 0008_manual_trigger_function
Revises: 0007_fleet_index
Create Date: 2026-12-02 21:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008_manual_trigger_function"
down_revision: str | None = "0007_fleet_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SIGNATURE = (
    "visant_manual_trigger(p_cap_lock integer, p_device_id text, p_org_id uuid, "
    "p_presence_window interval, p_this_instance text, p_trigger_id text, p_label text, "
    "p_now timestamptz, p_expires_at timestamptz, p_user_id uuid, p_cap integer, "
    "p_instance_channel_prefix text, p_shared_channel text, p_command_message text, "
    "p_events_channel text, p_event text, p_audit_id uuid, p_actor_email text, "
    "p_audit_action text, p_audit_details jsonb)"
)

BODY = """
DECLARE
    v_instance text;
    v_open bigint;
    v_first_expiry timestamptz;
BEGIN
    PERFORM pg_advisory_xact_lock(p_cap_lock, hashtext(d.device_id))
       FROM devices AS d
      WHERE d.device_id = p_device_id AND d.org_id = p_org_id AND d.deleted_at IS NULL;
    IF NOT FOUND THEN
        RETURN QUERY SELECT false, NULL::text, 0::bigint, NULL::timestamptz, false;
        RETURN;
    END IF;
    SELECT c.instance_id INTO v_instance
      FROM device_connections AS c
      JOIN server_instances AS i ON i.instance_id = c.instance_id
     WHERE c.device_id = p_device_id AND i.heartbeat_at > now() - p_presence_window
       FOR SHARE OF c;
    SELECT count(*), min(t.expires_at) INTO v_open, v_first_expiry
      FROM scheduled_triggers AS t
     WHERE t.device_id = p_device_id AND t.trigger_type = 'manual'
       AND t.status IN ('pending', 'sent') AND t.expires_at > now();
    IF v_open >= p_cap THEN
        RETURN QUERY SELECT true, v_instance, v_open, v_first_expiry, false;
        RETURN;
    END IF;
    INSERT INTO scheduled_triggers (trigger_id, device_id, trigger_type, trigger_label, status,
                                    scheduled_at, created_at, expires_at, requested_by_user_id)
    VALUES (p_trigger_id, p_device_id, 'manual', p_label, 'pending', p_now, p_now,
            p_expires_at, p_user_id);
    INSERT INTO audit_log (audit_id, org_id, actor_user_id, actor_email, action, target, details)
    VALUES (p_audit_id, p_org_id, p_user_id, p_actor_email, p_audit_action, p_device_id,
            p_audit_details);
    IF v_instance IS NULL THEN
        PERFORM pg_notify(p_shared_channel, p_command_message);
    ELSIF v_instance IS DISTINCT FROM p_this_instance THEN
        PERFORM pg_notify(p_instance_channel_prefix || v_instance, p_command_message);
    END IF;
    PERFORM pg_notify(p_events_channel, p_event);
    RETURN QUERY SELECT true, v_instance, v_open, v_first_expiry, true;
END
"""


def upgrade() -> None:
    op.execute(
        f"CREATE FUNCTION {SIGNATURE} RETURNS TABLE (found boolean, instance_id text, "
        "open_count bigint, first_expiry timestamptz, stored boolean) "
        f"LANGUAGE plpgsql VOLATILE AS $function${BODY}$function$"
    )


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION visant_manual_trigger(integer, text, uuid, interval, text, text, text, "
        "timestamptz, timestamptz, uuid, integer, text, text, text, text, text, uuid, text, "
        "text, jsonb)"
    )
