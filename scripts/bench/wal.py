"""The benchmarks' PostgreSQL write-ahead log: its volume, and segments made ready in advance.

A fresh cluster (the embedded one every benchmark starts) has no WAL segments to recycle: each
new 16 MB segment is created and zero-filled when a commit first needs it, and that commit and
those behind it wait (`IO:WalInitWrite`, `IO:WalInitSync` in pg_stat_activity; 30-40 ms
here). A server that has run a while recycles the segments of its past checkpoints instead,
so the benchmark gives its own embedded server such segments before measuring.
"""

from __future__ import annotations

import psycopg2

from cloud.core.database_url import libpq_dsn

SEGMENT_MB = 16  # PostgreSQL's default WAL segment size


def wal_position(url: str) -> int:
    """The server's current WAL insert position, in bytes."""
    connection = psycopg2.connect(libpq_dsn(url))
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
            return int(cursor.fetchone()[0])
    finally:
        connection.close()


def recycle_wal_segments(url: str, segments: int) -> None:
    """Leave `segments` WAL segments ready for reuse (for a server of the benchmark's own: this
    sets its min_wal_size): switch through that many segments, then checkpoint twice."""
    connection = psycopg2.connect(libpq_dsn(url))
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER SYSTEM SET min_wal_size = '{segments * SEGMENT_MB}MB'")
            cursor.execute("SELECT pg_reload_conf()")
            cursor.execute("CREATE TABLE bench_wal_warmup (n integer)")
            for n in range(segments):
                cursor.execute("INSERT INTO bench_wal_warmup VALUES (%s)", (n,))
                cursor.execute("SELECT pg_switch_wal()")
            cursor.execute("DROP TABLE bench_wal_warmup")
            for _ in range(2):
                cursor.execute("CHECKPOINT")
                cursor.execute("SELECT pg_switch_wal()")
    finally:
        connection.close()
