"""Image validation from headers only: type by magic bytes, size from JPEG SOF / PNG IHDR.

No pixel is decoded: a decompression bomb is refused from the dimensions its header claims.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from enum import StrEnum

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Start-of-frame markers carry the dimensions; C4 (DHT), C8 (JPG) and CC (DAC) are not frames.
_JPEG_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE_MARKERS = frozenset(range(0xD0, 0xD9)) | {0x01}  # RSTn, SOI, EOI, TEM
_JPEG_SOS = 0xDA


class ImageFormat(StrEnum):
    JPEG = "jpeg"
    PNG = "png"

    @property
    def content_type(self) -> str:
        return f"image/{self.value}"

    @property
    def extension(self) -> str:
        return "jpg" if self is ImageFormat.JPEG else "png"


@dataclass(frozen=True)
class ImageInfo:
    format: ImageFormat
    width: int
    height: int

    @property
    def content_type(self) -> str:
        return self.format.content_type


class ImageRejected(Exception):
    """An image refused with the HTTP status that says why (413, 415 or 422)."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


def sniff_format(data: bytes) -> ImageFormat | None:
    """The format the magic bytes announce, or None when neither JPEG nor PNG."""
    if data.startswith(JPEG_MAGIC):
        return ImageFormat.JPEG
    if data.startswith(PNG_MAGIC):
        return ImageFormat.PNG
    return None


def _jpeg_dimensions(data: bytes) -> tuple[int, int]:
    """(width, height) from the first SOF segment; walks segment headers only."""
    position, end = 2, len(data)
    while position < end:
        if data[position] != 0xFF:
            raise ImageRejected(422, "malformed JPEG: bad segment marker")
        while position < end and data[position] == 0xFF:  # fill bytes
            position += 1
        if position >= end:
            break
        marker = data[position]
        position += 1
        if marker in _JPEG_STANDALONE_MARKERS:
            continue
        if position + 2 > end:
            break
        (length,) = struct.unpack_from(">H", data, position)
        if length < 2:
            raise ImageRejected(422, "malformed JPEG: bad segment length")
        if marker in _JPEG_SOF_MARKERS:
            if length < 7 or position + 7 > end:
                break
            height, width = struct.unpack_from(">HH", data, position + 3)
            return width, height
        if marker == _JPEG_SOS:
            raise ImageRejected(422, "malformed JPEG: no frame header before scan data")
        position += length
    raise ImageRejected(422, "malformed JPEG: truncated before the frame header")


def _png_dimensions(data: bytes) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, which must come first and pass its CRC."""
    if len(data) < 33:
        raise ImageRejected(422, "malformed PNG: truncated header")
    length, chunk_type = struct.unpack_from(">I4s", data, 8)
    if chunk_type != b"IHDR" or length != 13:
        raise ImageRejected(422, "malformed PNG: IHDR is not the first chunk")
    (crc,) = struct.unpack_from(">I", data, 29)
    if zlib.crc32(data[12:29]) != crc:
        raise ImageRejected(422, "malformed PNG: IHDR checksum mismatch")
    width, height = struct.unpack_from(">II", data, 16)
    return width, height


def inspect_image(data: bytes, max_bytes: int, max_pixels: int) -> ImageInfo:
    """The image's format and size, or ImageRejected: 413 over a limit, 415 not JPEG/PNG, 422."""
    if not data:
        raise ImageRejected(422, "image is empty")
    if len(data) > max_bytes:
        raise ImageRejected(413, f"image is {len(data)} bytes; the limit is {max_bytes}")
    image_format = sniff_format(data)
    if image_format is None:
        raise ImageRejected(415, "image must be JPEG or PNG")
    if image_format is ImageFormat.JPEG:
        width, height = _jpeg_dimensions(data)
    else:
        width, height = _png_dimensions(data)
    if width <= 0 or height <= 0:
        raise ImageRejected(422, f"malformed {image_format.value}: zero width or height")
    if width * height > max_pixels:
        raise ImageRejected(
            413, f"image is {width}x{height} pixels; the limit is {max_pixels} pixels"
        )
    return ImageInfo(image_format, width, height)
