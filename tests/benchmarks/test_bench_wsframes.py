"""The minimal RFC 6455 framing used by the WebSocket scenario (bench/wsframes.py)."""

from __future__ import annotations

import pytest

from bench.wsframes import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_TEXT,
    FrameError,
    FrameReader,
    HandshakeError,
    Message,
    apply_mask,
    check_upgrade_response,
    encode_frame,
    upgrade_key,
    upgrade_request,
    upgrade_response,
)
from lychgate.gateway.http.wsframes import accept_for


def test_accept_value_matches_the_rfc_example() -> None:
    # RFC 6455 section 1.3
    assert accept_for("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_mask_is_its_own_inverse() -> None:
    data = bytes(range(37))
    mask = b"\x01\x02\x03\x04"
    assert apply_mask(data, mask) != data
    assert apply_mask(apply_mask(data, mask), mask) == data
    assert apply_mask(b"", mask) == b""


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536])
def test_client_frames_round_trip_through_a_server_reader(size: int) -> None:
    payload = bytes(i % 251 for i in range(size))
    frame = encode_frame(OP_BINARY, payload, masked=True)
    reader = FrameReader(expect_masked=True, max_size=1 << 17)
    assert reader.feed(frame[:-1]) == []  # one byte short: nothing complete yet
    assert reader.feed(frame[-1:]) == [Message(OP_BINARY, payload)]


def test_server_frames_are_unmasked() -> None:
    frame = encode_frame(OP_TEXT, b"hi", masked=False)
    assert frame == b"\x81\x02hi"
    assert FrameReader(expect_masked=False).feed(frame) == [Message(OP_TEXT, b"hi")]


def test_fragments_are_joined_and_control_frames_pass_between_them() -> None:
    first = bytearray(encode_frame(OP_TEXT, b"hel", masked=False))
    first[0] &= 0x7F  # FIN off
    ping = encode_frame(OP_PING, b"p", masked=False)
    last = encode_frame(OP_CONTINUATION, b"lo", masked=False)
    reader = FrameReader(expect_masked=False)
    assert reader.feed(bytes(first) + ping + last) == [
        Message(OP_PING, b"p"),
        Message(OP_TEXT, b"hello"),
    ]


@pytest.mark.parametrize(
    ("data", "expect_masked"),
    [
        (encode_frame(OP_BINARY, b"x", masked=False), True),  # client frame not masked
        (encode_frame(OP_BINARY, b"x", masked=True), False),  # server frame masked
        (b"\xc2\x00", False),  # RSV1 without an extension
        (encode_frame(OP_CONTINUATION, b"x", masked=False), False),  # nothing to continue
    ],
)
def test_bad_frames_are_refused(data: bytes, expect_masked: bool) -> None:
    with pytest.raises(FrameError):
        FrameReader(expect_masked=expect_masked).feed(data)


def test_oversized_frame_is_refused_before_its_payload_arrives() -> None:
    head = encode_frame(OP_BINARY, bytes(70_000), masked=False)[:10]
    with pytest.raises(FrameError, match="over the limit"):
        FrameReader(expect_masked=False, max_size=65_536).feed(head)


def test_handshake_round_trip() -> None:
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    request = upgrade_request("127.0.0.1:1", "/ws", key, {"Cookie": "lychgate=x"})
    head = request[: request.index(b"\r\n\r\n")]
    assert b"\r\nCookie: lychgate=x" in head
    assert upgrade_key(head) == key
    response = upgrade_response(key)
    check_upgrade_response(response[: response.index(b"\r\n\r\n")], key)


def test_plain_requests_are_not_upgrades() -> None:
    assert upgrade_key(b"GET / HTTP/1.1\r\nHost: x") is None
    no_version = (
        b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Key: k"
    )
    assert upgrade_key(no_version) is None


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 302 Found\r\nLocation: /login",
        b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: wrong",
    ],
)
def test_refused_or_wrong_upgrade_responses_raise(head: bytes) -> None:
    with pytest.raises(HandshakeError):
        check_upgrade_response(head, "dGhlIHNhbXBsZSBub25jZQ==")


def test_close_frame_carries_its_status() -> None:
    frame = encode_frame(OP_CLOSE, (1000).to_bytes(2, "big"), masked=False)
    assert FrameReader(expect_masked=False).feed(frame) == [Message(OP_CLOSE, b"\x03\xe8")]
