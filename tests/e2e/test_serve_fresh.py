"""``lychgate serve`` on a directory that holds nothing yet, without the demo apps.

serve says it creates the deployment "like `lychgate init`", but it made the files alone: no
signing key, so authz answered every sign-in 503, and no admin setup link was printed. That
is what `make run SERVE_ARGS=` does on a fresh machine.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from e2e.deployment import free_port, lychgate, serve
from lychgate.cli.serve import _print_tls_changes
from lychgate.config import load_settings
from lychgate.tls.files import TlsPaths

pytestmark = [pytest.mark.loopback, pytest.mark.slow]


async def test_serve_on_a_fresh_directory_is_ready_to_sign_in(tmp_path: Path) -> None:
    data_dir = tmp_path  # empty but for the log the harness writes there
    async with serve(data_dir, free_port()) as served:
        # The setup link is printed before the processes start, so it is in the log by now.
        log = await asyncio.to_thread(served.log.read_text)
    assert "Admin setup link (one use, valid 24 hours)" in log
    assert "lychgate device enroll http://localhost:8080/.lychgate/enroll/" in log
    assert "holds no signing key" not in log
    keys = await asyncio.to_thread(lychgate, "keys", "list", "--dir", str(data_dir))
    assert "signing" in keys


@pytest.mark.parametrize(
    ("ca_created", "server_cert_issued", "said"),
    [
        (True, True, ["internal CA", "server certificate", "lychgate ca export --dir"]),
        (False, True, ["Issued a new TLS server certificate"]),
        (False, False, []),
    ],
)
def test_serve_says_what_it_did_to_the_tls_files(
    ca_created: bool,
    server_cert_issued: bool,
    said: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A certificate renewed at start (30 days before it ends) used to pass without a word.
    made = replace(
        TlsPaths.in_dir(tmp_path), ca_created=ca_created, server_cert_issued=server_cert_issued
    )
    settings = load_settings(tmp_path, {}, public_url="https://localhost:8443")
    _print_tls_changes(settings, made)
    out = capsys.readouterr().out
    assert all(text in out for text in said)
    assert bool(out) == bool(said)


async def test_serve_without_demo_notes_demo_apps_left_registered(tmp_path: Path) -> None:
    # An earlier `make run` registered them; `make run SERVE_ARGS=` runs none, and their
    # portal tiles answered 502 without a word why.
    data_dir = tmp_path
    socket = data_dir / "run" / "demo-whoami.sock"
    await asyncio.to_thread(lychgate, "init", "--dir", str(data_dir))
    add = ["app", "add", "--dir", str(data_dir), "--slug", "whoami", "--name", "Who am I"]
    await asyncio.to_thread(lychgate, *add, "--upstream", f"unix:{socket}")
    async with serve(data_dir, free_port()) as served:
        log = await asyncio.to_thread(served.log.read_text)
    assert "note: the demo apps whoami are registered but not running" in log
    assert f"lychgate app remove whoami --dir {data_dir}" in log
