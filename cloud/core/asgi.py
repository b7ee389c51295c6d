"""ASGI plumbing shared by the middlewares and the routes served in front of FastAPI."""

from __future__ import annotations

from starlette.types import Message, Send


class StatusWatchingSend:
    """An ASGI `send` that remembers the status of the response it started (None before)."""

    __slots__ = ("_send", "status")

    def __init__(self, send: Send) -> None:
        self._send = send
        self.status: int | None = None

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        await self._send(message)
