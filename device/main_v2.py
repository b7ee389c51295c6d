"""``python -m device.main_v2``: the Visant device agent's command line (wiring only)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from device import __version__, logring
from device.agent import Agent, AgentOptions
from device.camera import BACKENDS, Camera, CameraError, CameraSettings, parse_resolution
from device.capture import CapturePipeline
from device.detection import (
    Detector,
    DetectorConfigError,
    DetectorSettings,
    DetectorUnavailableError,
    add_detector_arguments,
    create_detector,
    detector_settings_from_args,
)
from device.multi_camera import (
    ConfigFileError,
    SharedDetector,
    camera_args,
    load_config,
    serve_agents,
    stop_all,
)
from device.remote_config import camera_settings_for, detector_settings_for
from device.spool import Spool
from device.state import AgentState
from device.uploader import CloudClient

logger = logging.getLogger(__name__)

EXIT_USAGE = 2
DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class UsageError(Exception):
    """A flag or the environment makes the agent unable to start (exit 2, one line)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, no usage dump: this often ends up in a journal read over a slow link.
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _positive(kind: type[float] | type[int]):  # noqa: ANN202 - argparse type factory
    def convert(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return convert


def _non_negative_int(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text!r}")
    return int(text)


def _labels(text: str) -> frozenset[str]:
    labels = frozenset(label.strip() for label in text.split(",") if label.strip())
    if not labels:
        raise argparse.ArgumentTypeError("expected comma separated labels, e.g. person,car")
    return labels


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m device.main_v2",
        description="Visant device agent: receives capture/config commands over SSE, "
        "captures a frame, runs the detector and uploads the snapshot.",
    )
    add = parser.add_argument
    add(
        "--api-url",
        default="http://127.0.0.1:8000",
        help="cloud API base URL (default: %(default)s)",
    )
    add("--device-id", help="this device's id, as registered in the cloud (not with --config)")
    add(
        "--config",
        default=None,
        help="agent file (TOML subset or JSON) listing several cameras, each with its own "
        "device id and key; the other flags are their defaults (docs/device-agent.md)",
    )
    add(
        "--api-key",
        default=os.environ.get("VISANT_API_KEY"),
        help="device key (vsk_...); default: environment variable VISANT_API_KEY",
    )
    add(
        "--camera-source",
        default="0",
        help="webcam index (0), image file, video file (looped) or RTSP/HTTP URL (default: 0)",
    )
    add("--camera-backend", choices=sorted(BACKENDS), default=None, help="OpenCV capture backend")
    add("--camera-resolution", default=None, help="frame size WIDTHxHEIGHT, e.g. 1920x1080")
    add(
        "--camera-warmup",
        type=_non_negative_int,
        default=2,
        help="frames discarded before each capture so it is fresh (default: 2)",
    )
    add(
        "--upload-timeout",
        type=_positive(float),
        default=30.0,
        help="seconds per upload (default: 30)",
    )
    add(
        "--stream-timeout",
        type=_positive(float),
        default=70.0,
        help="seconds without any data (keepalives included) before reconnecting (default: 70)",
    )
    add(
        "--reconnect-delay",
        type=_positive(float),
        default=5.0,
        help="base reconnect delay in seconds; backoff doubles it up to 60 (default: 5)",
    )
    add("--save-frames", action="store_true", help="also save each captured JPEG locally")
    add(
        "--save-frames-dir",
        default="debug_captures",
        help="where --save-frames writes (default: %(default)s)",
    )
    add(
        "--state-dir",
        default=os.environ.get("VISANT_STATE_DIR"),
        help="executed command ids and applied config (default: $VISANT_STATE_DIR or "
        ".visant/device/<device-id>)",
    )
    add(
        "--spool-dir", default=None, help="captures waiting for upload (default: <state-dir>/spool)"
    )
    add(
        "--spool-max-mb",
        type=_positive(float),
        default=500.0,
        help="spool size limit; when full the oldest captures are dropped (default: 500)",
    )
    add(
        "--watch",
        type=_labels,
        default=frozenset(),
        help="upload event captures when these labels appear, e.g. person,car",
    )
    add(
        "--watch-interval",
        type=_positive(float),
        default=30.0,
        help="at most one event capture per this many seconds (default: 30)",
    )
    add(
        "--health-interval",
        type=_positive(float),
        default=60.0,
        help="seconds between health reports, one more on each connect (default: 60)",
    )
    add(
        "--stream-first-byte-timeout",
        type=_positive(float),
        default=10.0,
        help="seconds for the stream's first byte before falling back to long-poll (default: 10)",
    )
    add(
        "--stream-failures-before-poll",
        type=_positive(int),
        default=5,
        help="failed stream attempts in a row before falling back to long-poll (default: 5)",
    )
    add(
        "--sse-retry-interval",
        type=_positive(float),
        default=180.0,
        help="seconds of long-poll before the stream is tried again (default: 180)",
    )
    add("--verbose", action="store_true", help="debug logging")
    add("--version", action="version", version=f"visant-device {__version__}")
    add_detector_arguments(parser)
    return parser


def _check_flags(args: argparse.Namespace) -> None:
    if not args.device_id:
        raise UsageError("pass --device-id (one camera) or --config (several)")
    if not DEVICE_ID.match(args.device_id):
        raise UsageError(f"invalid --device-id {args.device_id!r}")
    if not args.api_url.startswith(("http://", "https://")):
        raise UsageError(f"--api-url must start with http:// or https://, got {args.api_url!r}")
    if not args.api_key:
        raise UsageError("no device key: pass --api-key or set VISANT_API_KEY")
    if args.camera_resolution:
        try:
            args.camera_resolution = parse_resolution(args.camera_resolution)
        except ValueError as exc:
            raise UsageError(f"--camera-resolution: {exc}") from None


def _start_detector(
    baseline: DetectorSettings, effective: DetectorSettings
) -> tuple[Detector, DetectorSettings]:
    if effective != baseline:
        try:
            return create_detector(effective), effective
        except (DetectorConfigError, DetectorUnavailableError) as exc:
            logger.warning("persisted detector settings unusable (%s); using the flags", exc)
    try:
        return create_detector(baseline), baseline
    except (DetectorConfigError, DetectorUnavailableError) as exc:
        raise UsageError(str(exc)) from None


def build_agent(
    args: argparse.Namespace, shared_detector: Detector | None = None, camera_optional: bool = False
) -> Agent:
    """Check the flags, open camera/detector/state/spool; raise UsageError if impossible.

    Several cameras in one process (``--config``) pass one ``shared_detector`` and
    ``camera_optional``: a camera that cannot be read then logs an error, reports its
    triggers failed with the reason and is retried at each capture, while the others run.
    """
    _check_flags(args)
    state_dir = Path(args.state_dir or Path(".visant") / "device" / args.device_id)
    spool_dir = Path(args.spool_dir or state_dir / "spool")
    try:
        state = AgentState(state_dir)
        spool = Spool(spool_dir, int(args.spool_max_mb * 1024 * 1024))
    except OSError as exc:
        raise UsageError(f"state/spool directory not usable: {exc}") from None
    if state.config_version:
        logger.info(
            "using persisted config version %d until the cloud sends a newer one",
            state.config_version,
        )
    camera_baseline = CameraSettings(args.camera_resolution, args.camera_warmup)
    detector_baseline = detector_settings_from_args(args)
    camera = Camera(
        args.camera_source, args.camera_backend, camera_settings_for(camera_baseline, state.config)
    )
    camera_error: str | None = None
    try:
        camera.open()
    except CameraError as exc:
        if not camera_optional:
            raise UsageError(f"cannot read camera source: {exc}") from None
        camera_error = str(exc)
        logger.error("camera of %s unreadable (%s); retried each capture", args.device_id, exc)
    if shared_detector is not None:
        detector, detector_settings = shared_detector, detector_baseline
    else:
        detector, detector_settings = _start_detector(
            detector_baseline, detector_settings_for(detector_baseline, state.config)
        )
    if args.watch and detector.name == "none":
        raise UsageError("--watch needs a detector; drop --detector none")
    save_dir = Path(args.save_frames_dir) if args.save_frames else None
    options = AgentOptions(
        api_url=args.api_url,
        device_id=args.device_id,
        api_key=args.api_key,
        stream_timeout=args.stream_timeout,
        reconnect_delay=args.reconnect_delay,
        watch_labels=args.watch,
        watch_interval=args.watch_interval,
        health_interval=args.health_interval,
        first_byte_timeout=args.stream_first_byte_timeout,
        stream_failures_before_poll=args.stream_failures_before_poll,
        sse_retry_seconds=args.sse_retry_interval,
        state_dir=state_dir,
    )
    client = CloudClient(args.api_url, args.device_id, args.api_key, args.upload_timeout)
    agent = Agent(
        options,
        CapturePipeline(camera, detector, save_dir),
        camera_baseline,
        detector_baseline,
        detector_settings,
        state,
        spool,
        client,
    )
    agent.pipeline.camera_error = camera_error  # shown by health reports until a frame comes
    return agent


async def _serve(agent: Agent) -> int:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, agent.stop)
    return await agent.run()


def _main_config_file(args: argparse.Namespace, prog: str) -> int:
    """``--config``: one agent per listed camera, one shared detector, one process."""
    try:
        top, cameras = load_config(Path(args.config))
        baseline = detector_settings_from_args(args)
        shared = SharedDetector(_start_detector(baseline, baseline)[0])
        agents = [
            build_agent(camera_args(args, top, entry), shared, camera_optional=True)
            for entry in cameras
        ]
    except (ConfigFileError, UsageError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logger.info(
        "visant-device %s starting %d cameras: %s",
        __version__,
        len(agents),
        ", ".join(a.options.device_id for a in agents),
    )

    async def serve() -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop_all, agents)
        return await serve_agents(agents)

    try:
        code = asyncio.run(serve())
    finally:
        shared.close_shared()
    logger.info("agent stopped (exit %d)", code)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logring.install()  # recent lines for the diagnostics command
    if not args.verbose:
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    if args.config:
        return _main_config_file(args, parser.prog)
    try:
        agent = build_agent(args)
    except UsageError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logger.info(
        "visant-device %s starting: device=%s api=%s", __version__, args.device_id, args.api_url
    )
    code = asyncio.run(_serve(agent))
    logger.info("agent stopped (exit %d)", code)
    return code


if __name__ == "__main__":
    sys.exit(main())
