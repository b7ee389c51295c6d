"""One command, the whole loop: cloud on embedded PostgreSQL, test device, agent, triggers, report.

Starts `python -m cloud` on a private data dir, runs setup_test_device, draws a sample image, runs
the device agent on it, lets scheduled triggers run and fires manual ones, stops the agent (manual
triggers wait as pending, schedule slots are skipped, not piled up), restarts it (pending triggers
are delivered), waits until every trigger is terminal and prints check_test_results' report.
Exit code: the report's (0 = every invariant holds). No process outlives it, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

if __package__ in (None, ""):  # run as `python scripts/x.py`: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.demo_support import (  # noqa: E402
    PROJECT_ROOT,
    Api,
    Child,
    Clock,
    DemoError,
    free_port,
    healthy,
    python_argv,
    stop_orphan_postgres,
    wait_until,
    write_sample_image,
)

DEVICE_ID = "TEST_CAM_01"
EXIT_INTERRUPTED = 130
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="shorter phases (CI)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="data dir for the demo's database (default: a fresh temporary dir, removed after)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the data dir and logs")
    parser.add_argument("--port", type=int, default=None, help="API port (default: a free one)")
    return parser


class _Terminated(Exception):
    """SIGTERM reached the demo: unwind like Ctrl-C so every child is stopped."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


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


def run_story(demo: Demo) -> int:
    """The demo's phases, in order; returns the report's exit code."""
    pace, say = demo.pace, demo.clock.say
    demo.start_cloud()
    demo.run_setup()
    write_sample_image(demo.image)
    say(f"sample image drawn with OpenCV: {demo.image}")
    demo.start_agent()

    say(f"phase 1 - online: scheduled captures every {pace.interval} s for {pace.online:.0f} s")
    time.sleep(pace.online)
    online = [demo.fire("demo-online-1"), demo.fire("demo-online-2")]
    demo.wait_status(online, "executed")
    say(f"both manual triggers executed; {demo.scheduled_count()} scheduled triggers so far")

    say("phase 2 - offline: stopping the agent")
    demo.stop_agent()
    scheduled_before = demo.scheduled_count()
    skipped_before = demo.skipped_slots()
    waiting = [demo.fire("demo-offline-1"), demo.fire("demo-offline-2")]
    short_lived = demo.fire("demo-offline-expires", ttl_seconds=2)
    cancelled = demo.fire("demo-offline-cancelled")
    demo.api.cancel(cancelled)
    say(f"cancelled {cancelled} -> failed")
    say(f"waiting {pace.offline:.0f} s offline (schedule every {pace.interval} s)")
    time.sleep(pace.offline)
    demo.wait_status([short_lived], "expired")
    new_scheduled = demo.scheduled_count() - scheduled_before
    skipped = demo.skipped_slots() - skipped_before
    say(
        f"offline: {new_scheduled} scheduled triggers created, {skipped} schedule slots skipped "
        f"(none piled up); short-lived trigger expired; {len(waiting)} manual triggers pending"
    )

    say("phase 3 - reconnect: restarting the agent")
    demo.start_agent()
    demo.wait_status(waiting, "executed")
    say("the pending manual triggers were delivered on reconnect and executed")

    say("phase 4 - drain: disabling the schedule, waiting for every trigger to be terminal")
    demo.api.set_config(DEVICE_ID, {"trigger": {"enabled": False}})
    wait_until("every trigger to be terminal", lambda: demo.open_count() == 0, STEP_TIMEOUT)
    demo.stop_agent()
    say("all triggers terminal; running check_test_results")
    print(flush=True)
    return demo.report()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    clock = Clock()
    temporary = args.data_dir is None
    data_dir = (
        Path(tempfile.mkdtemp(prefix="visant-demo-")) if temporary else args.data_dir.resolve()
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    demo = Demo(data_dir, args.port or free_port(), QUICK if args.quick else FULL, clock)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    code = 1
    try:
        code = run_story(demo)
    except DemoError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        _print_logs(data_dir)
    except (KeyboardInterrupt, _Terminated):
        print("\ninterrupted; stopping everything", file=sys.stderr)
        code = EXIT_INTERRUPTED
    finally:
        demo.stop_all()
        signal.signal(signal.SIGTERM, previous)
        if temporary and not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
        else:
            clock.say(f"data and logs kept in {data_dir}")
    clock.say(f"demo finished in {clock.elapsed():.1f} s (exit {code})")
    return code


def _print_logs(data_dir: Path, lines: int = 15) -> None:
    for name in ("cloud.log", "agent.log"):
        path = data_dir / name
        if path.exists():
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            print(f"--- last lines of {name} ---", file=sys.stderr)
            print("\n".join(tail), file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
