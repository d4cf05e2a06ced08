"""The CLI over real sockets and TLS: ``--ca`` trusts an internal CA, nothing else does.

The fake server runs under uvicorn in a thread of its own (the CLI runs its own event loops),
with a certificate from a trustme CA that the system does not trust.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
import uvicorn
from typer.testing import CliRunner, Result

from device.conftest import USER
from device.fakeserver import FakeServer
from lychgate.cli.main import app
from lychgate.device.keyfile import load_key_file

pytestmark = pytest.mark.loopback

runner = CliRunner()


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def served(ca: trustme.CA, tmp_path: Path) -> Iterator[FakeServer]:
    """The fake server on https://localhost:<port> (the clock is the real one here)."""
    cert = ca.issue_cert("localhost")
    cert_file, key_file = tmp_path / "server.pem", tmp_path / "server.key"
    cert.private_key_pem.write_to_path(str(key_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    fake = FakeServer(public_url=f"https://localhost:{port}")
    fake.codes["code-1"] = dict(USER)
    fake.apps = [{"slug": "wiki", "name": "Wiki", "description": "", "icon": "", "url": "/"}]
    config = uvicorn.Config(
        fake.asgi(),
        ssl_certfile=str(cert_file),
        ssl_keyfile=str(key_file),
        lifespan="off",
        log_config=None,
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            thread.join(0.01)
            assert thread.is_alive(), "uvicorn did not start"
        yield fake
    finally:
        server.should_exit = True
        thread.join(10)
        listener.close()


def device(*args: str) -> Result:
    return runner.invoke(app, ["device", *args], env={"COLUMNS": "200"})


def test_enroll_with_the_internal_ca_then_use_it(
    served: FakeServer, ca_file: Path, tmp_path: Path
) -> None:
    key = str(tmp_path / "device.json")
    link = served.public_url + "/.lychgate/enroll/code-1"
    result = device("enroll", link, "--key", key, "--ca", str(ca_file))
    assert result.exit_code == 0, result.output
    assert load_key_file(Path(key)).record.ca_file == str(ca_file.resolve())
    # The CA given at enrollment is remembered: no --ca needed afterwards.
    result = device("apps", "--key", key)
    assert result.exit_code == 0, result.output
    assert "Wiki" in result.output
    assert "ca.pem" in device("status", "--key", key).output


def test_an_unknown_ca_is_refused_with_a_hint(served: FakeServer, tmp_path: Path) -> None:
    link = served.public_url + "/.lychgate/enroll/code-1"
    result = device("enroll", link, "--key", str(tmp_path / "device.json"))
    assert result.exit_code == 1
    assert "--ca" in result.output
    assert "code-1" in served.codes  # nothing reached the server
    assert not (tmp_path / "device.json").exists()


def test_a_bad_ca_file_fails_before_the_link_is_spent(served: FakeServer, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.pem"
    bogus.write_text("not a certificate\n")
    link = served.public_url + "/.lychgate/enroll/code-1"
    result = device("enroll", link, "--key", str(tmp_path / "d.json"), "--ca", str(bogus))
    assert result.exit_code == 2
    assert "CA file" in result.output
    assert "code-1" in served.codes
