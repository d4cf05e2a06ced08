"""A tiny PNG *encoder* for tests: any colour type, bit depth and filter, so the decoder is
checked against every case the spec allows (segno only writes a few of them)."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def pack_samples(samples: Sequence[int], depth: int) -> bytes:
    """Pack one scanline's samples (each < 2**depth) into bytes, MSB first, padded."""
    if depth == 16:
        return b"".join(struct.pack(">H", s) for s in samples)
    if depth == 8:
        return bytes(samples)
    out = bytearray()
    per_byte = 8 // depth
    for i in range(0, len(samples), per_byte):
        group = list(samples[i : i + per_byte]) + [0] * (per_byte - len(samples[i : i + per_byte]))
        value = 0
        for s in group:
            value = (value << depth) | s
        out.append(value)
    return bytes(out)


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def filter_row(kind: int, row: bytes, prev: bytes, bpp: int) -> bytes:
    out = bytearray(len(row))
    for i, x in enumerate(row):
        a = row[i - bpp] if i >= bpp else 0
        b = prev[i]
        c = prev[i - bpp] if i >= bpp else 0
        predictor = [0, a, b, (a + b) >> 1, _paeth(a, b, c)][kind]
        out[i] = (x - predictor) & 0xFF
    return bytes(out)


def encode_png(
    width: int,
    height: int,
    rows: Sequence[Sequence[int]],
    *,
    colour: int,
    depth: int,
    filters: Sequence[int] = (0,),
    palette: bytes = b"",
    trns: bytes = b"",
    idat_parts: int = 1,
) -> bytes:
    """Encode ``rows`` (lists of samples) as a PNG; row y uses ``filters[y % len(filters)]``."""
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour]
    bpp = max(1, channels * depth // 8)
    raw = bytearray()
    prev = bytes(len(pack_samples(rows[0], depth)))
    for y, samples in enumerate(rows):
        line = pack_samples(samples, depth)
        kind = filters[y % len(filters)]
        raw.append(kind)
        raw += filter_row(kind, line, prev, bpp)
        prev = line
    data = zlib.compress(bytes(raw))
    step = max(1, len(data) // idat_parts + 1)
    idats = b"".join(chunk(b"IDAT", data[i : i + step]) for i in range(0, len(data), step))
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
    if palette:
        out += chunk(b"PLTE", palette)
    if trns:
        out += chunk(b"tRNS", trns)
    return out + idats + chunk(b"IEND", b"")
