"""Header-only image inspection: type by magic bytes, size from SOF/IHDR, limits."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from cloud.captures.images import ImageFormat, ImageRejected, inspect_image
from tests.support.captures import jpeg_bytes, png_bytes, png_claiming

LIMITS = {"max_bytes": 10 * 1024 * 1024, "max_pixels": 50_000_000}


@pytest.mark.parametrize(("width", "height"), [(320, 240), (1, 1), (1920, 1080), (17, 3001)])
def test_jpeg_dimensions_come_from_the_frame_header(width: int, height: int) -> None:
    info = inspect_image(jpeg_bytes(width, height), **LIMITS)
    assert (info.format, info.width, info.height) == (ImageFormat.JPEG, width, height)
    assert info.content_type == "image/jpeg"


def test_progressive_and_grey_jpegs_are_read() -> None:
    frame = np.random.default_rng(3).integers(0, 256, (90, 120), dtype=np.uint8)
    ok, encoded = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    assert ok
    info = inspect_image(encoded.tobytes(), **LIMITS)
    assert (info.width, info.height) == (120, 90)


def test_png_dimensions_come_from_ihdr() -> None:
    info = inspect_image(png_bytes(64, 48), **LIMITS)
    assert (info.format, info.width, info.height) == (ImageFormat.PNG, 64, 48)
    assert info.format.extension == "png"


def test_pixel_bomb_is_refused_from_the_header_alone() -> None:
    with pytest.raises(ImageRejected) as refused:
        inspect_image(png_claiming(100_000, 100_000), **LIMITS)
    assert refused.value.status_code == 413
    assert "100000x100000" in refused.value.detail


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"", 422),
        (b"just text, named capture.jpg", 415),
        (b"\xff\xd8\xff", 422),
        (b"\xff\xd8\xff\xe0\x00\x01", 422),
        (b"\x89PNG\r\n\x1a\n\x00\x00", 422),
    ],
)
def test_bad_bytes_are_refused_with_their_status(data: bytes, status: int) -> None:
    with pytest.raises(ImageRejected) as refused:
        inspect_image(data, **LIMITS)
    assert refused.value.status_code == status


def test_byte_limit_is_413() -> None:
    image = jpeg_bytes(200, 200)
    with pytest.raises(ImageRejected) as refused:
        inspect_image(image, max_bytes=len(image) - 1, max_pixels=10**9)
    assert refused.value.status_code == 413
