"""The ``serve --demo`` banner's advice when ``listen`` and ``public_url`` disagree.

It said "set it with `lychgate init --public-url`", but init refuses to change an existing
deployment: the fix is an edit of public_url in the deployment's lychgate.toml.
"""

from __future__ import annotations

from pathlib import Path

from cli.test_cli import lychgate
from lychgate.config import load_settings
from lychgate.demo.banner import listen_mismatch


def test_the_advice_names_the_file_to_edit(data_dir: Path) -> None:
    settings = load_settings(data_dir, {}, listen="127.0.0.1:25080")
    warning = listen_mismatch(settings)
    assert warning is not None
    assert f"edit public_url in {data_dir / 'lychgate.toml'}" in warning
    assert "init --public-url" not in warning


def test_init_indeed_does_not_change_public_url(data_dir: Path) -> None:
    """Why the advice is not ``init --public-url``: on an existing deployment it is refused."""
    d = str(data_dir)
    assert lychgate("init", "--dir", d)[0] == 0
    code, out = lychgate("init", "--dir", d, "--public-url", "http://127.0.0.1:25080")
    assert code != 0
    assert "lychgate.toml" in out
    assert "25080" not in (data_dir / "lychgate.toml").read_text()
