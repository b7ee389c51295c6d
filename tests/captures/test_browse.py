"""Browsing captures: org scoping, filters, keyset pagination, the image with ETag/304."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import httpx

from cloud.core.config import Settings
from tests.support.captures import capture_metadata, jpeg_bytes, png_bytes, upload_multipart
from tests.support.factories import DeviceWithKey, Factory, UserWithToken
from tests.support.live_server import LiveServer

BASE = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _upload(
    client: httpx.Client, device: DeviceWithKey, minute: int, image: bytes | None = None, **f
) -> str:
    captured_at = (BASE + timedelta(minutes=minute)).isoformat()
    metadata = capture_metadata(device.device_id, captured_at=captured_at, **f)
    response = upload_multipart(client, device.headers, metadata, image or jpeg_bytes(64, 48))
    assert response.status_code == 201, response.text
    return response.json()["record_id"]


def _two_orgs(factory: Factory) -> tuple[UserWithToken, DeviceWithKey, UserWithToken]:
    user = factory.user()
    config = {"evaluation": {"rules": [{"name": "people", "labels": ["person"]}]}}
    device = factory.device(org_id=user.org_id, config=config)
    return user, device, factory.user()


def test_other_orgs_capture_is_404_everywhere(live_server: LiveServer, factory: Factory) -> None:
    user, device, stranger = _two_orgs(factory)
    with live_server.client() as client:
        record_id = _upload(client, device, 0)
        mine = client.get(f"/v1/captures/{record_id}", headers=user.headers)
        theirs = [
            client.get(f"/v1/captures/{record_id}", headers=stranger.headers),
            client.get(f"/v1/captures/{record_id}/image", headers=stranger.headers),
        ]
        listed = client.get("/v1/captures", headers=stranger.headers).json()["captures"]
        filtered = client.get(
            "/v1/captures", params={"device_id": device.device_id}, headers=stranger.headers
        ).json()["captures"]
        anonymous = client.get(f"/v1/captures/{record_id}")
    assert mine.status_code == 200
    assert mine.json()["device_id"] == device.device_id
    assert mine.json()["image_url"] == f"/v1/captures/{record_id}/image"
    assert [r.status_code for r in theirs] == [404, 404]
    assert all(r.json() == {"detail": "capture not found"} for r in theirs)
    assert listed == [] and filtered == []
    assert anonymous.status_code == 401


def test_malformed_and_traversal_record_ids_are_404(
    live_server: LiveServer, factory: Factory
) -> None:
    user = factory.user()
    ids = [
        "..%2F..%2Fetc%2Fpasswd",
        "cap_..%2F..%2Fpasswd",
        "cap_" + "g" * 32,
        "cap_" + "0" * 32 + "%0A",
        "cap_" + "0" * 31,
        "cap_" + "0" * 32,
    ]
    with live_server.client(headers=user.headers) as client:
        codes = [client.get(f"/v1/captures/{i}").status_code for i in ids]
        image_codes = [client.get(f"/v1/captures/{i}/image").status_code for i in ids]
    assert codes == [404] * len(ids)
    assert image_codes == [404] * len(ids)


def test_list_filters_by_device_time_and_alert(live_server: LiveServer, factory: Factory) -> None:
    user, device, _ = _two_orgs(factory)
    second = factory.device(org_id=user.org_id)
    person = [{"label": "person", "confidence": 0.9, "box": [1, 1, 10, 10]}]
    with live_server.client() as client:
        alerting = _upload(client, device, 0, detections=person)
        quiet = _upload(client, device, 10)
        elsewhere = _upload(client, second, 20)
        client.headers.update(user.headers)

        def ids(**params: object) -> list[str]:
            response = client.get("/v1/captures", params=params)
            assert response.status_code == 200, response.text
            return [c["record_id"] for c in response.json()["captures"]]

        everything = ids()
        of_device = ids(device_id=device.device_id)
        alerts = ids(alert="true")
        no_alerts = ids(alert="false")
        window = ids(since=(BASE + timedelta(minutes=5)).isoformat(), until=BASE.replace(hour=13))
        bad = client.get("/v1/captures", params={"device_id": "../x"})
        naive = client.get("/v1/captures", params={"since": "2026-03-01T00:00:00"})
    assert everything == [elsewhere, quiet, alerting]
    assert of_device == [quiet, alerting]
    assert alerts == [alerting]
    assert no_alerts == [elsewhere, quiet]
    assert window == [elsewhere, quiet]
    assert bad.status_code == 422 and naive.status_code == 422


def test_cursor_pages_through_everything_once(live_server: LiveServer, factory: Factory) -> None:
    user, device, _ = _two_orgs(factory)
    with live_server.client() as client:
        # Two captures share a captured_at: record_id breaks the tie.
        uploaded = [_upload(client, device, minute) for minute in (0, 1, 1, 2, 3, 4, 5)]
        client.headers.update(user.headers)
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
            body = client.get("/v1/captures", params=params).json()
            seen += [c["record_id"] for c in body["captures"]]
            pages += 1
            cursor = body["next_cursor"]
            if cursor is None:
                break
        garbage = client.get("/v1/captures", params={"cursor": "not-a-cursor"})
        too_many = client.get("/v1/captures", params={"limit": 201})
    assert sorted(seen) == sorted(uploaded) and len(seen) == len(set(seen))
    assert pages == 4
    assert garbage.status_code == 422 and too_many.status_code == 422


def test_image_has_content_type_etag_and_304(live_server: LiveServer, factory: Factory) -> None:
    user, device, _ = _two_orgs(factory)
    image = png_bytes()
    with live_server.client() as client:
        record_id = _upload(client, device, 0, image=image)
        client.headers.update(user.headers)
        first = client.get(f"/v1/captures/{record_id}/image")
        etag = first.headers["ETag"]
        cached = client.get(f"/v1/captures/{record_id}/image", headers={"If-None-Match": etag})
        stale = client.get(f"/v1/captures/{record_id}/image", headers={"If-None-Match": '"x"'})
    assert first.status_code == 200
    assert first.content == image
    assert first.headers["content-type"] == "image/png"
    assert etag == f'"{hashlib.sha256(image).hexdigest()}"'
    assert first.headers["Cache-Control"].startswith("private, max-age=")
    assert cached.status_code == 304 and cached.content == b""
    assert cached.headers["ETag"] == etag
    assert stale.status_code == 200


def test_missing_snapshot_file_is_404_not_500(
    live_server: LiveServer, factory: Factory, settings: Settings
) -> None:
    user, device, _ = _two_orgs(factory)
    with live_server.client() as client:
        record_id = _upload(client, device, 0)
        for path in settings.snapshots_dir.rglob(f"{record_id}.jpg"):
            path.unlink()
        response = client.get(f"/v1/captures/{record_id}/image", headers=user.headers)
    assert response.status_code == 404
    assert response.json() == {"detail": "snapshot not found"}
