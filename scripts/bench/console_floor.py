"""The console benchmark's floor: a bare Starlette endpoint returning the same bytes.

    python -m scripts.bench.console_floor --port 18200 --body page.html

Same uvicorn as the cloud (its default loop and HTTP parser), no database, no session, no
template: `GET /page` answers the file's bytes as `text/html`. What the fleet page costs above
this is ours (session check, one query, rendering).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def app_serving(body: bytes) -> Starlette:
    async def page(request: Request) -> Response:
        return Response(body, media_type="text/html; charset=utf-8")

    async def health(request: Request) -> Response:
        return Response(b"ok")

    return Starlette(routes=[Route("/page", page), Route("/health", health)])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench.console_floor")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body", type=Path, required=True)
    args = parser.parse_args()
    app = app_serving(args.body.read_bytes())
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
