"""QR code pictures for tests: segno's own PNGs, and rasters built from its matrices."""

from __future__ import annotations

import io

import segno

from device.pngenc import encode_png


def qr_png(text: str, **options: object) -> bytes:
    """``text`` as segno writes a PNG (1-bit grey or palette, depending on colours)."""
    out = io.BytesIO()
    segno.make_qr(text, error="m").save(out, kind="png", scale=4, **options)
    return out.getvalue()


def qr_rows(text: str, scale: int = 4) -> list[list[int]]:
    """``text`` as rows of 8-bit grey samples (dark 0, light 255), with a quiet zone."""
    matrix = segno.make_qr(text, error="m").matrix_iter(scale=scale, border=4)
    return [[0 if dark else 255 for dark in row] for row in matrix]


def screenshot_png(*texts: str, colour: int = 2) -> bytes:
    """A light "page" with the QR codes of ``texts`` side by side, as RGB (2) or RGBA (6)."""
    codes = [qr_rows(t) for t in texts]
    height = max((len(c) for c in codes), default=100) + 40
    width = sum(len(c[0]) for c in codes) + 40 * (len(codes) + 1)
    grey = [[250] * width for _ in range(height)]
    x = 40
    for code in codes:
        for y, row in enumerate(code):
            grey[20 + y][x : x + len(row)] = row
        x += len(code[0]) + 40
    per_pixel = 3 if colour == 2 else 4
    rows = [
        [v for g in row for v in ((g, g, g) if per_pixel == 3 else (g, g, g, 255))] for row in grey
    ]
    return encode_png(width, height, rows, colour=colour, depth=8, filters=(0, 1, 2, 3, 4))
