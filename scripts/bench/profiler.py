"""py-spy on a bench's server process: raw stacks (`--format raw`) for a fixed time."""

from __future__ import annotations

import subprocess


def start_profiler(pid: int, output: str, seconds: float) -> subprocess.Popen[bytes]:
    """Record process `pid` for `seconds` into `output`; wait() on the result to finish it."""
    return subprocess.Popen(
        [
            "py-spy",
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--duration",
            str(max(1, int(seconds))),
            "--nonblocking",
            "--threads",
            "--output",
            output,
        ],
        stdout=subprocess.DEVNULL,
    )
