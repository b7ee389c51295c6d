"""Identity, health and the API docs of a running server."""

from __future__ import annotations

import asyncio

from tests.support.live_server import LiveServer
from tests.support.waiting import wait_until


def test_root_reports_name_and_version(live_server: LiveServer) -> None:
    with live_server.client() as client:
        body = client.get("/").json()
    assert body["name"] == "visant"
    assert body["version"]


def test_health_is_ok_when_database_answers(live_server: LiveServer) -> None:
    with live_server.client() as client:
        response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "components": {
            "database": "ok",
            "listener": "ok",
            "hub": "ok",
            "reaper": "ok",
            "retention": "ok",
            "alerts_watcher": "ok",
            "alerts_delivery": "ok",
            "pruner": "ok",
            "scheduler": "disabled",
        },
    }


def test_health_names_a_stopped_component_with_503(start_server) -> None:  # noqa: ANN001
    server = start_server(scheduler_enabled=True)
    assert server.app is not None
    scheduler = next(c for c in server.app.state.components if c.name == "trigger-scheduler")
    with server.client() as client:
        assert client.get("/health").json()["components"]["scheduler"] == "ok"
        future = asyncio.run_coroutine_threadsafe(scheduler.stop(), server.app.state.loop)
        future.result(10)
        assert not scheduler.running
        response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["status"] == "degraded"
    assert response.json()["components"]["scheduler"] == "stopped"


def test_ready_is_200_while_serving_and_503_once_shutdown_begins(
    live_server: LiveServer,
) -> None:
    assert live_server.app is not None
    with live_server.client() as client:
        assert client.get("/ready").json() == {"ready": True}
        loop = live_server.app.state.loop
        loop.call_soon_threadsafe(live_server.app.state.shutdown_event.set)
        wait_until(lambda: client.get("/ready").status_code == 503, 10)


def test_health_is_503_when_database_is_unreachable(start_server, database_url: str) -> None:
    server = start_server()
    server.stop()
    unreachable = LiveServer(server.settings, "postgresql://nobody@127.0.0.1:1/none").start()
    try:
        with unreachable.client() as client:
            response = client.get("/health")
        assert response.status_code == 503
        assert response.json()["status"] == "degraded"
        assert response.json()["components"]["database"] == "unreachable"
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
