"""The private server of scripts/bench_upload.py: embedded PostgreSQL + `python -m cloud`.

Devices and triggers are written straight into the database; CPU time is read per process
group (server, its PostgreSQL, this client) so each upload's cost can be split.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import sqlalchemy as sa

from cloud.core.database_url import start_embedded_postgres, stop_embedded_postgres
from cloud.core.db import create_sync_session_factory
from cloud.core.ids import new_trigger_id
from cloud.core.migrate import upgrade_to_head
from cloud.core.security import DEVICE_KEY_PREFIX, hash_secret, new_secret
from cloud.models import Capture, Device, Org, Trigger, TriggerStatus, TriggerType
from scripts.bench.server import BENCH_SECRET, free_port, start_server


class PrivateServer:
    """Embedded PostgreSQL + `python -m cloud` in a temporary directory."""

    def __init__(self, devices: int) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="visant-bench-upload-"))
        self.port = free_port()
        self.database_url = start_embedded_postgres(self.root / "pgdata")
        upgrade_to_head(self.database_url)
        self.sessions = create_sync_session_factory(self.database_url)
        self.devices = self._create_devices(devices)
        # The server's output goes to stderr: stdout carries only the JSON report.
        self.process = start_server(
            self.database_url,
            self.port,
            sys.stderr,
            {
                "VISANT_UPLOADS_PER_DEVICE_PER_MINUTE": "100000000",
                "VISANT_DATA_DIR": str(self.root),
            },
        )

    def _create_devices(self, count: int) -> list[tuple[str, str]]:
        devices = []
        with self.sessions() as session:
            org = Org(name=f"bench-{uuid.uuid4().hex[:6]}")
            session.add(org)
            session.flush()
            for index in range(count):
                key = new_secret(DEVICE_KEY_PREFIX)
                device_id = f"BENCH_{index:03d}"
                session.add(
                    Device(
                        device_id=device_id,
                        org_id=org.org_id,
                        key_hash=hash_secret(key, BENCH_SECRET),
                        key_prefix=key[:12],
                        config={"evaluation": {"rules": [{"name": "p", "labels": ["person"]}]}},
                    )
                )
                devices.append((device_id, key))
            session.commit()
        return devices

    def create_triggers(self, count: int) -> list[tuple[str, str, str]]:
        """`count` sent triggers spread over the devices: (device_id, key, trigger_id)."""
        now = datetime.now(UTC)
        rows, plan = [], []
        for index in range(count):
            device_id, key = self.devices[index % len(self.devices)]
            trigger_id = new_trigger_id()
            plan.append((device_id, key, trigger_id))
            rows.append(
                {
                    "trigger_id": trigger_id,
                    "device_id": device_id,
                    "trigger_type": TriggerType.MANUAL,
                    "status": TriggerStatus.SENT,
                    "scheduled_at": now,
                    "sent_at": now,
                    "expires_at": now + timedelta(hours=1),
                }
            )
        with self.sessions() as session:
            session.execute(sa.insert(Trigger.__table__), rows)
            session.commit()
        return plan

    def executed_triggers(self) -> int:
        with self.sessions() as session:
            query = sa.select(sa.func.count()).where(
                Trigger.status == TriggerStatus.EXECUTED, Trigger.capture_id.is_not(None)
            )
            return session.scalar(query) or 0

    def stored_captures(self) -> int:
        with self.sessions() as session:
            return session.scalar(sa.select(sa.func.count()).select_from(Capture)) or 0

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time used so far by the server (and the kernel's share of it), its PostgreSQL
        and this client."""

        def used(process: psutil.Process) -> float:
            times = process.cpu_times()
            return times.user + times.system

        postgres = 0.0
        pgdata = str(self.root / "pgdata")
        for process in psutil.process_iter(["cmdline"]):
            if pgdata in " ".join(process.info["cmdline"] or []):
                with contextlib.suppress(psutil.Error):  # postmaster, live and exited backends
                    own = process.cpu_times()
                    postgres = used(process) + own.children_user + own.children_system
                    postgres += sum(used(child) for child in process.children(recursive=True))
                break
        server = psutil.Process(self.process.pid).cpu_times()
        return {
            "server": server.user + server.system,
            "server_kernel": server.system,
            "postgres": postgres,
            "client": used(psutil.Process()),
        }

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.sessions.kw["bind"].dispose()
        stop_embedded_postgres()
        shutil.rmtree(self.root, ignore_errors=True)
