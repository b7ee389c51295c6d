"""Detection alerts' cooldown: a matching upload inside it raises nothing and waits for nothing."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from cloud.models import Alert, AlertKind, Capture
from tests.support.alerts import PERSON, door_rules
from tests.support.captures import capture_metadata, jpeg_bytes, upload_multipart
from tests.support.factories import Factory
from tests.support.live_server import LiveServer


def test_upload_inside_the_cooldown_takes_no_alert_lock(
    start_server: Callable[..., LiveServer], factory: Factory, db: sessionmaker[Session]
) -> None:
    """While a person stands in a zone every upload matches; inside the rule's cooldown they
    are stored without waiting for the device's alert lock (held here by another transaction,
    as an alerting upload would hold it). Were the lock awaited, the statement timeout would
    answer 503."""
    server = start_server(db_command_timeout_seconds=5.0)
    device = factory.device(device_id="COOL1", config=door_rules(cooldown_seconds=300))
    image = jpeg_bytes(320, 240)
    metadata = capture_metadata(device.device_id, detections=PERSON)
    with server.client() as client:
        first = upload_multipart(client, device.headers, metadata, image)
        assert first.status_code == 201, first.text
        with db() as holder:
            holder.execute(
                sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext("alerts:COOL1")))
            )
            inside = upload_multipart(client, device.headers, metadata, image)
            holder.rollback()
    assert inside.status_code == 201, inside.text
    with db() as session:
        alerts = session.scalars(sa.select(Alert).where(Alert.kind == AlertKind.DETECTION)).all()
        stored = session.get(Capture, inside.json()["record_id"])
    assert [alert.capture_id for alert in alerts] == [first.json()["record_id"]]
    assert stored is not None and stored.evaluation_result["alert"] is True
