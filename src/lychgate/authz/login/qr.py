"""QR codes of sign-in links, as SVG (segno; ISO/IEC 18004)."""

from __future__ import annotations

import io
from typing import Final

import segno

TITLE: Final = "QR code of the sign-in link"


def qr_svg(data: str, *, title: str = TITLE) -> str:
    """A standalone SVG (usable inline in HTML too) of a QR code holding ``data``.

    Error correction level M survives a little glare on a screen; the four-module quiet zone is
    the standard's minimum. Dark on an explicit white square, so it scans on a dark page too.
    Sized by its ``viewBox`` only: CSS decides how large it is drawn.
    """
    code = segno.make(data, error="m", micro=False)
    out = io.BytesIO()
    code.save(
        out,
        kind="svg",
        scale=1,
        border=4,
        dark="#000",
        light="#fff",
        xmldecl=False,
        svgns=True,
        title=title,
        svgclass="qr-code",
        lineclass=None,
        omitsize=True,
    )
    return out.getvalue().decode("utf-8")
