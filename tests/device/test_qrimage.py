"""Reading the sign-in link from a picture of the QR code (PNG only, through zxing-cpp)."""

from __future__ import annotations

from pathlib import Path

import pytest

from device.qr import qr_png, screenshot_png
from lychgate.device.qrimage import link_from, read_qr, read_qr_file
from lychgate.errors import ClientError

LINK = "https://gate.example.test/.lychgate/d/login/l_Abc-123_xyz"


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"dark": "darkblue", "light": "#ffeecc"},
        {"light": None},  # transparent background
        {"dark": "red", "light": "white"},
    ],
)
def test_segno_pngs(options: dict[str, object]) -> None:
    assert read_qr(qr_png(LINK, **options)) == LINK


@pytest.mark.parametrize("colour", [2, 6])
def test_a_screenshot_in_rgb_or_rgba(colour: int) -> None:
    assert read_qr(screenshot_png(LINK, colour=colour)) == LINK


def test_two_different_codes_are_refused() -> None:
    """Guessing which one was meant could approve a stranger's sign-in."""
    with pytest.raises(ClientError, match="several"):
        read_qr(screenshot_png(LINK, LINK.replace("xyz", "abc")))


def test_the_same_code_twice_is_fine() -> None:
    assert read_qr(screenshot_png(LINK, LINK)) == LINK


def test_no_code() -> None:
    blank = screenshot_png()
    with pytest.raises(ClientError, match="no QR code"):
        read_qr(blank)


def test_jpeg_says_what_to_do() -> None:
    with pytest.raises(ClientError, match="PNG"):
        read_qr(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00")


def test_other_files() -> None:
    with pytest.raises(ClientError, match="not a PNG"):
        read_qr(b"%PDF-1.7")


def test_link_from_text_or_file(tmp_path: Path) -> None:
    assert link_from(LINK) == LINK
    image = tmp_path / "qr.png"
    image.write_bytes(qr_png(LINK))
    assert link_from(str(image)) == LINK
    assert read_qr_file(image) == LINK


def test_link_from_neither(tmp_path: Path) -> None:
    with pytest.raises(ClientError, match="sign-in link"):
        link_from("gate.example.test/.lychgate/d/login/x")
    with pytest.raises(ClientError, match="sign-in link"):
        link_from("l_Abc-123_xyz")
    with pytest.raises(ClientError, match="sign-in link"):
        link_from(str(tmp_path))  # a folder is there: no "no such file"


@pytest.mark.parametrize("name", ["missing.png", "shots/qr", "QR.PNG"])
def test_a_file_name_that_names_nothing(tmp_path: Path, name: str) -> None:
    """What reads as a file name (a .png, or a path) and is not there says so, not "expected
    a sign-in link", which sent the user looking for what was wrong with the link."""
    missing = str(tmp_path / name)
    for argument in (missing, "nothere.png"):
        with pytest.raises(ClientError) as caught:
            link_from(argument)
        assert caught.value.message == f"no such file: {argument}"
