"""A ``lychgate serve`` that is refused issues no admin setup link and creates nothing.

Each start prints a fresh setup link while no admin exists: a one-time secret that stays valid
for 24 hours. A port in use, a second serve on a running deployment, or a data directory too
long for a unix socket were refused only after serve had created the deployment's files and
issued (and printed) such a link; the second serve also noted demo apps "not running" that the
first one ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from e2e.deployment import exit_code, free_port, lychgate, serve
from fixtures.processes import kill_all_with
from lychgate.config import load_settings
from lychgate.demo.apps import WHOAMI
from lychgate.store import open_store
from lychgate.tokens import Purpose
from lychgate.unix_sockets import MAX_SOCKET_PATH_BYTES

pytestmark = [pytest.mark.loopback, pytest.mark.slow]

QR_BLOCKS = ("\u2580", "\u2584", "\u2588")  # the half and full blocks a terminal QR is drawn with


def _another_port(than: int) -> int:
    while (port := free_port()) == than:
        pass
    return port


@contextlib.contextmanager
def taken_port() -> Iterator[int]:
    """A loopback port that something else listens on while the block runs."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", free_port()))
        holder.listen()
        yield holder.getsockname()[1]


async def refused(
    data_dir: Path, port: int, *args: str, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """``lychgate serve ARGS --dir DATA_DIR --listen 127.0.0.1:PORT``, which must refuse to
    start, with ``env`` added to an environment rid of every other ``LYCHGATE_*``: its exit
    code, stdout and stderr. Output goes to files outside ``data_dir`` (whose contents the
    tests check), not pipes: a tree that wrongly starts must not hold them open."""
    logs = data_dir.parent / f"{data_dir.name[:20]}.{secrets.token_hex(4)}"
    out, err = Path(f"{logs}.out"), Path(f"{logs}.err")
    out_file = await asyncio.to_thread(out.open, "wb")
    err_file = await asyncio.to_thread(err.open, "wb")
    with out_file, err_file:  # the child has its own copies
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "lychgate", "serve", *args, "--dir", str(data_dir)),
            *("--listen", f"127.0.0.1:{port}"),
            stdout=out_file,
            stderr=err_file,
            env={k: v for k, v in os.environ.items() if not k.startswith("LYCHGATE_")}
            | (env or {}),
        )
    code = await exit_code(proc, data_dir, 20)
    said = await asyncio.to_thread(err.read_text)
    return code, await asyncio.to_thread(out.read_text), " ".join(said.split())  # unwrapped


async def open_setup_codes(data_dir: Path) -> int:
    """How many admin setup links of the deployment could still be redeemed."""
    settings = await asyncio.to_thread(load_settings, data_dir, {})
    async with await open_store(settings.effective_database_url.reveal()) as store:
        return len(await store.one_time_codes.pending(Purpose.ADMIN_SETUP, datetime.now(UTC)))


def deploy(data_dir: Path) -> None:
    """``lychgate init`` (which issues one setup link) and a registered demo app, whose
    "registered but not running" note a serve without --demo prints."""
    lychgate("init", "--dir", str(data_dir))
    upstream = f"unix:{WHOAMI.socket(data_dir / 'run')}"
    add = ["app", "add", "--dir", str(data_dir), "--slug", WHOAMI.slug, "--name", WHOAMI.name]
    lychgate(*add, "--upstream", upstream)


def assert_no_link(out: str, err: str) -> None:
    assert "/.lychgate/enroll/" not in out + err
    assert "setup link" not in out + err
    assert "Traceback" not in err


@pytest.mark.parametrize("demo", [(), ("--demo",)], ids=["plain", "demo"])
async def test_a_taken_port_on_a_new_directory_creates_nothing(
    tmp_path: Path, demo: tuple[str, ...]
) -> None:
    data_dir = tmp_path / "new"
    with taken_port() as port:
        code, out, err = await refused(data_dir, port, *demo)
    assert code == 1, err
    assert f"error: listen: 127.0.0.1:{port} is already in use" in err
    assert_no_link(out, err)
    assert not data_dir.exists()


@pytest.mark.parametrize("demo", [(), ("--demo",)], ids=["plain", "demo"])
async def test_a_taken_port_issues_no_setup_link(data_dir: Path, demo: tuple[str, ...]) -> None:
    await asyncio.to_thread(deploy, data_dir)
    before = await open_setup_codes(data_dir)
    with taken_port() as port:
        code, out, err = await refused(data_dir, port, *demo)
    assert code == 1, err
    assert f"listen: 127.0.0.1:{port} is already in use" in err
    assert_no_link(out, err)
    assert "not running" not in err
    assert await open_setup_codes(data_dir) == before == 1


@pytest.mark.parametrize(
    ("problem", "said"),
    [
        ("shared", "may be written by other users: put authz's socket in a directory"),
        ("no parent", "does not exist: create it, or put authz's socket in a directory"),
    ],
)
async def test_an_unusable_authz_socket_directory_on_a_new_directory_creates_nothing(
    tmp_path: Path, problem: str, said: str
) -> None:
    # authz_listen naming a directory of the operator's was checked only once the new
    # deployment's files existed and its setup link had been issued.
    data_dir = tmp_path / "new"
    if problem == "shared":
        sockets = tmp_path / "shared"
        await asyncio.to_thread(sockets.mkdir)
        await asyncio.to_thread(sockets.chmod, 0o777)
    else:
        sockets = tmp_path / "missing" / "sockets"
    listen = {"LYCHGATE_AUTHZ_LISTEN": f"unix:{sockets / 'authz.sock'}"}
    code, out, err = await refused(data_dir, free_port(), env=listen)
    assert code == 2, err
    assert "configuration error: authz_listen:" in err
    assert said in err
    assert_no_link(out, err)
    assert not data_dir.exists()


@contextlib.asynccontextmanager
async def running(data_dir: Path) -> AsyncIterator[int]:
    """A ``lychgate serve`` on ``data_dir``; yields its port."""
    port = free_port()
    try:
        async with serve(data_dir, port):
            yield port
    finally:
        kill_all_with(str(data_dir))


@pytest.mark.parametrize("demo", [(), ("--demo",)], ids=["plain", "demo"])
async def test_a_second_serve_on_a_running_deployment_issues_no_setup_link(
    data_dir: Path, demo: tuple[str, ...]
) -> None:
    await asyncio.to_thread(deploy, data_dir)
    async with running(data_dir) as first:
        before = await open_setup_codes(data_dir)  # init's and the first serve's
        code, out, err = await refused(data_dir, _another_port(first), *demo)
        assert await open_setup_codes(data_dir) == before == 2
    assert code == 2, err
    assert "configuration error: authz_listen:" in err
    assert "another authz is listening there" in err
    assert_no_link(out, err)
    assert "not running" not in err  # the first serve may well run them
    assert "Lychgate demo" not in out


def _too_long(tmp_path: Path, socket_name: str) -> Path:
    """A data directory (not yet made) whose ``run/<socket_name>`` is one byte too long."""
    room = MAX_SOCKET_PATH_BYTES - len(os.fsencode(tmp_path / "x" / "run" / socket_name))
    return tmp_path / ("x" * (room + 2))


@pytest.mark.parametrize(
    ("socket_name", "demo"),
    [
        ("authz.sock", ()),
        ("authz.sock", ("--demo",)),
        (WHOAMI.socket(Path()).name, ("--demo",)),  # authz's fits, the demo app's does not
    ],
    ids=["authz", "authz-demo", "demo-only"],
)
async def test_a_data_directory_too_long_for_a_socket_stays_empty(
    tmp_path: Path, socket_name: str, demo: tuple[str, ...]
) -> None:
    data_dir = _too_long(tmp_path, socket_name)
    await asyncio.to_thread(
        data_dir.mkdir
    )  # made beforehand, empty: serve would create the deployment in it
    code, out, err = await refused(data_dir, free_port(), *demo)
    assert code == 2, err
    assert "is 108 bytes long, but a unix socket path may be at most 107" in err
    assert socket_name in err
    assert_no_link(out, err)
    assert await asyncio.to_thread(lambda: list(data_dir.iterdir())) == []


async def test_serve_demo_prints_the_link_without_a_qr_when_not_on_a_terminal(
    data_dir: Path,
) -> None:
    # Its stdout is a file here, as under a service manager: a QR code is noise in a log.
    port = free_port()
    try:
        async with serve_demo(data_dir, port) as out:
            banner = await asyncio.to_thread(out.read_text)
    finally:
        kill_all_with(str(data_dir))
    assert "No admin yet" in banner
    assert "http://localhost:8080/.lychgate/enroll/" in banner
    assert "lychgate device enroll http://localhost:8080/.lychgate/enroll/" in banner
    assert not any(block in banner for block in QR_BLOCKS), banner
    assert "scan it" not in banner


@contextlib.asynccontextmanager
async def serve_demo(data_dir: Path, port: int) -> AsyncIterator[Path]:
    """``lychgate serve --demo``, its stdout to a file; yields that file once the banner is
    in it (it is printed before the processes start)."""
    out = data_dir.parent / "demo.out"
    out_file = await asyncio.to_thread(out.open, "wb")
    with out_file:
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "lychgate", "serve", "--demo", "--dir", str(data_dir)),
            *("--listen", f"127.0.0.1:{port}"),
            stdout=out_file,
            stderr=asyncio.subprocess.DEVNULL,
            env={k: v for k, v in os.environ.items() if not k.startswith("LYCHGATE_")},
        )
    try:
        async with asyncio.timeout(30):
            while "Ctrl-C stops everything" not in await asyncio.to_thread(out.read_text):
                assert proc.returncode is None
                await asyncio.sleep(0.1)
        yield out
    finally:
        if proc.returncode is None:
            proc.terminate()
            async with asyncio.timeout(20):
                await proc.wait()
