"""``serve --demo``'s banner off a terminal: the setup link without its QR code."""

from __future__ import annotations

from pathlib import Path

from lychgate.config import load_settings
from lychgate.demo.apps import Registration
from lychgate.demo.banner import next_steps
from lychgate.demo.bootstrap import DemoStart

LINK = "http://localhost:8080/.lychgate/enroll/abc123"


def test_without_a_qr_the_banner_still_gives_the_link(data_dir: Path) -> None:
    # serve passes no QR when stdout is a log file or a journal: a block of noise there.
    text = next_steps(
        load_settings(data_dir, {}), DemoStart(Registration((), ()), LINK), {}, qr=None
    )
    assert f"   {LINK}\n" in text
    assert f'lychgate device enroll {LINK} --user-name "Your Name"' in text
    assert "open it on your phone, or make this terminal the device:" in text
    assert "scan it" not in text
    assert not any(block in text for block in ("\u2580", "\u2584", "\u2588"))
