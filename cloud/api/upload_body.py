"""Reading an upload's body: size-limited while streaming, multipart or base64 JSON."""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from pydantic import ValidationError
from starlette.requests import ClientDisconnect

from cloud.api.multipart_form import FormPart, MultipartError, boundary_of, parse_form
from cloud.api.schemas.captures import CaptureAccepted, CaptureJsonBody, CaptureMetadata
from cloud.api.schemas.errors import responses
from cloud.core.errors import ApiError

MULTIPART = "multipart/form-data"
JSON = "application/json"
IMAGE_PART = "image"
METADATA_PART = "metadata"
MAX_METADATA_BYTES = 1024 * 1024  # 1000 detections and free-form metadata fit in far less
MAX_PARTS = 5  # image, metadata and a few a client may add; the rest is refused unread


# OpenAPI description of the two body formats (the route reads the body itself).
UPLOAD_REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["image", "metadata"],
                "properties": {
                    "image": {"type": "string", "format": "binary", "description": "JPEG/PNG"},
                    "metadata": {
                        "type": "string",
                        "description": "JSON: device_id, trigger_id, captured_at, "
                        "trigger_label, metadata, detections",
                    },
                },
            }
        },
        "application/json": {
            "schema": {
                "type": "object",
                "description": "The metadata fields plus image_base64 (the original format)",
            }
        },
    },
}
UPLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": CaptureAccepted, "description": "Same trigger_id or capture_id uploaded before"},
    **responses(
        400,
        401,
        403,
        404,
        409,
        413,
        415,
        422,
        429,
        503,
        s401="Missing or invalid device key (also: the key of another device)",
        s403="Device suspended or inactive",
        s404="Trigger unknown or of another device",
        s409="Trigger terminal without a capture (expired, failed...)",
        s415="Body not multipart/JSON, or image not JPEG/PNG",
    ),
}


@dataclass(frozen=True)
class UploadBody:
    metadata: CaptureMetadata
    image: bytes


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"request body exceeds {limit} bytes")


def check_declared_length(request: Request, limit: int) -> None:
    """Refuse at once a body whose Content-Length already says it is too large."""
    declared = request.headers.get("content-length")
    if declared is None:
        return
    try:
        length = int(declared)
    except ValueError as exc:
        raise ApiError(400, "invalid Content-Length") from exc
    if length > limit:
        raise _too_large(limit)


async def limited_stream(request: Request, limit: int) -> AsyncIterator[bytes]:
    """The body's chunks, stopping with 413 as soon as more than `limit` bytes arrived."""
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise _too_large(limit)
            if chunk:
                yield chunk
    except ClientDisconnect as exc:
        # A link cut mid-upload: nothing is stored and the device retries from its spool.
        # Uncaught, it reached uvicorn as "Exception in ASGI application" with a traceback.
        raise ApiError(400, "client disconnected before the body was complete") from exc


def _validation_detail(prefix: str, exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or "body"
    return f"{prefix}: {where}: {first.get('msg', 'invalid')}"


def _parse_metadata(text: str | bytes) -> CaptureMetadata:
    try:
        return CaptureMetadata.model_validate_json(text)
    except ValidationError as exc:
        raise ApiError(422, _validation_detail("invalid metadata", exc)) from exc


async def _read_body(request: Request, limit: int) -> bytes:
    return b"".join([chunk async for chunk in limited_stream(request, limit)])


def _only_part(parts: list[FormPart], name: str) -> FormPart | None:
    named = [part for part in parts if part.name == name]
    if len(named) > 1:
        raise ApiError(422, f"invalid multipart body: more than one '{name}' part")
    return named[0] if named else None


async def _read_multipart(request: Request, limit: int) -> UploadBody:
    try:
        boundary = boundary_of(request.headers.get("content-type", ""))
        parts = parse_form(await _read_body(request, limit), boundary, MAX_PARTS)
    except MultipartError as exc:
        raise ApiError(422, f"invalid multipart body: {exc}") from exc
    image_part = _only_part(parts, IMAGE_PART)
    metadata_part = _only_part(parts, METADATA_PART)
    if image_part is None or image_part.filename is None:
        raise ApiError(422, "missing image part (a file named 'image')")
    if metadata_part is None or metadata_part.filename is not None:
        raise ApiError(422, "missing metadata part (a JSON text field named 'metadata')")
    if len(metadata_part.data) > MAX_METADATA_BYTES:
        raise ApiError(422, f"invalid multipart body: metadata exceeds {MAX_METADATA_BYTES} bytes")
    return UploadBody(_parse_metadata(metadata_part.data), image_part.data)


async def _read_json(request: Request, limit: int, max_image_bytes: int) -> UploadBody:
    body = await _read_body(request, limit)
    try:
        document = CaptureJsonBody.model_validate_json(body)
    except ValidationError as exc:
        raise ApiError(422, _validation_detail("invalid body", exc)) from exc
    encoded = document.image_base64
    if len(encoded) // 4 * 3 > max_image_bytes + 3:
        raise ApiError(413, f"image exceeds {max_image_bytes} bytes")
    try:
        image = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(422, "image_base64 is not valid base64") from exc
    return UploadBody(document, image)


async def read_upload(request: Request, limit: int, max_image_bytes: int) -> UploadBody:
    """The upload's metadata and image bytes; 413, 415 or 422 when the body is refused."""
    check_declared_length(request, limit)
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type == MULTIPART:
        return await _read_multipart(request, limit)
    if media_type == JSON:
        return await _read_json(request, limit, max_image_bytes)
    raise ApiError(415, f"body must be {MULTIPART} or {JSON}")
