"""A small, strict PNG decoder: enough to hand a screenshot of a QR code to zxing-cpp.

Why our own: Lychgate has no image library (Pillow and numpy are not dependencies), and
zxing-cpp reads raw pixel buffers. PNG (RFC 2083; W3C PNG 3rd edition) needs only zlib, which
is in the standard library. We decode non-interlaced images of every colour type and bit
depth to 8-bit samples: grey, grey+alpha, RGB, RGBA, and palette (mapped to grey, with
``tRNS`` alpha composited on white, as a QR code on a transparent page would look).

The file is untrusted input, so every length is bounded before it is allocated: the image
size is capped, the decompressed size is computed from the header and zlib is told to stop
there (a "zip bomb" cannot inflate past it), and every chunk's CRC is checked.
"""

from __future__ import annotations

import functools
import struct
import zlib
from dataclasses import dataclass
from typing import Final

from lychgate.errors import ClientError

SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
MAX_SIDE: Final = 16_384
MAX_PIXELS: Final = 40_000_000  # an 8K screenshot is 33 M
_CHANNELS: Final = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel
_DEPTHS: Final = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}


@dataclass(frozen=True, slots=True)
class Raster:
    """Decoded pixels: ``channels`` 8-bit samples per pixel (1 grey, 2 grey+alpha, 3 RGB,
    4 RGBA), rows top to bottom, no padding."""

    width: int
    height: int
    channels: int
    pixels: bytes


@dataclass(frozen=True, slots=True)
class _Header:
    width: int
    height: int
    depth: int
    colour: int

    @property
    def bits_per_pixel(self) -> int:
        return _CHANNELS[self.colour] * self.depth

    @property
    def stride(self) -> int:
        return (self.width * self.bits_per_pixel + 7) // 8


def is_png(data: bytes) -> bool:
    return data.startswith(SIGNATURE)


def decode_png(data: bytes) -> Raster:
    """Decode a PNG file's bytes. Raises :class:`ClientError` (field ``image``) if it is not
    one we can read."""
    header, palette, alpha, compressed = _read_chunks(data)
    stride = header.stride
    expected = header.height * (stride + 1)  # each scanline starts with its filter type
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(compressed, expected)
    except zlib.error:
        raise _bad("its image data is corrupt") from None
    if len(raw) != expected:
        raise _bad("its image data has the wrong size")
    bpp = max(1, header.bits_per_pixel // 8)  # the filters' "bytes per complete pixel"
    rows = _unfilter(raw, header.height, stride, bpp)
    if header.colour == 3:
        return _from_palette(header, rows, palette, alpha)
    channels = _CHANNELS[header.colour]
    samples = b"".join(_to_8bit(row, header.depth, header.width * channels) for row in rows)
    return Raster(header.width, header.height, channels, samples)


def _read_chunks(data: bytes) -> tuple[_Header, bytes, bytes, bytes]:
    if not is_png(data):
        raise _bad("it is not a PNG file")
    pos = len(SIGNATURE)
    header: _Header | None = None
    palette = alpha = b""
    idat: list[bytes] = []
    while True:
        if pos + 12 > len(data):
            raise _bad("it is truncated")
        length, kind = struct.unpack_from(">I4s", data, pos)
        end = pos + 8 + length
        if end + 4 > len(data):
            raise _bad("it is truncated")
        body = data[pos + 8 : end]
        (crc,) = struct.unpack_from(">I", data, end)
        if zlib.crc32(kind + body) != crc:
            raise _bad("a chunk is corrupt (bad CRC)")
        pos = end + 4
        if header is None and kind != b"IHDR":
            raise _bad("it does not start with a header")
        if kind == b"IHDR":
            header = _parse_header(body)
        elif kind == b"PLTE":
            palette = body
        elif kind == b"tRNS":
            alpha = body
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        elif kind[0] & 0x20 == 0:  # an unknown critical chunk (upper-case first letter)
            raise _bad(f"it uses an unsupported feature ({kind.decode('latin-1')!r})")
    assert header is not None
    if header.colour == 3 and not palette:
        raise _bad("its palette is missing")
    return header, palette, alpha, b"".join(idat)


def _parse_header(body: bytes) -> _Header:
    if len(body) != 13:
        raise _bad("its header is corrupt")
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(
        ">IIBBBBB", body
    )
    if colour not in _DEPTHS or depth not in _DEPTHS[colour] or compression or filtering:
        raise _bad("its header is invalid")
    if interlace:
        raise _bad("interlaced PNGs are not supported; save it without interlacing")
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE) or width * height > MAX_PIXELS:
        raise _bad("the image is too large")
    return _Header(width, height, depth, colour)


def _unfilter(raw: bytes, height: int, stride: int, bpp: int) -> list[bytes]:
    """Undo the per-scanline filters (PNG spec §9.2: None, Sub, Up, Average, Paeth)."""
    previous = bytes(stride)
    rows: list[bytes] = []
    for y in range(height):
        start = y * (stride + 1)
        kind = raw[start]
        line = bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 1:
            _sub(line, bpp)
        elif kind == 2:
            line = bytearray(_add_bytes(line, previous))
        elif kind == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + previous[i]) >> 1)) & 0xFF
        elif kind == 4:
            _paeth(line, previous, bpp)
        elif kind != 0:
            raise _bad("a scanline has an unknown filter")
        previous = bytes(line)
        rows.append(previous)
    return rows


def _sub(line: bytearray, bpp: int) -> None:
    for i in range(bpp, len(line)):
        line[i] = (line[i] + line[i - bpp]) & 0xFF


def _paeth(line: bytearray, up: bytes, bpp: int) -> None:
    # The Paeth predictor (PNG spec §9.4), written out: in pure Python this loop is the hot
    # spot (a few seconds for a full-HD screenshot; a cropped one is instant).
    out = list(line)
    for i in range(min(bpp, len(out))):  # a = c = 0 here, so the predictor is b
        out[i] = (out[i] + up[i]) & 0xFF
    for i in range(bpp, len(out)):
        a = out[i - bpp]
        b = up[i]
        c = up[i - bpp]
        pa = b - c  # p - a, where p = a + b - c
        pb = a - c  # p - b
        pc = pa + pb  # p - c
        if pa < 0:
            pa = -pa
        if pb < 0:
            pb = -pb
        if pc < 0:
            pc = -pc
        if pa <= pb and pa <= pc:
            out[i] = (out[i] + a) & 0xFF
        elif pb <= pc:
            out[i] = (out[i] + b) & 0xFF
        else:
            out[i] = (out[i] + c) & 0xFF
    line[:] = bytes(out)


def _add_bytes(a: bytes | bytearray, b: bytes) -> bytes:
    """Byte-wise ``(a + b) mod 256`` on whole rows at once: SWAR on Python ints.

    Adding the low 7 bits of each byte cannot carry into the next byte; the top bits are then
    added without carry by XOR.
    """
    n = len(a)
    if n == 0:
        return b""
    low = int.from_bytes(b"\x7f" * n, "big")
    high = int.from_bytes(b"\x80" * n, "big")
    x, y = int.from_bytes(a, "big"), int.from_bytes(b, "big")
    total = ((x & low) + (y & low)) ^ ((x ^ y) & high)
    return total.to_bytes(n, "big")


def _to_8bit(row: bytes, depth: int, count: int) -> bytes:
    """``count`` samples of ``depth`` bits, scaled to 0-255."""
    if depth == 8:
        return row[:count]
    if depth == 16:
        return row[0 : 2 * count : 2]  # the high byte of each big-endian sample
    return _unpack_bits(row, depth, scale=255 // ((1 << depth) - 1))[:count]


def _unpack_bits(row: bytes, depth: int, *, scale: int) -> bytes:
    table = _bits_table(depth, scale)
    return b"".join(table[value] for value in row)


@functools.cache
def _bits_table(depth: int, scale: int) -> tuple[bytes, ...]:
    """For each byte value, its ``8 // depth`` samples (most significant first), scaled."""
    mask = (1 << depth) - 1
    return tuple(
        bytes(((value >> (8 - depth * (k + 1))) & mask) * scale for k in range(8 // depth))
        for value in range(256)
    )


def _from_palette(header: _Header, rows: list[bytes], palette: bytes, alpha: bytes) -> Raster:
    entries = len(palette) // 3
    # Each entry's grey (ITU-R BT.601 luma), composited over white with its tRNS alpha.
    grey = bytearray(256)
    for i in range(entries):
        r, g, b = palette[3 * i : 3 * i + 3]
        luma = (299 * r + 587 * g + 114 * b) // 1000
        a = alpha[i] if i < len(alpha) else 255
        grey[i] = (luma * a + 255 * (255 - a)) // 255
    lookup = bytes(grey)
    width = header.width
    indices = (
        (row[:width] for row in rows)
        if header.depth == 8
        else (_unpack_bits(row, header.depth, scale=1)[:width] for row in rows)
    )
    pixels = b"".join(index_row.translate(lookup) for index_row in indices)
    return Raster(header.width, header.height, 1, pixels)


def _bad(why: str) -> ClientError:
    return ClientError(f"cannot read the image: {why}", field="image")
