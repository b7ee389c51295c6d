"""The agent's flags: the parser, its value types and the checks argparse cannot make."""

from __future__ import annotations

import argparse
import os
import re
from typing import NoReturn

from device import __version__
from device.camera import BACKENDS, parse_resolution
from device.detection import add_detector_arguments

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


def check_flags(args: argparse.Namespace) -> None:
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
