"""Channel URL checks: a valid Apprise URL, and no request to our own network (SSRF).

A channel URL is typed by an org admin but fetched by the server, so without a check an admin
could make the server call its own loopback services, the cloud metadata endpoint
(169.254.169.254) or hosts on the private network. Unless `allow_private_webhooks` is set,
webhook URLs and the HTTP-style Apprise URLs (json://, xml://, form://) must name a public
host: the check runs when the channel is saved and again before each send, because a name may
resolve differently later (DNS rebinding).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2000
RESOLVE_TIMEOUT = 5.0  # seconds
# Apprise schemes that POST to a host the user names (others talk to a fixed service).
_ALLOW_HINT = "set VISANT_ALLOW_PRIVATE_WEBHOOKS=true to allow"
_HTTP_STYLE_APPRISE = {"json", "jsons", "xml", "xmls", "form", "forms"}


class UrlRefused(Exception):
    """The URL is invalid or points where the server must not go; the message says why."""


def refused_reason(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why the server must not call `address` (None: a public address)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address (cloud metadata)"
    if address.is_private or address.is_reserved or address.is_unspecified:
        return "a private or reserved address"
    if address.is_multicast:
        return "a multicast address"
    return None


async def check_host(host: str, port: int | None, allow_private: bool) -> None:
    """Refuse a host that is, or resolves to, an address the server must not call."""
    if allow_private:
        return
    if host.lower() in {"localhost", "localhost.localdomain"} or host.lower().endswith(
        ".localhost"
    ):
        raise UrlRefused(f"url host {host!r} is a loopback address; {_ALLOW_HINT}")
    try:
        addresses = [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, port or 443, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT
            )
        except (OSError, TimeoutError) as exc:
            raise UrlRefused(f"url host {host!r} does not resolve") from exc
        addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    for address in addresses:
        reason = refused_reason(address)
        if reason is not None:
            raise UrlRefused(f"url host {host!r} is {reason}; {_ALLOW_HINT}")


def _length_checked(url: str) -> str:
    url = url.strip()
    if not url:
        raise UrlRefused("url is empty")
    if len(url) > MAX_URL_LENGTH:
        raise UrlRefused(f"url is longer than {MAX_URL_LENGTH} characters")
    return url


def webhook_target(url: str) -> tuple[str, int | None]:
    """(host, port) of a valid http(s) webhook URL; UrlRefused naming the problem."""
    parts = urlsplit(_length_checked(url))
    if parts.scheme not in {"http", "https"}:
        raise UrlRefused("webhook url must start with http:// or https://")
    try:
        port = parts.port
    except ValueError as exc:
        raise UrlRefused("webhook url has an invalid port") from exc
    if not parts.hostname:
        raise UrlRefused("webhook url has no host")
    if parts.username or parts.password:
        raise UrlRefused("webhook url must not carry credentials; the secret signs requests")
    return parts.hostname, port


def apprise_target(url: str) -> tuple[str | None, int | None, str]:
    """(host to check or None, port, redacted URL) of a valid Apprise URL."""
    import apprise  # imported here: loading every plugin costs ~0.3 s at first use

    plugin = apprise.Apprise.instantiate(_length_checked(url))
    if plugin is None:
        raise UrlRefused("url is not a valid Apprise URL (unknown service or malformed)")
    scheme = urlsplit(url.strip()).scheme.lower()
    host = getattr(plugin, "host", None) if scheme in _HTTP_STYLE_APPRISE else None
    return host, getattr(plugin, "port", None), plugin.url(privacy=True)[:300]


def redacted_webhook_url(url: str) -> str:
    """scheme://host[:port]/path with the query (which may hold a token) dropped."""
    parts = urlsplit(url.strip())
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return f"{parts.scheme}://{netloc}{parts.path}"[:300]


async def checked_channel_url(kind: str, url: str, allow_private: bool) -> str:
    """Validate a channel URL of `kind` ('apprise'|'webhook'); returns its display form."""
    if kind == "webhook":
        host, port = webhook_target(url)
        await check_host(host, port, allow_private)
        return redacted_webhook_url(url)
    host, port, display = apprise_target(url)
    if host:
        await check_host(host, port, allow_private)
    return display
