"""The demo's steps: the cloud, the test device, the agent and the API calls, one method each."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from scripts.demo.support import (
    PROJECT_ROOT,
    Api,
    Child,
    Clock,
    DemoError,
    healthy,
    python_argv,
    stop_orphan_postgres,
    wait_until,
)

DEVICE_ID = "TEST_CAM_01"
CLOUD_START_TIMEOUT = 90.0  # seconds: the first start initialises a database cluster
STEP_TIMEOUT = 30.0  # seconds for any one expected event (connect, delivery, drain)
OPEN_STATUSES = ("pending", "sent")


@dataclass(frozen=True)
class Pace:
    """How long each phase lasts (seconds)."""

    interval: int  # the device's schedule
    online: float  # agent connected, scheduler running, before the manual triggers
    offline: float  # agent stopped


FULL = Pace(interval=5, online=12.0, offline=12.0)
QUICK = Pace(interval=2, online=4.0, offline=5.0)


class Demo:
    """The demo's state: its data dir, children, API client and the trigger ids it fired."""

    def __init__(self, data_dir: Path, port: int, pace: Pace, clock: Clock) -> None:
        self.data_dir = data_dir
        self.pace = pace
        self.clock = clock
        self.base_url = f"http://127.0.0.1:{port}"
        self.env = self._environment(port)
        self.cloud: Child | None = None
        self.agent: Child | None = None
        self._client: Api | None = None
        self.setup: dict[str, str] = {}
        self.image = data_dir / "sample.jpg"
        self.started_at = datetime.now(UTC)

    def _environment(self, port: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}  # always embedded
        env.update(
            VISANT_DATA_DIR=str(self.data_dir),
            VISANT_PORT=str(port),
            VISANT_HOST="127.0.0.1",
            VISANT_SECRET_KEY=secrets.token_urlsafe(32),
            VISANT_ENVIRONMENT="development",
            VISANT_SCHEDULER_ENABLED="true",
            VISANT_LOG_LEVEL="INFO",
            PYTHONUNBUFFERED="1",
        )
        return env

    # --- steps -----------------------------------------------------------------------------

    def start_cloud(self) -> None:
        self.clock.say(
            f"starting the cloud (python -m cloud) on {self.base_url}, data in {self.data_dir}"
        )
        self.cloud = Child(
            "cloud", python_argv("-m", "cloud"), self.env, self.data_dir / "cloud.log"
        )

        def ready() -> bool:
            if self.cloud is not None and not self.cloud.alive():
                raise DemoError("the cloud exited during start-up:\n" + self.cloud.log_tail())
            return healthy(self.base_url)

        wait_until("the cloud's /health", ready, CLOUD_START_TIMEOUT)
        self.clock.say("cloud healthy (embedded PostgreSQL migrated, scheduler running)")

    def run_setup(self) -> None:
        result = self._script(
            "scripts.setup_test_device",
            "--json",
            "--device-id",
            DEVICE_ID,
            "--interval",
            str(self.pace.interval),
            "--api-url",
            self.base_url,
        )
        if result.returncode != 0:
            raise DemoError(f"setup_test_device failed:\n{result.stderr}")
        self.setup = json.loads(result.stdout)
        self._client = Api(self.base_url, self.setup["user_token"])
        self.clock.say(
            f"setup_test_device: org + test@visant.local + {DEVICE_ID}, "
            f"schedule every {self.pace.interval} s, key {self.setup['device_key'][:12]}..."
        )

    def start_agent(self) -> None:
        env = {**self.env, "VISANT_API_KEY": self.setup["device_key"]}
        argv = python_argv(
            "-m",
            "device.main_v2",
            "--api-url",
            self.base_url,
            "--device-id",
            DEVICE_ID,
            "--camera-source",
            str(self.image),
            "--state-dir",
            str(self.data_dir / "agent"),
            "--reconnect-delay",
            "1",
        )
        self.agent = Child("agent", argv, env, self.data_dir / "agent.log")
        self.clock.say(f"device agent started (python -m device.main_v2, camera {self.image.name})")

        def connected() -> bool:
            if self.agent is not None and not self.agent.alive():
                raise DemoError("the agent exited:\n" + self.agent.log_tail())
            return DEVICE_ID in self.api.connected()

        wait_until("the agent's command stream", connected, STEP_TIMEOUT)
        self.clock.say("agent connected: its SSE command stream is live")

    def stop_agent(self) -> None:
        assert self.agent is not None
        code = self.agent.stop()
        self.agent = None
        wait_until(
            "the device to drop out of /v1/devices/connected",
            lambda: DEVICE_ID not in self.api.connected(),
            STEP_TIMEOUT,
        )
        self.clock.say(f"agent stopped (exit {code}); device offline")

    def fire(self, label: str, ttl_seconds: int | None = None) -> str:
        answer = self.api.trigger(DEVICE_ID, label, ttl_seconds)
        ttl = f", ttl {ttl_seconds} s" if ttl_seconds else ""
        self.clock.say(
            f"manual trigger {label!r}{ttl} -> {answer['status']} ({answer['trigger_id']})"
        )
        return answer["trigger_id"]

    def wait_status(self, trigger_ids: list[str], wanted: str) -> None:
        def all_there() -> bool:
            return all(self.api.trigger_status(t) == wanted for t in trigger_ids)

        wait_until(f"{len(trigger_ids)} triggers to be {wanted}", all_there, STEP_TIMEOUT)

    def scheduled_count(self) -> int:
        return len(self.api.triggers(DEVICE_ID, trigger_type="scheduled"))

    def skipped_slots(self) -> int:
        return int(self.api.device(DEVICE_ID)["skipped_slots"])

    def open_count(self) -> int:
        return sum(len(self.api.triggers(DEVICE_ID, status=s)) for s in OPEN_STATUSES)

    def report(self) -> int:
        since = self.started_at.isoformat()
        result = self._script(
            "scripts.check_test_results", "--device-id", DEVICE_ID, "--since", since
        )
        print(result.stdout, end="", flush=True)
        if result.returncode not in (0, 1):
            raise DemoError(f"check_test_results failed:\n{result.stderr}")
        return result.returncode

    def stop_all(self) -> None:
        """Stop the agent, then the cloud (which stops its embedded PostgreSQL); never raises."""
        if self._client is not None:
            self._client.close()
        for child in (self.agent, self.cloud):
            if child is not None:
                child.stop(signal.SIGTERM)
        if stop_orphan_postgres(self.data_dir / "pgdata"):
            self.clock.say("stopped an embedded PostgreSQL the cloud left behind")

    # --- helpers ---------------------------------------------------------------------------

    @property
    def api(self) -> Api:
        """The test user's API client (after setup)."""
        assert self._client is not None, "setup has not run"
        return self._client

    def _script(self, module: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            python_argv("-m", module, *args),
            cwd=PROJECT_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT * 2,
        )
