"""Reading a request as FastAPI would, for the routes served in front of it (fast_paths.py)."""

from __future__ import annotations

from starlette.types import Scope


def first_headers(scope: Scope) -> dict[bytes, bytes]:
    """Lower-cased header names to values; the first of repeated headers, as Starlette reads."""
    headers: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        headers.setdefault(name, value)
    return headers


def bearer_token(header: bytes | None) -> str | None:
    """The `Authorization: Bearer` credentials, as FastAPI's HTTPBearer(auto_error=False) reads
    them: None without the header or with another scheme."""
    scheme, _, credentials = header_text(header or b"").partition(" ")
    credentials = credentials.strip()
    if scheme.lower() != "bearer" or not credentials:
        return None
    return credentials


def header_text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")
