"""The upload benchmark's floor: a bare Starlette endpoint doing the least an upload needs.

    python -m scripts.bench.upload_floor --port 18200 --data-dir /tmp/floor [--fsync]

`POST /v1/captures` parses the same multipart body with Starlette's own form parser, reads
the metadata part as JSON and the image part as bytes, writes the image to a file under
`--data-dir` and answers 201 `{"record_id", "evaluation_status"}` like the cloud. No
database, no auth, no validation, no evaluation: whatever the cloud costs above this is ours,
which scripts/bench/upload.py prints as a ratio. Same uvicorn (uvloop, httptools) and GC
tuning as the cloud.

With --fsync (the durable floor) the file is written and fsynced on a worker thread before
the answer, as the cloud must before it stores a snapshot's row: the least a durable upload
costs on this machine's disk, printed beside the floor.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from cloud.core.process_tuning import raise_open_file_limit, tune_garbage_collector
from scripts.bench.server import PROJECT_ROOT, START_TIMEOUT, free_port

_ids = itertools.count()


def _write_durably(path: Path, data: bytes) -> None:
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def build_app(data_dir: Path, durable: bool = False) -> Starlette:
    async def upload(request: Request) -> JSONResponse:
        form = await request.form(max_files=1, max_fields=4)
        try:
            image_part = form.get("image")
            metadata = json.loads(str(form.get("metadata")))
            assert isinstance(image_part, UploadFile)
            image = await image_part.read()
        finally:
            await form.close()
        record_id = f"cap_floor{os.getpid()}_{next(_ids)}"
        path = data_dir / f"{metadata['device_id']}_{record_id}.jpg"
        if durable:
            await asyncio.to_thread(_write_durably, path, image)
        else:
            path.write_bytes(image)
        return JSONResponse({"record_id": record_id, "evaluation_status": "none"}, 201)

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[Route("/v1/captures", upload, methods=["POST"]), Route("/health", health)]
    )


class FloorServer:
    """This module as a child process on a free port, with its own temporary data dir."""

    def __init__(self, durable: bool = False) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="visant-bench-upload-floor-"))
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "scripts.bench.upload_floor", "--port", str(self.port)]
            + ["--data-dir", str(self.root)]
            + (["--fsync"] if durable else []),
            cwd=PROJECT_ROOT,
            stdout=sys.stderr,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2).is_success:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.close()
        raise SystemExit("upload floor server did not start")

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time the floor's server used so far, and the kernel's share of it."""
        times = psutil.Process(self.process.pid).cpu_times()
        return {"server": times.user + times.system, "server_kernel": times.system}

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--fsync", action="store_true", help="fsync each file (durable floor)")
    args = parser.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    raise_open_file_limit()
    tune_garbage_collector()
    uvicorn.run(
        build_app(args.data_dir, args.fsync),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=1,
    )


if __name__ == "__main__":
    main()
