"""A TCP fault proxy for tests: real sockets on loopback, faults switched on and off by command.

It sits between a client and a server (agent and cloud, cloud and PostgreSQL) and forwards
bytes both ways. On command it adds latency, caps bandwidth, cuts every connection with a
reset, blackholes the link, refuses new connections, or cuts a request after part of its body.
The faults are at the network level, not mocks: the peers see what a real link would show them.

It runs its own asyncio loop in its own thread, so a synchronous test drives it with plain
method calls while its peers (subprocesses, or a server in the test process) keep talking.

Blackhole: the sockets stay open and nothing gets through either way (bytes read are dropped,
a close is not passed on), like a Wi-Fi link that is gone without a FIN. The client side's
kernel still acknowledges what the client sends, so only the client's read timeout notices.
The server side is not read at all: the proxy's upstream socket has the smallest receive
buffer the kernel allows (about 1.8 KB of window), so once the server has written that much
its data stays unacknowledged, as over a dead link, and its TCP timeouts (`TCP_USER_TIMEOUT`)
can fire. When the link is restored, every connection that lost bytes is reset, as a real
peer that gave up answers the first retransmission with RST; new connections made during the
blackhole are held the same way and reset too.

The upstream may be a Unix socket (``target_unix``): the embedded test PostgreSQL listens on
one only, and its clients then reach it over TCP through the proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import socket
import struct
import termios
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

CHUNK = 65536  # bytes read at a time
PACED_CHUNK = 4096  # bytes read at a time under a bandwidth cap, so the pacing stays smooth
QUEUE_CHUNKS = 16  # chunks in flight per direction before the proxy stops reading
COMMAND_TIMEOUT = 10.0  # seconds a command may take on the proxy's loop
CONNECT_TIMEOUT = 5.0  # seconds to reach the target
UPSTREAM_RCVBUF = 1  # SO_RCVBUF of upstream TCP sockets: the kernel raises it to its minimum
_LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST

T = TypeVar("T")


@dataclass
class RequestCut:
    """Cut a request whose head starts with ``prefix`` once ``fraction`` of its body is sent."""

    prefix: bytes
    fraction: float
    remaining: int | None  # cuts left; None: every matching request


@dataclass(eq=False)  # identity: links live in a set
class _Link:
    """One client connection and its upstream connection."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    lost_bytes: bool = False  # bytes were dropped by a blackhole: the stream is broken
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


@dataclass
class _Pace:
    """Shared state of one direction of the link: when the next byte may leave."""

    free_at: float = 0.0


class _RequestFramer:
    """Follows the HTTP requests on a client->server byte stream to cut one mid-body."""

    def __init__(self) -> None:
        self._head = b""
        self._body_left = 0
        self._cut_at: int | None = None  # bytes of the current request still allowed

    def allowed(self, data: bytes, rule: RequestCut | None) -> tuple[int, bool]:
        """How many bytes of ``data`` to forward, and whether to cut the link after them."""
        sent = 0
        while sent < len(data):
            if self._body_left:
                take = min(self._body_left, len(data) - sent)
                if self._cut_at is not None and take >= self._cut_at:
                    return sent + self._cut_at, True
                if self._cut_at is not None:
                    self._cut_at -= take
                self._body_left -= take
                sent += take
                continue
            end = (self._head + data[sent:]).find(b"\r\n\r\n")
            if end < 0:
                self._head += data[sent:]
                return len(data), False
            consumed = end + 4 - len(self._head)
            head, self._head = self._head + data[sent : sent + consumed], b""
            sent += consumed
            self._body_left = _content_length(head)
            self._cut_at = None
            if rule is not None and head.startswith(rule.prefix) and self._body_left:
                if rule.remaining is not None:
                    rule.remaining -= 1
                self._cut_at = int(self._body_left * rule.fraction)
        return sent, False


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            return int(value.strip())
    return 0


class FaultProxy:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``target_port`` (or the Unix socket
    ``target_unix``); faults on command.

    Every fault is a method (``latency``, ``bandwidth``, ``cut``, ``blackhole``, ``refuse``,
    ``cut_requests``) and ``heal()`` clears them all. ``target_port`` may be changed at any
    time (a restarted server, a failover): new connections go to the new target.
    """

    def __init__(
        self,
        target_port: int = 0,
        *,
        target_unix: str | None = None,
        upstream_rcvbuf: int | None = UPSTREAM_RCVBUF,
    ) -> None:
        self.target_port = target_port
        self.target_unix = target_unix  # a Unix socket path: forwarded there instead
        self._upstream_rcvbuf = upstream_rcvbuf
        self.accepted = 0  # connections accepted
        self.refused = 0  # connections refused (reset at once)
        self.resets = 0  # connections reset by a fault
        self.requests_cut = 0  # requests cut mid-body
        self._latency = 0.0
        self._bandwidth: float | None = None
        self._blackholed = False
        self._refusing = False
        self._request_cut: RequestCut | None = None
        self._links: set[_Link] = set()
        self._paces = {"up": _Pace(), "down": _Pace()}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server = self._call(self._listen())
        self.port: int = self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # Commands (thread-safe: each runs on the proxy's loop) ---------------------------------

    def latency(self, seconds: float) -> None:
        """Delay every chunk by ``seconds`` in each direction (0 removes it)."""
        self._call_soon(lambda: setattr(self, "_latency", seconds))

    def bandwidth(self, bytes_per_second: float | None) -> None:
        """Cap each direction of the link at ``bytes_per_second`` (None removes the cap)."""
        self._call_soon(lambda: setattr(self, "_bandwidth", bytes_per_second))

    def cut(self) -> int:
        """Reset every open connection (a network cut); return how many links were cut."""
        return self._call(self._cut_all())

    def refuse(self, on: bool = True) -> None:
        """Reset new connections as soon as they are accepted (server unreachable)."""
        self._call_soon(lambda: setattr(self, "_refusing", on))

    def blackhole(self, on: bool = True) -> None:
        """Drop every byte both ways, keep the sockets open; off: reset the broken links."""
        self._call(self._set_blackhole(on))

    def cut_requests(self, prefix: bytes, fraction: float = 0.5, times: int | None = None) -> None:
        """Reset the link after ``fraction`` of the body of requests starting with ``prefix``.

        ``times`` limits how many requests are cut (None: every one until ``heal()``).
        """
        rule = RequestCut(prefix, fraction, times)
        self._call_soon(lambda: setattr(self, "_request_cut", rule))

    def heal(self) -> None:
        """Remove every fault; links broken by a blackhole are reset."""
        self._call(self._heal())

    def open_links(self) -> int:
        return self._call(self._count_links())

    def close(self) -> None:
        """Stop listening, reset every link, stop the loop and its thread (idempotent)."""
        if not self._loop.is_running():
            return
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(COMMAND_TIMEOUT)
        self._loop.close()

    # Loop side -------------------------------------------------------------------------------

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(COMMAND_TIMEOUT)

    def _call_soon(self, action: Callable[[], None]) -> None:
        async def run() -> None:
            action()

        self._call(run())

    async def _listen(self) -> asyncio.Server:
        self._link_up = asyncio.Event()
        self._link_up.set()
        return await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def _count_links(self) -> int:
        return len(self._links)

    async def _cut_all(self) -> int:
        links = list(self._links)
        for link in links:
            self._reset(link)
        return len(links)

    async def _set_blackhole(self, on: bool) -> None:
        self._blackholed = on
        if on:
            self._link_up.clear()
            for link in self._links:
                if link.upstream is not None:
                    link.upstream.transport.pause_reading()  # the server's data stays unread
        else:
            self._link_up.set()
            for link in list(self._links):
                if link.upstream is not None and _unread(link.upstream):
                    link.lost_bytes = True
                if link.lost_bytes:
                    self._reset(link)
                elif link.upstream is not None:
                    link.upstream.transport.resume_reading()

    async def _heal(self) -> None:
        self._latency = 0.0
        self._bandwidth = None
        self._refusing = False
        self._request_cut = None
        await self._set_blackhole(False)

    async def _shutdown(self) -> None:
        self._server.close()
        await self._cut_all()
        # Every link's tasks end here, so closing the loop destroys no pending task.
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._refusing:
            self.refused += 1
            _abort(writer)
            return
        self.accepted += 1
        link = _Link(writer)
        self._links.add(link)
        try:
            if self._blackholed:
                link.lost_bytes = True
                # Held like every other link: the request vanishes, the socket stays open.
                while self._blackholed and link in self._links:
                    if not await reader.read(CHUNK):
                        return
                if link not in self._links:
                    return
            try:
                up_reader, up_writer = await asyncio.wait_for(self._connect(), CONNECT_TIMEOUT)
            except (OSError, TimeoutError):
                self._reset(link)
                return
            link.upstream = up_writer
            up = asyncio.create_task(self._pump(link, reader, up_writer, "up"))
            down = asyncio.create_task(self._pump(link, up_reader, writer, "down"))
            link.tasks += [up, down]
            await asyncio.gather(up, down, return_exceptions=True)
        finally:
            self._close(link)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.target_unix is not None:
            return await asyncio.open_unix_connection(self.target_unix)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if self._upstream_rcvbuf is not None:  # before connect: the window is set then
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._upstream_rcvbuf)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", self.target_port))
        except BaseException:
            sock.close()
            raise
        return await asyncio.open_connection(sock=sock)

    async def _pump(
        self,
        link: _Link,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        direction: str,
    ) -> None:
        # Reader and writer apart, joined by a bounded queue: latency delays each chunk
        # without slowing the link to one chunk per delay, and a full queue stops reading.
        queue: asyncio.Queue[tuple[float, bytes, bool] | None] = asyncio.Queue(QUEUE_CHUNKS)
        writer = asyncio.create_task(self._write(link, queue, sink))
        link.tasks.append(writer)
        framer = _RequestFramer() if direction == "up" else None
        try:
            while True:
                data = await source.read(PACED_CHUNK if self._bandwidth else CHUNK)
                if self._blackholed:
                    link.lost_bytes = True
                    if not data:
                        await self._hold_while_blackholed(link)
                        return
                    continue
                if not data:
                    await queue.put(None)
                    break
                cut = False
                if framer is not None:
                    allowed, cut = framer.allowed(data, self._request_cut)
                    data = data[:allowed]
                    if self._request_cut is not None and self._request_cut.remaining == 0:
                        self._request_cut = None  # the last one of a limited rule
                await queue.put((self._due(len(data), direction), data, cut))
                if cut:
                    break
            await writer
        except (OSError, asyncio.IncompleteReadError):
            self._reset(link)

    async def _write(
        self,
        link: _Link,
        queue: asyncio.Queue[tuple[float, bytes, bool] | None],
        sink: asyncio.StreamWriter,
    ) -> None:
        try:
            while (item := await queue.get()) is not None:
                due, data, cut = item
                if (wait := due - time.monotonic()) > 0:
                    await asyncio.sleep(wait)
                if data:
                    sink.write(data)
                    await sink.drain()
                if cut:
                    self.requests_cut += 1
                    self._reset(link)
                    return
            with contextlib.suppress(OSError):
                if sink.can_write_eof():
                    sink.write_eof()  # a clean close passes through as a FIN
        except OSError:
            self._reset(link)

    async def _hold_while_blackholed(self, link: _Link) -> None:
        # A close during the blackhole is lost with the rest; heal() resets the link.
        await self._link_up.wait()

    def _due(self, size: int, direction: str) -> float:
        """When a chunk read now may leave: after the bandwidth queue, plus the latency."""
        now = time.monotonic()
        leaves = now
        if self._bandwidth:
            pace = self._paces[direction]
            pace.free_at = max(pace.free_at, now) + size / self._bandwidth
            leaves = pace.free_at
        return leaves + self._latency

    def _reset(self, link: _Link) -> None:
        if link not in self._links:
            return
        self.resets += 1
        self._links.discard(link)
        for writer in (link.client, link.upstream):
            if writer is not None:
                _abort(writer)
        for task in link.tasks:
            if task is not asyncio.current_task():
                task.cancel()

    def _close(self, link: _Link) -> None:
        if link in self._links:
            self._links.discard(link)
            for writer in (link.client, link.upstream):
                if writer is not None:
                    writer.close()


def _unread(writer: asyncio.StreamWriter) -> int:
    """Bytes waiting in the kernel's receive queue of the writer's socket."""
    sock = writer.get_extra_info("socket")
    if sock is None:
        return 0
    try:
        raw = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    except OSError:
        return 0
    return struct.unpack("i", raw)[0]


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with RST: the peer sees "connection reset", not a clean end of stream."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    writer.transport.abort()
