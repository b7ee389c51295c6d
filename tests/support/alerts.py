"""Alert fixtures: a door rule over the whole frame, a person detection, alert rows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from cloud.core.ids import new_alert_id
from cloud.models import Alert, AlertKind, AlertState

PERSON = [{"label": "person", "confidence": 0.87, "box": [10, 20, 110, 220]}]


def door_rules(cooldown_seconds: int) -> dict[str, Any]:
    """A device config whose rule "Door" alerts on a person anywhere in the frame."""
    return {
        "evaluation": {
            "rules": [
                {
                    "name": "Door",
                    "labels": ["person"],
                    "min_confidence": 0.5,
                    "zone": [[0, 0], [1, 0], [1, 1], [0, 1]],
                }
            ]
        },
        "alerts": {"cooldown_seconds": cooldown_seconds},
    }


def insert_alerts(
    db: sessionmaker[Session],
    org_id: uuid.UUID,
    device_id: str,
    kinds: list[AlertKind],
    state: AlertState = AlertState.OPEN,
) -> list[str]:
    """Alerts one second apart, the last one newest; their ids newest first."""
    now = datetime.now(UTC)
    ids = []
    with db() as session:
        for index, kind in enumerate(kinds):
            alert_id = new_alert_id()
            ids.append(alert_id)
            session.add(
                Alert(
                    alert_id=alert_id,
                    org_id=org_id,
                    device_id=device_id,
                    kind=kind,
                    state=state,
                    title=f"{kind.value} {index}",
                    message=f"message {index}",
                    details={},
                    created_at=now - timedelta(seconds=len(kinds) - index),
                )
            )
        session.commit()
    return ids[::-1]
