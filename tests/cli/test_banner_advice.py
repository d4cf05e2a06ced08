"""The ``serve --demo`` banner's advice when ``listen`` and ``public_url`` disagree.

It said "set it with `lychgate init --public-url`", but init refuses to change an existing
deployment: the fix is an edit of public_url in the deployment's lychgate.toml, or serving on
the public URL's port (listen), which the gateway's own warning names.
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
    toml = data_dir / "lychgate.toml"
    assert (
        f'make public_url name this one (public_url = "http://localhost:25080" in {toml}' in warning
    )
    # init only for a new deployment: on this one it is refused (below).
    new = "for a new deployment, lychgate init --dir NEW_DIR --public-url http://localhost:25080"
    assert f"{new} --listen 127.0.0.1:25080)" in warning
    assert "init --public-url" not in warning


def test_the_advice_agrees_with_the_gateways_warning(data_dir: Path) -> None:
    """The gateway warns 'browsers will not reach it (listen = "127.0.0.1:8080", or
    --listen)'; the banner named only public_url, as if listen were not a way out."""
    warning = listen_mismatch(load_settings(data_dir, {}, listen="127.0.0.1:18301"))
    assert warning is not None
    toml = data_dir / "lychgate.toml"
    assert "Serve on its port (--listen 127.0.0.1:8080" in warning
    assert f'listen = "127.0.0.1:8080" in {toml}' in warning


def test_init_indeed_does_not_change_public_url(data_dir: Path) -> None:
    """Why the advice is not ``init --public-url``: on an existing deployment it is refused."""
    d = str(data_dir)
    assert lychgate("init", "--dir", d)[0] == 0
    code, out = lychgate("init", "--dir", d, "--public-url", "http://127.0.0.1:25080")
    assert code != 0
    assert "lychgate.toml" in out
    assert "25080" not in (data_dir / "lychgate.toml").read_text()
