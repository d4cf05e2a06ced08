"""Reading the sign-in link from a picture of the login page's QR code.

zxing-cpp does the decoding; it takes raw pixels, which :mod:`lychgate.device.png` provides,
so no image library is needed. zxing-cpp is optional at run time (it is a test dependency of
Lychgate): without it, the device still takes the link as text. JPEG would need an image
library, so only PNG is read.

An image with several different QR codes is refused rather than guessed at: the person meant
one of them, and picking the wrong one could approve a stranger's sign-in.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import Final

from lychgate.device.png import decode_png, is_png
from lychgate.errors import ClientError

MAX_IMAGE_BYTES: Final = 64 * 1024 * 1024
_JPEG_MAGIC: Final = b"\xff\xd8\xff"
_SEPARATORS: Final = frozenset({"/", os.sep, os.altsep or "/"})


def _optional_zxing() -> ModuleType | None:
    # An optional dependency, looked up once at import: not a config read, and no cycle.
    try:
        return importlib.import_module("zxingcpp")
    except ImportError:
        return None


_ZXING: Final = _optional_zxing()
_FORMATS: Final = {1: "Lum", 2: "LumA", 3: "RGB", 4: "RGBA"}


def qr_reader_available() -> bool:
    return _ZXING is not None


def link_from(argument: str) -> str:
    """A sign-in link given as text, or read from the QR code in the PNG file it names."""
    if "://" in argument:
        return argument
    path = Path(argument).expanduser()
    if not path.is_file():
        if _names_a_file(argument) and not path.exists():
            raise ClientError(f"no such file: {argument}", field="image")
        raise ClientError(
            "expected a sign-in link (https://.../.lychgate/d/login/...) or a PNG image of its "
            "QR code",
            field="url",
        )
    return read_qr_file(path)


def _names_a_file(argument: str) -> bool:
    """Whether ``argument`` (no ``://``) reads as a file name: a ``.png`` one, or a path,
    but not a sign-in link whose scheme was left out (``gate.example/.lychgate/d/login/…``)."""
    if "/.lychgate/" in argument:
        return False
    return argument.lower().endswith(".png") or any(sep in argument for sep in _SEPARATORS)


def read_qr_file(path: Path) -> str:
    """The text of the one QR code in the PNG image at ``path``. Blocking: call off the loop."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_IMAGE_BYTES + 1)
    except OSError as exc:
        raise ClientError(f"cannot read {path}: {exc.strerror}", field="image") from None
    if len(data) > MAX_IMAGE_BYTES:
        raise ClientError(f"{path} is too large for a screenshot", field="image")
    return read_qr(data)


def read_qr(data: bytes) -> str:
    """The text of the one QR code in a PNG image's bytes."""
    if data.startswith(_JPEG_MAGIC):
        raise ClientError(
            "JPEG images cannot be read (no image library); take a PNG screenshot, or pass "
            "the link shown under the QR code",
            field="image",
        )
    if not is_png(data):
        raise ClientError("not a PNG image, and not a sign-in link", field="image")
    if _ZXING is None:
        raise ClientError(
            "reading QR images needs the zxing-cpp package (pip install zxing-cpp); or pass "
            "the link shown under the QR code",
            field="image",
        )
    raster = decode_png(data)
    image = _ZXING.ImageView(
        raster.pixels,
        raster.width,
        raster.height,
        getattr(_ZXING.ImageFormat, _FORMATS[raster.channels]),
    )
    found = _ZXING.read_barcodes(image, formats=_ZXING.BarcodeFormat.QRCode)
    texts = {str(code.text) for code in found if code.valid}
    if not texts:
        raise ClientError("no QR code found in the image", field="image")
    if len(texts) > 1:
        raise ClientError(
            "the image holds several different QR codes; crop it to the one to approve",
            field="image",
        )
    return texts.pop()
