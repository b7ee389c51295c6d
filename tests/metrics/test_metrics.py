"""GET /metrics: Prometheus text parsed back, counters that move, and who may read it."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.captures import capture_metadata, jpeg_bytes, upload_multipart
from tests.support.factories import Factory
from tests.support.live_server import LiveServer
from tests.support.streams import StreamReader
from tests.support.waiting import wait_until


def _scrape(client: httpx.Client, **headers: str) -> dict[str, dict[tuple, float]]:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[key] = sample.value
    return samples


def _value(samples: dict[str, dict[tuple, float]], name: str, **labels: str) -> float:
    return samples.get(name, {}).get(tuple(sorted(labels.items())), 0.0)


def test_scrape_parses_and_counts_streams_pushes_uploads_and_requests(
    live_server: LiveServer, factory: Factory
) -> None:
    user = factory.user()
    device = factory.device(org_id=user.org_id, reported_config_version=1)
    with live_server.client() as client:
        before = _scrape(client)
        reader = StreamReader(live_server.url, device.device_id, device.key).start()
        try:
            client.post(f"/v1/devices/{device.device_id}/trigger", json={}, headers=user.headers)
            reader.next_of("capture")
            upload_multipart(
                client, device.headers, capture_metadata(device.device_id), jpeg_bytes()
            )
            upload_multipart(client, {"Authorization": "Bearer nope"}, {}, b"")
            client.get(f"/v1/devices/{device.device_id}", headers=user.headers)
            during = _scrape(client)
        finally:
            reader.close()
        wait_until(lambda: _value(_scrape(client), "visant_streams_open") == 0, 10)
        after = _scrape(client)
    assert all(name.startswith("visant_") for name in during if not name.startswith("python"))
    assert not any("device_id" in dict(key) for series in during.values() for key in series)
    assert _value(during, "visant_streams_open") == 1
    assert _value(during, "visant_push_latency_seconds_count") > _value(
        before, "visant_push_latency_seconds_count"
    )
    written = _value(during, "visant_commands_total", type="capture", outcome="written")
    assert written > _value(before, "visant_commands_total", type="capture", outcome="written")
    assert _value(during, "visant_uploads_total") - _value(before, "visant_uploads_total") == 1
    assert _value(during, "visant_upload_bytes_total") > _value(before, "visant_upload_bytes_total")
    assert _value(during, "visant_upload_refusals_total", reason="unauthorized") > _value(
        before, "visant_upload_refusals_total", reason="unauthorized"
    )
    route = "/v1/devices/{device_id}"
    assert _value(during, "visant_http_requests_total", route=route, method="GET", status="200")
    assert _value(during, "visant_http_request_duration_seconds_count", route=route, method="GET")
    stream = {"route": "/v1/devices/{device_id}/commands", "method": "GET"}
    assert _value(after, "visant_http_requests_total", status="200", **stream) >= 1
    durations = after["visant_http_request_duration_seconds_count"]
    assert tuple(sorted(stream.items())) not in durations
    assert _value(during, "visant_triggers", state="sent", type="manual") == 1
    assert _value(during, "visant_scrape_sql_ok") == 1
    assert "visant_scheduler_lag_seconds" in during
    assert "visant_db_pool_in_use" in during
    for hook in ("visant_listener_reconnects_total", "visant_scheduler_skipped_slots_total"):
        assert hook in during
    pauses = during["visant_gc_pause_seconds_count"]
    assert {dict(key)["generation"] for key in pauses} == {"0", "1", "2"}


def test_metrics_token_is_required_when_set(start_server) -> None:  # noqa: ANN001
    server = start_server(metrics_token="scrape-secret")
    with server.client() as client:
        missing = client.get("/metrics")
        wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
        samples = _scrape(client, Authorization="Bearer scrape-secret")
    assert missing.status_code == 401 and wrong.status_code == 401
    assert missing.json() == {"detail": "metrics token missing or wrong"}
    assert "visant_streams_open" in samples


def test_metrics_without_token_refuse_non_loopback_clients(live_server: LiveServer) -> None:
    # uvicorn trusts X-Forwarded-For from loopback: this is what a proxy in front would send.
    with live_server.client() as client:
        proxied = client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.7"})
        local = client.get("/metrics")
    assert proxied.status_code == 403
    assert "loopback" in proxied.json()["detail"]
    assert local.status_code == 200
