"""Half-open detection options: derived from the settings, set on the real listening socket."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

from cloud.core.config import Settings
from cloud.core.tcp import KEEPALIVE_PROBES, TcpOptions
from tests.support.live_server import LiveServer


def test_user_timeout_defaults_to_the_presence_window(tmp_path: Path) -> None:
    options = TcpOptions.from_settings(Settings(keepalive_seconds=15, data_dir=tmp_path))
    assert options == TcpOptions(user_timeout=30.0, idle=15, interval=10)


def test_user_timeout_setting_wins(tmp_path: Path) -> None:
    settings = Settings(keepalive_seconds=1, tcp_user_timeout_seconds=7.5, data_dir=tmp_path)
    assert TcpOptions.from_settings(settings) == TcpOptions(user_timeout=7.5, idle=1, interval=3)


def test_the_served_socket_carries_keepalive_and_user_timeout(
    start_server: Callable[..., LiveServer],
) -> None:
    server = start_server(keepalive_seconds=2.0)
    assert server._server is not None
    (listening,) = [sock for s in server._server.servers for sock in s.sockets]
    assert listening.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    assert listening.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 4000
    assert listening.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 2
    assert listening.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == KEEPALIVE_PROBES
    with server.client() as client:  # and it serves
        assert client.get("/health").status_code == 200
