"""POST /v1/captures refusals: each bad input with its status, and nothing stored for any."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from cloud.core.config import Settings
from cloud.models import Capture, DeviceStatus
from tests.support.captures import (
    capture_metadata,
    jpeg_bytes,
    png_claiming,
    upload_json,
    upload_multipart,
)
from tests.support.factories import DeviceWithKey, Factory
from tests.support.live_server import LiveServer


@pytest.fixture
def device(factory: Factory) -> DeviceWithKey:
    return factory.device()


def _nothing_stored(db: sessionmaker[Session], settings: Settings) -> bool:
    with db() as session:
        rows = session.scalar(sa.select(sa.func.count()).select_from(Capture))
    root: Path = settings.snapshots_dir
    files = [p for p in root.rglob("*") if p.is_file()] if root.exists() else []
    return rows == 0 and files == []


def test_bad_images_are_415_413_422(
    start_server, device: DeviceWithKey, db: sessionmaker[Session], settings: Settings
) -> None:
    server: LiveServer = start_server(max_image_pixels=1_000_000)
    meta = capture_metadata(device.device_id)
    cases = {
        "text renamed .jpg": (b"hello, I am not a picture\n" * 10, 415),
        "gif": (b"GIF89a" + b"\x00" * 100, 415),
        "png bomb 100000x100000": (png_claiming(100_000, 100_000), 413),
        "too many pixels 2000x1000": (png_claiming(2000, 1000), 413),
        "jpeg without frame header": (
            b"\xff\xd8\xff\xe0\x00\x10" + b"\x00" * 14 + b"\xff\xda",
            422,
        ),
        "truncated jpeg": (jpeg_bytes()[:40], 422),
        "png with bad crc": (png_claiming(10, 10)[:29] + b"\x00\x00\x00\x00", 422),
        "zero-size png": (png_claiming(0, 10), 422),
    }
    with server.client() as client:
        statuses = {
            name: upload_multipart(client, device.headers, meta, data).status_code
            for name, (data, _) in cases.items()
        }
        as_json = upload_json(client, device.headers, meta, b"plain text").status_code
    assert statuses == {name: status for name, (_, status) in cases.items()}
    assert as_json == 415
    assert _nothing_stored(db, settings)


def test_body_over_request_limit_is_413_before_it_is_read(
    start_server, device: DeviceWithKey, db: sessionmaker[Session], settings: Settings
) -> None:
    server: LiveServer = start_server(max_request_bytes=64 * 1024, max_image_bytes=32 * 1024)
    big = jpeg_bytes(400, 300)
    assert len(big) > 64 * 1024
    meta = capture_metadata(device.device_id)
    with server.client() as client:
        declared = upload_multipart(client, device.headers, meta, big)

        def chunked() -> object:  # no Content-Length: the running count stops it
            yield b"x" * 40_000
            yield b"x" * 40_000

        streamed = client.post(
            "/v1/captures",
            content=chunked(),
            headers={**device.headers, "Content-Type": "application/json"},
        )
        image_only = upload_multipart(client, device.headers, meta, jpeg_bytes(280, 200))
    assert declared.status_code == 413
    assert declared.json()["detail"] == "request body exceeds 65536 bytes"
    assert streamed.status_code == 413
    assert image_only.status_code == 413, "image over max_image_bytes"
    assert _nothing_stored(db, settings)


def test_malformed_bodies_are_422(
    live_server: LiveServer, device: DeviceWithKey, db: sessionmaker[Session], settings: Settings
) -> None:
    image = jpeg_bytes()
    meta = capture_metadata(device.device_id)
    bad_metadata = [
        {**meta, "captured_at": "yesterday"},
        {**meta, "captured_at": None},
        {**meta, "trigger_id": "trg_../../etc/passwd"},
        {**meta, "unexpected": 1},
        {**meta, "detections": [{"label": "person", "confidence": 1.5, "box": [0, 0, 1, 1]}]},
        {**meta, "detections": [{"label": "person", "confidence": 0.5, "box": [5, 0, 1, 1]}]},
        {**meta, "detections": [{"label": "person", "confidence": 0.5, "box": [0, 0, 1]}]},
        {**meta, "detections": [{"label": "", "confidence": 0.5, "box": [0, 0, 1, 1]}]},
        {**meta, "detections": [{"label": "p", "confidence": 0.5, "box": [0, 0, 1, 1]}] * 1001},
        {**meta, "device_id": "../../etc"},
    ]
    headers = device.headers
    with live_server.client() as client:
        statuses = [upload_multipart(client, headers, m, image).status_code for m in bad_metadata]
        statuses += [upload_json(client, headers, m, image).status_code for m in bad_metadata]
        files = {"image": ("a.jpg", image, "image/jpeg")}
        no_metadata = client.post("/v1/captures", files=files, headers=headers)
        bad_json_part = client.post(
            "/v1/captures", files=files, data={"metadata": "{not json"}, headers=headers
        )
        no_image = client.post(
            "/v1/captures", data={"metadata": json.dumps(meta)}, headers=headers, files={}
        )
        no_image_form = client.post(
            "/v1/captures",
            files={"other": ("x.txt", b"x", "text/plain")},
            data={"metadata": json.dumps(meta)},
            headers=headers,
        )
        bad_base64 = client.post(
            "/v1/captures", json={**meta, "image_base64": "***not base64***"}, headers=headers
        )
        bad_json = client.post(
            "/v1/captures",
            content=b"{nope",
            headers={**headers, "Content-Type": "application/json"},
        )
        wrong_type = client.post(
            "/v1/captures", content=image, headers={**headers, "Content-Type": "image/jpeg"}
        )
    assert statuses == [422] * len(statuses)
    assert no_metadata.status_code == 422
    assert no_metadata.json()["detail"].startswith("missing metadata part")
    assert bad_json_part.status_code == 422
    assert no_image.status_code in (415, 422)
    assert no_image_form.status_code == 422
    assert no_image_form.json()["detail"].startswith("missing image part")
    assert bad_base64.status_code == 422
    assert bad_base64.json() == {"detail": "image_base64 is not valid base64"}
    assert bad_json.status_code == 422
    assert wrong_type.status_code == 415
    assert _nothing_stored(db, settings)


def test_malformed_multipart_bodies_are_422_with_the_reason(
    live_server: LiveServer, device: DeviceWithKey, db: sessionmaker[Session], settings: Settings
) -> None:
    image = jpeg_bytes()
    metadata = json.dumps(capture_metadata(device.device_id))
    boundary = "visant-test-boundary"

    def part(name: str, data: bytes, filename: str | None = None) -> bytes:
        file = f'; filename="{filename}"' if filename is not None else ""
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"{file}\r\n\r\n'
        return head.encode() + data + b"\r\n"

    def post(
        body: bytes, content_type: str = f"multipart/form-data; boundary={boundary}"
    ) -> httpx.Response:
        return client.post(
            "/v1/captures", content=body, headers={**device.headers, "Content-Type": content_type}
        )

    closing = f"--{boundary}--\r\n".encode()
    whole = part("metadata", metadata.encode()) + part("image", image, "a.jpg")
    with live_server.client() as client:
        answers = {
            "no boundary": post(whole + closing, "multipart/form-data"),
            "cut short": post(whole[:-500]),
            "two images": post(whole + part("image", image, "b.jpg") + closing),
            "too many parts": post(whole + part("note", b"x") * 4 + closing),
            "metadata as a file": post(
                part("metadata", metadata.encode(), "m.json")
                + part("image", image, "a.jpg")
                + closing
            ),
        }
        stored = post(whole + closing)
    details = {why: (r.status_code, r.json()["detail"]) for why, r in answers.items()}
    assert details == {
        "no boundary": (
            422,
            "invalid multipart body: the Content-Type needs a boundary of 1 to 70 characters",
        ),
        "cut short": (422, "invalid multipart body: a part is not closed by the boundary"),
        "two images": (422, "invalid multipart body: more than one 'image' part"),
        "too many parts": (422, "invalid multipart body: more than 5 parts"),
        "metadata as a file": (
            422,
            "missing metadata part (a JSON text field named 'metadata')",
        ),
    }
    assert stored.status_code == 201, stored.text  # the same body, whole, is taken
    with db() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Capture)) == 1


def test_auth_refusals_401_403(
    live_server: LiveServer, factory: Factory, db: sessionmaker[Session], settings: Settings
) -> None:
    device = factory.device()
    other = factory.device(org_id=device.org_id)
    suspended = factory.device(status=DeviceStatus.SUSPENDED)
    image = jpeg_bytes()
    with live_server.client() as client:
        no_key = upload_multipart(client, {}, capture_metadata(device.device_id), image)
        wrong_key = upload_multipart(
            client,
            {"Authorization": "Bearer vsk_" + "A" * 43},
            capture_metadata(device.device_id),
            image,
        )
        other_device = upload_multipart(
            client, other.headers, capture_metadata(device.device_id), image
        )
        unknown_device = upload_multipart(
            client, device.headers, capture_metadata("NO_SUCH_DEVICE"), image
        )
        suspended_device = upload_multipart(
            client, suspended.headers, capture_metadata(suspended.device_id), image
        )
    assert no_key.status_code == 401
    assert wrong_key.status_code == 401
    # One answer for another device's id and an unknown one: no existence oracle.
    assert other_device.status_code == unknown_device.status_code == 401
    assert other_device.json() == unknown_device.json() == {"detail": "invalid device key"}
    assert suspended_device.status_code == 403
    assert _nothing_stored(db, settings)


def test_uploads_over_the_device_rate_are_429_with_retry_after(
    start_server, factory: Factory
) -> None:
    server: LiveServer = start_server(uploads_per_device_per_minute=3)
    device, neighbour = factory.device(), factory.device()
    image = jpeg_bytes(64, 48)
    with server.client() as client:
        codes = [
            upload_multipart(client, device.headers, capture_metadata(device.device_id), image)
            for _ in range(4)
        ]
        other = upload_multipart(
            client, neighbour.headers, capture_metadata(neighbour.device_id), image
        )
    assert [r.status_code for r in codes] == [201, 201, 201, 429]
    assert int(codes[-1].headers["Retry-After"]) >= 1
    assert other.status_code == 201, "the limit is per device"


def test_unknown_content_type_is_415(live_server: LiveServer, device: DeviceWithKey) -> None:
    with live_server.client() as client:
        response = client.post(
            "/v1/captures", content=b"a=b", headers={**device.headers, "Content-Type": "text/plain"}
        )
    assert response.status_code == 415
    assert isinstance(response.json()["detail"], str)


def test_connection_survives_many_refusals(live_server: LiveServer, device: DeviceWithKey) -> None:
    """Refused uploads leave the server healthy (no 500, the next good upload works)."""
    with live_server.client() as client:
        for _ in range(5):
            upload_multipart(client, device.headers, capture_metadata(device.device_id), b"x")
        good = upload_multipart(
            client, device.headers, capture_metadata(device.device_id), jpeg_bytes()
        )
        health = client.get("/health")
    assert good.status_code == 201
    assert health.status_code == 200
