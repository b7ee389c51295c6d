"""Load-generator clients of bench_push: raw-socket SSE readers and keep-alive POSTs.

Raw sockets on purpose: the load generator shares the 2 cores with the server it measures.
"""

from __future__ import annotations

import asyncio
import random
import time

CONNECT_CONCURRENCY = 256  # streams being opened at once
RETRY_SECONDS = 0.2  # mean pause between reconnect attempts while the server is down


class StreamClient:
    """N raw-socket SSE readers on one event loop: the cheapest client we can write.

    With `reconnect` set, a reader whose stream ended opens it again at once (retrying every
    RETRY_SECONDS while the server is down), like a fleet after a server restart; `reopened`
    counts those second opens.
    """

    def __init__(self, ports: list[int], host: str = "127.0.0.1") -> None:
        self.host, self.ports = host, ports
        self.received: dict[str, float] = {}
        self.opened = 0
        self.failed = 0
        self.reopened = 0
        self.reconnect = False
        self._tasks: list[asyncio.Task[None]] = []
        self._limit = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def open_all(self, devices: list[tuple[str, str]]) -> None:
        ready = [asyncio.get_running_loop().create_future() for _ in devices]
        for index, ((device_id, key), future) in enumerate(zip(devices, ready, strict=True)):
            port = self.ports[index % len(self.ports)]
            self._tasks.append(asyncio.create_task(self._run(device_id, key, port, future)))
        await asyncio.gather(*ready)

    async def _open(
        self, device_id: str, key: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        async with self._limit:
            reader, writer = await asyncio.open_connection(self.host, port, limit=2**16)
            writer.write(
                f"GET /v1/devices/{device_id}/commands HTTP/1.1\r\nHost: {self.host}\r\n"
                f"Authorization: Bearer {key}\r\nAccept: text/event-stream\r\n\r\n".encode()
            )
            status = await asyncio.wait_for(reader.readline(), 60)
            if b" 200 " not in status:
                writer.close()
                raise ConnectionError(status.decode(errors="replace").strip())
            return reader, writer

    async def _run(self, device_id: str, key: str, port: int, ready: asyncio.Future[None]) -> None:
        try:
            reader, writer = await self._open(device_id, key, port)
            self.opened += 1
        except Exception:  # noqa: BLE001 - counted and reported
            self.failed += 1
            ready.set_result(None)
            return
        ready.set_result(None)
        while True:
            await self._consume(reader, writer)
            if not self.reconnect:
                return
            while True:
                try:
                    reader, writer = await self._open(device_id, key, port)
                    break
                except Exception:  # noqa: BLE001 - server still down: retry
                    await asyncio.sleep(RETRY_SECONDS * (0.5 + random.random()))
            self.reopened += 1

    async def _consume(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                if line.startswith(b"id: "):
                    self.received.setdefault(line[4:].strip().decode(), time.perf_counter())
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class RawHttpPool:
    """Keep-alive HTTP/1.1 POSTs over raw sockets: far less client CPU per call than httpx."""

    def __init__(self, host: str, port: int, size: int) -> None:
        self.host, self.port = host, port
        self._free: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._slots = asyncio.Semaphore(size)

    async def post_json(self, path: str, authorization: str, body: bytes) -> tuple[int, bytes]:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: {authorization}"
            f"\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        async with self._slots:
            # A pooled connection the server closed while idle (keep-alive timeout) gets one retry.
            for reused in (bool(self._free), False):
                if reused:
                    reader, writer = self._free.pop()
                else:
                    reader, writer = await asyncio.open_connection(self.host, self.port)
                try:
                    writer.write(head + body)
                    status_line = await reader.readline()
                    if not status_line:
                        writer.close()
                        if reused:
                            continue
                        raise ConnectionError("server closed the connection")
                    status = int(status_line.split()[1])
                    length = 0
                    while (line := await reader.readline()) not in (b"\r\n", b""):
                        name, _, value = line.partition(b":")
                        if name.lower() == b"content-length":
                            length = int(value)
                    payload = await reader.readexactly(length)
                except BaseException:
                    writer.close()
                    raise
                self._free.append((reader, writer))
                return status, payload
        raise ConnectionError("unreachable")

    def close(self) -> None:
        for _, writer in self._free:
            writer.close()
