"""The push benchmark's floor: the least an SSE server on this machine can do for the same load.

    python -m scripts.bench.push_floor --port 18100

One raw ASGI app under the same uvicorn as the cloud (uvloop, httptools) and with the cloud's
file-limit and GC tuning: no database, no auth, no framework. `GET /v1/devices/{id}/commands`
holds an SSE stream fed from memory with a keepalive every 15 s; `POST
/v1/devices/{id}/trigger` queues an event for that device's stream and answers
`{"trigger_id", "status"}` like the cloud. Whatever the cloud costs above this is ours
(durability, auth, presence, multi-instance), which scripts/bench/push.py prints as ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
from typing import Any

import uvicorn

from cloud.core.process_tuning import raise_open_file_limit, tune_garbage_collector

KEEPALIVE_SECONDS = 15.0
_ids = itertools.count()
_prefix = f"trg_floor{os.getpid()}_"


STOP = b""  # queued to every stream when the server begins to stop: the stream ends


class FloorApp:
    def __init__(self) -> None:
        self.queues: dict[str, asyncio.Queue[bytes]] = {}
        self.loop: asyncio.AbstractEventLoop | None = None

    def announce_stop(self) -> None:
        """End every stream (from the signal handler), as the cloud's server does."""
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._stop_streams)

    def _stop_streams(self) -> None:
        for queue in self.queues.values():
            queue.put_nowait(STOP)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            # The same process tuning as the cloud's hub: a fair floor pauses no more for GC.
            raise_open_file_limit()
            tune_garbage_collector()
            self.loop = asyncio.get_running_loop()
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        parts = scope["path"].split("/")  # ['', 'v1', 'devices', id, action]
        if scope["method"] == "GET" and scope["path"] == "/health":
            await self._json(send, 200, {"status": "ok"})
        elif len(parts) == 5 and parts[4] == "commands":
            await self._stream(parts[3], receive, send)
        elif len(parts) == 5 and parts[4] == "trigger":
            while (await receive()).get("more_body"):
                pass
            queue = self.queues.get(parts[3])
            trigger_id = f"{_prefix}{next(_ids)}"
            if queue is not None:
                envelope = json.dumps({"command_id": trigger_id, "type": "capture"})
                queue.put_nowait(f"event: capture\nid: {trigger_id}\ndata: {envelope}\n\n".encode())
            status = "sent" if queue is not None else "pending"
            await self._json(send, 200, {"trigger_id": trigger_id, "status": status})
        else:
            await self._json(send, 404, {"detail": "not found"})

    async def _stream(self, device_id: str, receive: Any, send: Any) -> None:
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.queues[device_id] = queue
        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"retry: 5000\n\n", "more_body": True})
        watcher = asyncio.ensure_future(_disconnected(receive))
        try:
            while not watcher.done():
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait(
                    {getter, watcher}, timeout=KEEPALIVE_SECONDS, return_when="FIRST_COMPLETED"
                )
                if getter in done:
                    body = getter.result()
                    if body == STOP:
                        break
                else:
                    getter.cancel()
                    body = b": keepalive\n\n"
                if not watcher.done():
                    await send({"type": "http.response.body", "body": body, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            watcher.cancel()
            if self.queues.get(device_id) is queue:
                del self.queues[device_id]

    @staticmethod
    async def _json(send: Any, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(payload)),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


async def _disconnected(receive: Any) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class FloorServer(uvicorn.Server):
    """Ends the streams on the signal itself (cloud/core/server.py does the same), instead of
    uvicorn cancelling them, with a traceback each, when its graceful timeout runs out."""

    def __init__(self, config: uvicorn.Config, app: FloorApp) -> None:
        super().__init__(config)
        self.floor = app

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.floor.announce_stop()
        super().handle_exit(sig, frame)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = FloorApp()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=1,
    )
    FloorServer(config, app).run()


if __name__ == "__main__":
    main()
