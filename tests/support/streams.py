"""A real SSE client for tests: httpx + httpx-sse reading a device stream in a thread."""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import threading
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import ServerSentEvent, connect_sse

EVENT_TIMEOUT = 5.0  # seconds


@dataclass
class Event:
    event: str
    id: str
    data: dict[str, Any]


class StreamReader:
    """Opens `GET /v1/devices/{id}/commands` and queues every event (keepalives excluded)."""

    def __init__(
        self, base_url: str, device_id: str, key: str, last_event_id: str | None = None
    ) -> None:
        headers = {"Authorization": f"Bearer {key}"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        self._client = httpx.Client(base_url=base_url, timeout=httpx.Timeout(10.0, read=30.0))
        self._url = f"/v1/devices/{device_id}/commands"
        self._headers = headers
        self.events: queue.Queue[Event | None] = queue.Queue()
        self.status_code: int | None = None
        self.headers: httpx.Headers | None = None
        self.ended = threading.Event()
        self._opened = threading.Event()
        self._socket: socket.socket | None = None
        self._thread = threading.Thread(target=self._read, daemon=True)

    def start(self) -> StreamReader:
        self._thread.start()
        assert self._opened.wait(EVENT_TIMEOUT), "stream did not open"
        assert self.status_code == 200, f"stream refused: {self.status_code}"
        return self

    def _read(self) -> None:
        try:
            with connect_sse(self._client, "GET", self._url, headers=self._headers) as source:
                self.status_code = source.response.status_code
                self.headers = source.response.headers
                stream = source.response.extensions.get("network_stream")
                self._socket = stream.get_extra_info("socket") if stream else None
                self._opened.set()
                for sse in source.iter_sse():
                    self._queue(sse)
        except (httpx.HTTPError, RuntimeError, ValueError):
            pass
        finally:
            self._opened.set()
            self.ended.set()
            self.events.put(None)

    def _queue(self, sse: ServerSentEvent) -> None:
        if sse.event == "message" and not sse.data:
            return  # the retry: hint alone
        self.events.put(Event(sse.event, sse.id, json.loads(sse.data) if sse.data else {}))

    def next(self, timeout: float = EVENT_TIMEOUT) -> Event:
        event = self.events.get(timeout=timeout)
        assert event is not None, "stream ended"
        return event

    def next_of(self, event_type: str, timeout: float = EVENT_TIMEOUT) -> Event:
        """The next event of this type, skipping others."""
        while True:
            event = self.next(timeout)
            if event.event == event_type:
                return event

    def assert_quiet(self, seconds: float) -> None:
        try:
            event = self.events.get(timeout=seconds)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected event {event}")

    def close(self) -> None:
        """Drop the connection like a device that goes away."""
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.shutdown(socket.SHUT_RDWR)
        self._client.close()
        self._thread.join(EVENT_TIMEOUT)
