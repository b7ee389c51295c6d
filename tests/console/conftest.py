"""Console test helpers: signing in over real HTTP, the session's CSRF token."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.support.live_server import LiveServer

CSRF_META = re.compile(r'<meta name="csrf-token" content="([0-9a-f]+)">')
NONCE_FIELD = re.compile(r'name="csrf" value="([^"]+)"')
HTML = {"Accept": "text/html"}


def sign_in(client: httpx.Client, email: str, password: str) -> httpx.Response:
    """The browser's steps: open the form (nonce cookie + field), post it."""
    form = client.get("/sign-in", headers=HTML)
    match = NONCE_FIELD.search(form.text)
    assert match is not None, form.text
    return client.post(
        "/sign-in",
        data={"email": email, "password": password, "csrf": match.group(1), "next": "/fleet"},
        headers=HTML,
    )


def csrf_of(client: httpx.Client) -> str:
    page = client.get("/fleet", headers=HTML)
    match = CSRF_META.search(page.text)
    assert match is not None, page.text
    return match.group(1)


@pytest.fixture
def console(live_server: LiveServer) -> LiveServer:
    return live_server
