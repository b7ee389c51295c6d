"""The fault proxy itself, against a real TCP echo server and a real HTTP body counter."""

from __future__ import annotations

import contextlib
import errno
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fault_proxy import FaultProxy
from tests.support.waiting import wait_until

QUIET = 0.5  # seconds a blackholed or cut link is watched for stray bytes
TIMEOUT = 5.0  # seconds any socket call may block


class EchoServer:
    """Echoes every byte back; records the bytes of each connection."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.received: list[bytearray] = []
        self.ended: list[str] = []  # "eof" or "reset", one per finished connection
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            buffer = bytearray()
            self.received.append(buffer)
            threading.Thread(target=self._echo, args=(conn, buffer), daemon=True).start()

    def _echo(self, conn: socket.socket, buffer: bytearray) -> None:
        with conn:
            try:
                while data := conn.recv(65536):
                    buffer.extend(data)
                    conn.sendall(data)
                self.ended.append("eof")
            except ConnectionResetError:
                self.ended.append("reset")
            except OSError:
                self.ended.append("error")

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


@pytest.fixture
def proxy(echo: EchoServer) -> Iterator[FaultProxy]:
    proxy = FaultProxy(echo.port)
    yield proxy
    proxy.close()
    assert not proxy._thread.is_alive(), "proxy thread did not exit"


def connect(proxy: FaultProxy) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=TIMEOUT)
    return sock


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "connection closed early"
        data += chunk
    return data


def test_forwards_bytes_both_ways_and_passes_a_clean_close(
    proxy: FaultProxy, echo: EchoServer
) -> None:
    with connect(proxy) as sock:
        sock.sendall(b"hello")
        assert recv_exactly(sock, 5) == b"hello"
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(10) == b""
    wait_until(lambda: echo.ended == ["eof"], TIMEOUT)


def test_latency_delays_each_direction(proxy: FaultProxy) -> None:
    proxy.latency(0.2)
    with connect(proxy) as sock:
        began = time.monotonic()
        sock.sendall(b"x")
        assert recv_exactly(sock, 1) == b"x"
        # A lower bound only: the proxy can be slower on a loaded machine, never faster.
        assert time.monotonic() - began >= 0.4
    proxy.heal()


def test_bandwidth_cap_paces_a_large_transfer(proxy: FaultProxy) -> None:
    proxy.bandwidth(32 * 1024)
    payload = b"b" * (32 * 1024)
    with connect(proxy) as sock:
        began = time.monotonic()
        sender = threading.Thread(target=sock.sendall, args=(payload,))
        sender.start()
        assert recv_exactly(sock, len(payload)) == payload
        sender.join(TIMEOUT)
        assert time.monotonic() - began >= 0.9  # 32 KiB at 32 KiB/s, each way in parallel


def test_cut_resets_every_open_connection(proxy: FaultProxy, echo: EchoServer) -> None:
    socks = [connect(proxy) for _ in range(3)]
    for sock in socks:
        sock.sendall(b"up")
        assert recv_exactly(sock, 2) == b"up"
    assert proxy.cut() == 3
    for sock in socks:
        with pytest.raises(ConnectionResetError), sock:
            sock.recv(10)
    wait_until(lambda: sorted(echo.ended) == ["reset"] * 3, TIMEOUT, lambda: str(echo.ended))
    with connect(proxy) as sock:  # the proxy itself carries on
        sock.sendall(b"again")
        assert recv_exactly(sock, 5) == b"again"


def test_refuse_resets_new_connections_only(proxy: FaultProxy) -> None:
    with connect(proxy) as kept:
        kept.sendall(b"a")
        assert recv_exactly(kept, 1) == b"a"
        proxy.refuse()
        with pytest.raises(ConnectionResetError):  # at connect or at the first read
            with connect(proxy) as refused:
                refused.sendall(b"b")
                refused.recv(10)
        assert proxy.refused == 1
        kept.sendall(b"c")
        assert recv_exactly(kept, 1) == b"c"
        proxy.heal()
    with connect(proxy) as sock:
        sock.sendall(b"d")
        assert recv_exactly(sock, 1) == b"d"


def test_blackhole_keeps_sockets_open_drops_bytes_and_resets_them_when_healed(
    proxy: FaultProxy, echo: EchoServer
) -> None:
    with connect(proxy) as before:
        before.sendall(b"1")
        assert recv_exactly(before, 1) == b"1"
        proxy.blackhole()
        before.sendall(b"lost")
        during = connect(proxy)  # accepted, as a dead link's first hop may be
        during.sendall(b"lost too")
        for sock in (before, during):
            sock.settimeout(QUIET)
            with pytest.raises(TimeoutError):
                sock.recv(10)  # nothing comes back, and the socket is not closed
        assert bytes(echo.received[0]) == b"1"
        assert len(echo.received) == 1, "a connection made during the blackhole reached the server"
        proxy.heal()
        for sock in (before, during):
            sock.settimeout(TIMEOUT)
            with pytest.raises(ConnectionResetError), sock:
                sock.recv(10)
    with connect(proxy) as after:
        after.sendall(b"2")
        assert recv_exactly(after, 1) == b"2"


def test_cut_requests_resets_after_half_the_body_then_lets_later_requests_through(
    proxy: FaultProxy, echo: EchoServer
) -> None:
    body = b"z" * 10_000
    head = b"POST /v1/captures HTTP/1.1\r\nHost: x\r\nContent-Length: 10000\r\n\r\n"
    proxy.cut_requests(b"POST /v1/captures", fraction=0.5, times=1)
    with connect(proxy) as sock, contextlib.suppress(OSError):
        sock.sendall(head + body)
        sock.recv(65536)
    wait_until(lambda: echo.ended == ["reset"], TIMEOUT, lambda: str(echo.ended))
    assert bytes(echo.received[0]) == head + body[:5000]
    assert proxy.requests_cut == 1
    with connect(proxy) as sock:  # the rule was for one request only
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + head + body)
        total = len(head) * 2 + len(body) - len(head) + len(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert len(recv_exactly(sock, total)) == total


def test_blackhole_leaves_the_servers_writes_unacknowledged_so_its_tcp_gives_up() -> None:
    """Half-open as the server sees it: its writes fill the proxy's small window, stay
    unacknowledged, and its TCP_USER_TIMEOUT aborts the connection (the kernel, not a read)."""
    user_timeout = 1.0  # seconds
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(user_timeout * 1000))
    proxy = FaultProxy(listener.getsockname()[1])
    try:
        with connect(proxy) as client:
            client.sendall(b"hi")
            conn, _ = listener.accept()
            with conn:
                assert recv_exactly(conn, 2) == b"hi"
                proxy.blackhole()
                conn.setblocking(False)
                deadline = time.monotonic() + 30 * user_timeout + TIMEOUT
                with pytest.raises(OSError) as raised:
                    while time.monotonic() < deadline:
                        with contextlib.suppress(BlockingIOError):  # send buffer full
                            conn.send(b"k" * 512)
                        time.sleep(0.01)
                assert raised.value.errno == errno.ETIMEDOUT, raised.value
    finally:
        proxy.close()
        listener.close()


def test_forwards_to_a_unix_socket_upstream(tmp_path: Path) -> None:
    path = str(tmp_path / "upstream.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen()
    proxy = FaultProxy(target_unix=path)
    try:
        with connect(proxy) as client:
            client.sendall(b"over tcp")
            conn, _ = listener.accept()
            with conn:
                assert recv_exactly(conn, 8) == b"over tcp"
                conn.sendall(b"back over unix")
                assert recv_exactly(client, 14) == b"back over unix"
                proxy.cut()
                with pytest.raises(ConnectionResetError):
                    client.recv(10)
    finally:
        proxy.close()
        listener.close()
