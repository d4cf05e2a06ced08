"""The PNG decoder: every colour type, depth and filter, and hostile files refused cleanly."""

from __future__ import annotations

import contextlib
import struct
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device.pngenc import chunk, encode_png
from lychgate.device.png import MAX_SIDE, SIGNATURE, decode_png
from lychgate.errors import ClientError

W, H = 13, 7  # odd sizes exercise partial bytes at low bit depths
FILTERS = (0, 1, 2, 3, 4)


def samples(channels: int, depth: int, seed: int = 1) -> list[list[int]]:
    top = (1 << depth) - 1
    return [
        [(x * 37 + y * 101 + c * 53 + seed) % (top + 1) for x in range(W) for c in range(channels)]
        for y in range(H)
    ]


def to_8bit(value: int, depth: int) -> int:
    if depth == 16:
        return value >> 8
    return value * (255 // ((1 << depth) - 1))


@pytest.mark.parametrize(
    ("colour", "channels", "depths"),
    [
        (0, 1, (1, 2, 4, 8, 16)),  # grey
        (2, 3, (8, 16)),  # RGB
        (4, 2, (8, 16)),  # grey + alpha
        (6, 4, (8, 16)),  # RGBA
    ],
)
@pytest.mark.parametrize("filter_type", FILTERS)
def test_direct_colour(
    colour: int, channels: int, depths: tuple[int, ...], filter_type: int
) -> None:
    for depth in depths:
        rows = samples(channels, depth)
        data = encode_png(W, H, rows, colour=colour, depth=depth, filters=(filter_type,))
        raster = decode_png(data)
        assert (raster.width, raster.height, raster.channels) == (W, H, channels)
        expected = bytes(to_8bit(v, depth) for row in rows for v in row)
        assert raster.pixels == expected, (colour, depth, filter_type)


@pytest.mark.parametrize("depth", [1, 2, 4, 8])
def test_palette_maps_to_grey_over_white(depth: int) -> None:
    entries = 1 << depth
    palette = b"".join(bytes((i * 7 % 256, i * 13 % 256, i * 29 % 256)) for i in range(entries))
    # Entry 0 is fully transparent: a transparent page behind a QR code reads as white.
    trns = b"\x00" + b"\xff" * (entries - 1)
    rows = samples(1, depth)
    data = encode_png(
        W, H, rows, colour=3, depth=depth, filters=FILTERS, palette=palette, trns=trns
    )
    raster = decode_png(data)
    assert raster.channels == 1

    def grey(i: int) -> int:
        if i == 0:
            return 255
        r, g, b = palette[3 * i : 3 * i + 3]
        return (299 * r + 587 * g + 114 * b) // 1000

    assert raster.pixels == bytes(grey(v) for row in rows for v in row)


def test_mixed_filters_and_split_image_data() -> None:
    rows = samples(4, 8)
    data = encode_png(W, H, rows, colour=6, depth=8, filters=FILTERS, idat_parts=5)
    assert decode_png(data).pixels == bytes(v for row in rows for v in row)


def header(width: int, height: int, depth: int = 8, colour: int = 0, interlace: int = 0) -> bytes:
    return chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace))


def tiny(**kw: int) -> bytes:
    """A valid 1x1 grey PNG whose header fields can be overridden."""
    ihdr = header(**{"width": 1, "height": 1, **kw})
    return SIGNATURE + ihdr + chunk(b"IDAT", zlib.compress(b"\x00\x80")) + chunk(b"IEND", b"")


def test_tiny_is_valid() -> None:
    assert decode_png(tiny()).pixels == b"\x80"


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"GIF89a...", "not a PNG"),
        (SIGNATURE, "truncated"),
        (tiny()[:-5], "truncated"),
        (tiny().replace(b"IDAT", b"IDAT", 1)[:-13] + b"\x00" * 13, "corrupt"),
        (tiny(interlace=1), "interlaced"),
        (tiny(depth=3), "invalid"),
        (tiny(colour=5), "invalid"),
        (tiny(colour=2, depth=4), "invalid"),
        (tiny(width=0), "too large"),
        (tiny(width=MAX_SIDE + 1), "too large"),
        (tiny(width=MAX_SIDE, height=MAX_SIDE), "too large"),
        (tiny(colour=3), "palette is missing"),
        (SIGNATURE + chunk(b"IDAT", b"") + tiny()[8:], "does not start with a header"),
        (
            SIGNATURE + header(1, 1) + chunk(b"ZZZZ", b"") + tiny()[8 + 25 :],
            "unsupported feature",
        ),
        (
            SIGNATURE + header(1, 1) + chunk(b"IDAT", zlib.compress(b"\x07\x80")) + tiny()[-12:],
            "unknown filter",
        ),
        (
            SIGNATURE + header(1, 1) + chunk(b"IDAT", b"not zlib") + tiny()[-12:],
            "corrupt",
        ),
        (
            SIGNATURE + header(2, 2) + chunk(b"IDAT", zlib.compress(b"\x00\x01")) + tiny()[-12:],
            "wrong size",
        ),
    ],
)
def test_bad_files_are_refused(data: bytes, why: str) -> None:
    with pytest.raises(ClientError, match=why) as caught:
        decode_png(data)
    assert caught.value.field == "image"


def test_a_bad_crc_is_refused() -> None:
    data = bytearray(tiny())
    data[8 + 8 + 3] ^= 0x01  # flip a bit in IHDR's width, leaving its CRC as it was
    with pytest.raises(ClientError, match="CRC"):
        decode_png(bytes(data))


def test_a_decompression_bomb_stops_at_the_declared_size() -> None:
    """A 1x1 header with 64 MiB of zeros behind it (65 KiB compressed): zlib is stopped
    after the 2 bytes the header allows. Inflating it all would fail with "wrong size"."""
    compressed = zlib.compress(b"\x00" * (64 << 20), 1)
    data = SIGNATURE + header(1, 1) + chunk(b"IDAT", compressed) + chunk(b"IEND", b"")
    assert decode_png(data).pixels == b"\x00"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_fuzz_garbage_after_the_signature(tail: bytes) -> None:
    with contextlib.suppress(ClientError):
        decode_png(SIGNATURE + tail)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=8, max_value=60), st.integers(min_value=0, max_value=255))
def test_fuzz_one_corrupted_byte(position: int, value: int) -> None:
    data = bytearray(encode_png(W, H, samples(3, 8), colour=2, depth=8, filters=FILTERS))
    data[position] = value
    with contextlib.suppress(ClientError):
        decode_png(bytes(data))
