"""``python -m device.main_v2``: the Visant device agent's command line (wiring only)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from device import __version__, logring
from device.agent import Agent, AgentOptions
from device.camera import Camera, CameraError, CameraSettings
from device.capture import CapturePipeline
from device.cli_args import EXIT_USAGE, UsageError, build_parser, check_flags
from device.detection import (
    Detector,
    DetectorConfigError,
    DetectorSettings,
    DetectorUnavailableError,
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
    check_flags(args)
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
