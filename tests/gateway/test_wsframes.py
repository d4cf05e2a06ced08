"""Frame boundaries in a WebSocket byte stream, and the gateway's close frame
(lychgate.gateway.http.wsframes)."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lychgate.gateway.http.wsframes import FrameCursor, close_frame


def frame(payload: bytes, *, opcode: int = 0x2, masked: bool = False) -> bytes:
    """A frame as RFC 6455 section 5.2 lays it out (the mask key is not applied: the cursor
    never reads payloads)."""
    size = len(payload)
    mask = 0x80 if masked else 0
    if size < 126:
        head = bytes((0x80 | opcode, mask | size))
    elif size < 1 << 16:
        head = bytes((0x80 | opcode, mask | 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, mask | 127)) + size.to_bytes(8, "big")
    return head + (os.urandom(4) if masked else b"") + payload


SIZES = [0, 1, 125, 126, 127, 65535, 65536, 70000]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("masked", [False, True])
def test_a_frame_split_anywhere_ends_where_it_ends(size: int, masked: bool) -> None:
    data = frame(os.urandom(size), masked=masked)
    cuts = sorted(
        {1, 2, 3, 4, 9, 10, 11, 14, len(data) // 2, len(data) - 1} & set(range(1, len(data)))
    )
    for cut in cuts:
        cursor = FrameCursor()
        cursor.advance(data[:cut])
        assert not cursor.at_boundary, cut
        cursor.advance(data[cut:])
        assert cursor.at_boundary, cut


@given(
    st.lists(st.sampled_from([*SIZES[:5], 300]), min_size=1, max_size=6),
    st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=20),
)
def test_many_frames_in_any_reads_are_followed(sizes: list[int], reads: list[int]) -> None:
    frames = [frame(bytes(n)) for n in sizes]
    stream = b"".join(frames)
    ends = set()
    total = 0
    for f in frames:
        total += len(f)
        ends.add(total)
    cursor = FrameCursor()
    pos = 0
    for n in reads * (len(stream) // max(1, sum(reads)) + 1):
        if pos >= len(stream):
            break
        chunk = stream[pos : pos + n]
        pos += len(chunk)
        cursor.advance(chunk)
        assert cursor.at_boundary == (pos in ends), pos
    cursor.advance(stream[pos:])
    assert cursor.at_boundary


def test_a_fresh_cursor_is_at_a_boundary_and_empty_reads_change_nothing() -> None:
    cursor = FrameCursor()
    assert cursor.at_boundary
    cursor.advance(b"")
    assert cursor.at_boundary


def test_the_close_frame_carries_the_code_and_the_reason() -> None:
    assert close_frame(1008, "session ended") == b"\x88\x0f\x03\xf0session ended"


def test_a_long_reason_is_cut_to_fit_a_control_frame_on_a_character() -> None:
    data = close_frame(1001, "é" * 100)  # 200 bytes of UTF-8
    assert data[0] == 0x88
    assert data[1] == len(data) - 2 <= 125
    (data[4:]).decode("utf-8")  # cut between characters, never inside one
    assert len(data[4:]) == 122
