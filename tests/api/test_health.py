"""Identity, health and the API docs of a running server."""

from __future__ import annotations

from tests.support.live_server import LiveServer


def test_root_reports_name_and_version(live_server: LiveServer) -> None:
    with live_server.client() as client:
        body = client.get("/").json()
    assert body["name"] == "visant"
    assert body["version"]


def test_health_is_ok_when_database_answers(live_server: LiveServer) -> None:
    with live_server.client() as client:
        response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


def test_health_is_503_when_database_is_unreachable(start_server, database_url: str) -> None:
    server = start_server()
    server.stop()
    unreachable = LiveServer(server.settings, "postgresql://nobody@127.0.0.1:1/none").start()
    try:
        with unreachable.client() as client:
            response = client.get("/health")
        assert response.status_code == 503
        assert response.json()["database"] == "unreachable"
    finally:
        unreachable.stop()


def test_docs_are_served(live_server: LiveServer) -> None:
    with live_server.client() as client:
        assert client.get("/docs").status_code == 200
        assert "/v1/devices" in client.get("/openapi.json").json()["paths"]


def test_unknown_route_is_json_404(live_server: LiveServer) -> None:
    with live_server.client() as client:
        response = client.get("/nope")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}
