"""One command, the whole loop: cloud on embedded PostgreSQL, test device, agent, triggers, report.

Starts `python -m cloud` on a private data dir, runs setup_test_device, draws a sample image, runs
the device agent on it, lets scheduled triggers run and fires manual ones, stops the agent (manual
triggers wait as pending, schedule slots are skipped, not piled up), restarts it (pending triggers
are delivered), waits until every trigger is terminal and prints check_test_results' report.
Exit code: the report's (0 = every invariant holds). No process outlives it, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

from scripts.demo.steps import DEVICE_ID, FULL, QUICK, STEP_TIMEOUT, Demo
from scripts.demo.support import (
    Clock,
    DemoError,
    free_port,
    wait_until,
    write_sample_image,
)

EXIT_INTERRUPTED = 130


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
