"""The upload's multipart parser on bodies as clients write them (httpx's encoder, the agent's
client) and on malformed ones: every part found whole, every malformed body a MultipartError
(never another exception), however it is cut."""

from __future__ import annotations

import httpx
import pytest

from cloud.api.multipart_form import (
    MAX_PART_HEADERS,
    FormPart,
    MultipartError,
    boundary_of,
    parse_form,
)

BOUNDARY = b"b0undary"


def _encoded(files: dict, data: dict) -> tuple[bytes, bytes]:
    request = httpx.Request("POST", "http://cloud/v1/captures", files=files, data=data)
    return request.read(), boundary_of(request.headers["content-type"])


def _body(*parts: bytes, preamble: bytes = b"", epilogue: bytes = b"") -> bytes:
    delimited = b"".join(b"--" + BOUNDARY + b"\r\n" + part + b"\r\n" for part in parts)
    return preamble + delimited + b"--" + BOUNDARY + b"--\r\n" + epilogue


def test_parts_as_httpx_encodes_them() -> None:
    image = bytes(range(256)) * 600 + b"\r\n--b0undar\r\n--"  # near-boundaries in the data
    body, boundary = _encoded(
        {"image": ("capture.jpg", image, "image/jpeg")}, {"metadata": '{"device_id": "CAM"}'}
    )
    assert parse_form(body, boundary, 5) == [
        FormPart("metadata", None, b'{"device_id": "CAM"}'),
        FormPart("image", "capture.jpg", image),
    ]


def test_preamble_epilogue_empty_parts_and_quoted_boundary() -> None:
    body = _body(
        b'Content-Disposition: form-data; name="metadata"\r\n\r\n',
        b'content-disposition: form-data; name="image"; filename=""\r\n'
        b"Content-Type: image/jpeg\r\n\r\nJPEG",
        preamble=b"ignored preamble\r\n",
        epilogue=b"ignored epilogue",
    )
    boundary = boundary_of('multipart/form-data; boundary="b0undary"')
    assert parse_form(body, boundary, 5) == [
        FormPart("metadata", None, b""),
        FormPart("image", "", b"JPEG"),
    ]


@pytest.mark.parametrize(
    ("content_type", "why"),
    [
        ("multipart/form-data", "boundary"),
        ("multipart/form-data; boundary=", "boundary"),
        ("multipart/form-data; boundary=" + "x" * 71, "boundary"),
    ],
)
def test_a_content_type_without_a_usable_boundary_is_refused(content_type: str, why: str) -> None:
    with pytest.raises(MultipartError, match=why):
        boundary_of(content_type)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"no boundary at all", "no opening boundary"),
        (b"--" + BOUNDARY + b"junk\r\n", "not followed by a line break"),
        (_body(b"Content-Disposition: form-data\r\n\r\nx"), "with a name"),
        (_body(b'Content-Disposition: attachment; name="a"\r\n\r\nx'), "with a name"),
        (_body(b"Content-Type: text/plain\r\n\r\nx"), "no Content-Disposition"),
        (_body(b'Content-Disposition : form-data; name="a"\r\n\r\nx'), "malformed header"),
        (_body(b'no colon\r\nContent-Disposition: form-data; name="a"\r\n\r\nx'), "malformed"),
        (_body(b"X-Long: " + b"y" * MAX_PART_HEADERS + b"\r\n\r\nx"), "headers do not end"),
        (_body(b'Content-Disposition: form-data; name="a"\r\n\r\n' + b"x" * 40)[:-20], "closed"),
    ],
)
def test_malformed_bodies_say_what_is_wrong(body: bytes, why: str) -> None:
    with pytest.raises(MultipartError, match=why):
        parse_form(body, BOUNDARY, 5)


def test_more_parts_than_allowed_are_refused() -> None:
    part = b'Content-Disposition: form-data; name="a"\r\n\r\nx'
    assert len(parse_form(_body(*[part] * 3), BOUNDARY, 3)) == 3
    with pytest.raises(MultipartError, match="more than 3 parts"):
        parse_form(_body(*[part] * 4), BOUNDARY, 3)


def test_a_body_cut_anywhere_is_a_multipart_error_or_its_whole_parts() -> None:
    body, boundary = _encoded(
        {"image": ("c.jpg", b"\xff\xd8 image \xff\xd9", "image/jpeg")}, {"metadata": "{}"}
    )
    whole = parse_form(body, boundary, 5)
    for cut in range(len(body)):
        try:
            parts = parse_form(body[:cut], boundary, 5)
        except MultipartError:
            continue
        # Only the closing line's tail may be missing: the parts are then all there.
        assert parts == whole, cut
