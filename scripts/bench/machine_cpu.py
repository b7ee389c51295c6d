"""CPU seconds of the processes a benchmark shares the machine with: the embedded PostgreSQL
and the benchmark itself (the load generator)."""

from __future__ import annotations

from pathlib import Path

import psutil


def postgres_pids(pgdata: Path | None) -> list[int]:
    """The embedded postmaster under `pgdata` and its children (none for an outside server)."""
    if pgdata is None:
        return []
    for process in psutil.process_iter(["name", "cmdline"]):
        if "postgres" in (process.info["name"] or "") and str(pgdata) in " ".join(
            process.info["cmdline"] or []
        ):
            return [process.pid, *(child.pid for child in process.children(recursive=True))]
    return []


def postgres_cpu(pgdata: Path | None) -> dict[int, float]:
    """CPU seconds (user + system) of each embedded PostgreSQL process, by pid."""
    seconds: dict[int, float] = {}
    for pid in postgres_pids(pgdata):
        try:
            seconds[pid] = sum(psutil.Process(pid).cpu_times()[:2])
        except psutil.NoSuchProcess:
            pass
    return seconds


def postgres_cpu_between(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds PostgreSQL spent between two samples; a backend opened in between counts
    from zero (one that ended in between is lost: pooled connections live for the run)."""
    return sum(after[pid] - before.get(pid, 0.0) for pid in after)


def own_cpu() -> float:
    """CPU seconds of this process so far."""
    return sum(psutil.Process().cpu_times()[:2])
