"""A fault proxy in front of the test PostgreSQL, and the URL that reaches it through it."""

from __future__ import annotations

from sqlalchemy.engine import make_url

from tests.support.fault_proxy import FaultProxy

DEFAULT_PORT = 5432


def proxy_to_database(database_url: str) -> tuple[FaultProxy, str]:
    """(proxy, URL over TCP through it). The embedded test server listens on a Unix socket
    only, so the proxy forwards there; a TEST_DATABASE_URL on loopback TCP is forwarded as is.
    PostgreSQL sees the proxy as a local client, so the URL's credentials work unchanged."""
    url = make_url(database_url)
    socket_dir = url.query.get("host")
    port = url.port or DEFAULT_PORT
    if isinstance(socket_dir, str) and socket_dir.startswith("/"):
        proxy = FaultProxy(target_unix=f"{socket_dir}/.s.PGSQL.{port}")
    else:
        proxy = FaultProxy(port)
    query = {key: value for key, value in url.query.items() if key != "host"}
    proxied = url.set(host="127.0.0.1", port=proxy.port, query=query)
    return proxy, proxied.render_as_string(hide_password=False)
