"""Alerts API: viewers read, operators acknowledge and resolve, other orgs see nothing."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from cloud.models import AlertKind, UserRole
from tests.alerts.conftest import set_role
from tests.support.alerts import insert_alerts
from tests.support.factories import Factory
from tests.support.live_server import LiveServer


def test_viewer_reads_operator_acknowledges_and_resolves(
    live_server: LiveServer, factory: Factory, db: sessionmaker[Session]
) -> None:
    viewer = factory.user()
    set_role(db, viewer.user_id, UserRole.VIEWER)
    operator = factory.user(org_id=viewer.org_id)
    set_role(db, operator.user_id, UserRole.OPERATOR)
    stranger = factory.user()
    device = factory.device(org_id=viewer.org_id)
    kinds = [AlertKind.DETECTION if index % 2 else AlertKind.DEVICE_ONLINE for index in range(5)]
    ids = insert_alerts(db, viewer.org_id, device.device_id, kinds)
    with live_server.client() as client:
        first = client.get("/v1/alerts?limit=2", headers=viewer.headers).json()
        assert [a["alert_id"] for a in first["alerts"]] == ids[:2]
        rest = client.get(
            f"/v1/alerts?limit=10&cursor={first['next_cursor']}", headers=viewer.headers
        )
        assert [a["alert_id"] for a in rest.json()["alerts"]] == ids[2:]
        assert rest.json()["next_cursor"] is None
        detections = client.get("/v1/alerts?kind=detection", headers=viewer.headers).json()
        assert {a["kind"] for a in detections["alerts"]} == {"detection"}
        assert client.get("/v1/alerts?cursor=bogus", headers=viewer.headers).status_code == 422
        path = f"/v1/alerts/{ids[0]}"
        assert client.post(f"{path}/acknowledge", headers=viewer.headers).status_code == 403
        acked = client.post(f"{path}/acknowledge", headers=operator.headers)
        assert acked.status_code == 200 and acked.json()["state"] == "acknowledged"
        resolved = client.post(f"{path}/resolve", headers=operator.headers)
        assert resolved.status_code == 200 and resolved.json()["state"] == "resolved"
        assert client.post(f"{path}/acknowledge", headers=operator.headers).status_code == 409
        assert client.get(path, headers=stranger.headers).status_code == 404
        assert client.post(f"{path}/resolve", headers=stranger.headers).status_code == 404
        assert client.get("/v1/alerts", headers=stranger.headers).json()["alerts"] == []
        assert client.get("/v1/alerts/alr_nothex", headers=viewer.headers).status_code == 404
        open_only = client.get("/v1/alerts?state=open", headers=viewer.headers).json()["alerts"]
    assert ids[0] not in {a["alert_id"] for a in open_only}
