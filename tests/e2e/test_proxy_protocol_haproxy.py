"""``proxy_protocol = true`` behind a real HAProxy: the client is the one its header names.

``tests/gateway/test_proxy_protocol.py`` writes the PROXY header by hand, as the specification
says HAProxy does; this module checks that the two agree in fact. A real ``haproxy`` (Debian's
package: ``.ci/run`` installs it) in ``mode tcp`` stands in front of a real ``lychgate serve``,
as a TCP load balancer does in production, and forwards to it with ``send-proxy`` (version 1,
text) on one frontend and ``send-proxy-v2`` (version 2, binary) on another. The version 2
server is also health-checked by HAProxy, whose checks carry version 2's LOCAL command (a
connection of the balancer's own, which names no client).

The client binds its socket to 127.0.0.3 (all of 127/8 is loopback on Linux), so its address
differs from HAProxy's own (127.0.0.1, the only trusted proxy): what the app and the access
log see tells which of the two the gateway took for the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from e2e.deployment import Served, free_port, lychgate, serve, stop
from gateway.upstreams import Upstream, http_upstream
from gateway.waiting import PATIENCE

pytestmark = [pytest.mark.loopback, pytest.mark.slow]

API = {"accept": "application/json"}
CLIENT = "127.0.0.3"  # the browser's address: loopback, but not HAProxy's own
BALANCER = "127.0.0.1"  # where HAProxy connects to the gateway from: the trusted proxy
CHECK_AGENT = "haproxy-health-check"  # the User-Agent of HAProxy's checks, to find them
# HAProxy is in /usr/sbin, which a non-root user's PATH may lack.
HAPROXY = shutil.which("haproxy", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")


def _haproxy_config(v1_port: int, v2_port: int, gateway_port: int) -> str:
    """Two TCP frontends to the one gateway: ``v1`` sends version 1 headers, ``v2`` version 2.

    The ``v2`` server is health-checked (``GET /.lychgate/healthz`` every 100 ms): a check goes
    through the gateway's PROXY header reading too, with a LOCAL header, and while the server
    is down HAProxy forwards nothing to it. It is down from the start (no gateway listens yet)
    and up on the first check that passes; ``serve`` waits for healthz through this frontend,
    so it returns once one has. Then only three failed checks in a row, each given 5 s (not
    ``inter``'s 100 ms: a busy machine may be slow to answer), would take it down again. The
    ``v1`` server is not checked: it forwards from the start.

    No ``daemon``, ``chroot`` or ``user``: HAProxy runs in the foreground (``-db``), as the test's
    child, with the test's rights; it writes its warnings (a server going down) on stderr.
    """
    gateway = f"127.0.0.1:{gateway_port}"
    check = (  # HTTP/1.1, so with a Host: the gateway answers healthz on any well-formed one
        "meth GET uri /.lychgate/healthz ver HTTP/1.1"
        f" hdr Host 127.0.0.1 hdr User-Agent {CHECK_AGENT}"
    )
    return f"""\
global
    log stderr format raw local0 notice

defaults
    mode tcp
    log global
    timeout connect 5s
    timeout client 30s
    timeout server 30s

listen v1
    bind 127.0.0.1:{v1_port}
    server gateway {gateway} send-proxy

listen v2
    bind 127.0.0.1:{v2_port}
    timeout check 5s
    option httpchk
    http-check send {check}
    http-check expect status 200
    server gateway {gateway} send-proxy-v2 check inter 100ms rise 1 fall 3
"""


def _deploy(data_dir: Path, public_port: int, up_url: str) -> str:
    """Init a deployment behind the balancer, with an admin (or it wants setup) and one app;
    a cookie for Ada to reach it.

    The public URL is the balancer's (what a browser reaches); the gateway listens on its
    own port, which ``serve`` gives it with ``--listen``. Hosts are routed by name, not port,
    so either frontend's port serves the same app."""
    d = str(data_dir)
    lychgate("init", "--dir", d, "--public-url", f"http://127.0.0.1:{public_port}")
    config = data_dir / "lychgate.toml"
    settings = (
        "access_log = true\n"
        "proxy_protocol = true\n"
        f'trusted_proxies = ["{BALANCER}/32"]\n'  # HAProxy's address, and no other
    )
    config.write_text(settings + config.read_text())  # top-level keys go first
    lychgate("app", "add", "--dir", d, "--slug", "echo", "--name", "Echo", "--upstream", up_url)
    lychgate("user", "add", "Admin", "--email", "admin@example.test", "--admin", "--dir", d)
    lychgate("user", "add", "Ada", "--email", "ada@example.test", "--dir", d)
    minted = lychgate("token", "mint", "--dir", d, "--app", "echo", "--user", "ada@example.test")
    return minted.split("\n")[0]


async def _accepts(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


@contextlib.asynccontextmanager
async def _haproxy(config: Path, log: Path, ports: tuple[int, ...]) -> AsyncIterator[None]:
    """``haproxy -f CONFIG -db`` (foreground) until the block ends; ready once each of
    ``ports`` accepts. Its output goes to ``log``, which a failure shows."""
    assert HAPROXY is not None
    out = await asyncio.to_thread(log.open, "wb")
    process = await asyncio.create_subprocess_exec(
        HAPROXY, "-f", str(config), "-db", stdout=out, stderr=out
    )
    try:
        async with asyncio.timeout(10):  # a hang guard
            for port in ports:
                while not await _accepts(port):
                    if process.returncode is not None:
                        raise AssertionError(await asyncio.to_thread(log.read_text))
                    await asyncio.sleep(0.05)
        yield
    finally:
        await stop(process, patience=10)  # SIGTERM: HAProxy's hard stop
        out.close()


@dataclass
class Deployment:
    """A ``lychgate serve`` behind HAProxy, and where to reach it."""

    served: Served
    up: Upstream  # the app, which records what it receives
    cookie: str  # Ada's, for the app (NAME=TOKEN)
    v1: str  # the URL of the frontend that sends version 1 headers
    v2: str  # and version 2
    haproxy_log: Path


@contextlib.asynccontextmanager
async def _behind_haproxy(data_dir: Path) -> AsyncIterator[Deployment]:
    """Deploy, start HAProxy, then ``serve`` behind it.

    HAProxy starts first: with ``proxy_protocol`` on, the gateway cuts a connection that does
    not begin with a header, so ``serve`` must wait for healthz through HAProxy, not on the
    gateway's own port."""
    if HAPROXY is None:
        pytest.skip("haproxy is not installed (apt-get install haproxy; .ci/run installs it)")
    gateway_port, v1_port, v2_port = free_port(), free_port(), free_port()
    config = data_dir / "haproxy.cfg"
    async with http_upstream() as up:
        cookie = await asyncio.to_thread(_deploy, data_dir, v1_port, up.url)
        text = _haproxy_config(v1_port, v2_port, gateway_port)
        await asyncio.to_thread(config.write_text, text)
        log = data_dir / "haproxy.log"
        v1, v2 = f"http://127.0.0.1:{v1_port}", f"http://127.0.0.1:{v2_port}"
        async with (
            _haproxy(config, log, (v1_port, v2_port)),
            serve(data_dir, gateway_port, health_url=v2) as served,
        ):
            yield Deployment(served, up, cookie, v1, v2, log)


def _records(text: str) -> list[dict[str, Any]]:
    """The access records in a log's ``text``: its JSON lines (a last line caught
    half-written is not one yet)."""
    records = []
    for line in text.splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                records.append(json.loads(line))
    return records


def _record(text: str, path: str) -> dict[str, Any] | None:
    """The access record of the request for ``path`` in a log's ``text``, if written."""
    found = [r for r in _records(text) if r.get("path") == path]
    assert len(found) <= 1, found
    return found[0] if found else None


async def _recorded(log: Path, path: str) -> dict[str, Any]:
    """The access record of the request for ``path``, once ``log`` holds it."""
    text = await _once(log, lambda t: _record(t, path) is not None, f"a record of {path}")
    record = _record(text, path)
    assert record is not None
    return record


async def _once(log: Path, holds: Callable[[str], bool], what: str) -> str:
    """The text of ``log`` once ``holds`` it: a record is written as its response goes, so it
    may land just after the client has its answer. Fails after ``PATIENCE`` (a hang guard)."""
    text = ""
    try:
        async with asyncio.timeout(PATIENCE):
            while not holds(text := await asyncio.to_thread(log.read_text)):
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"{what} not in {log} within {PATIENCE} s:\n{text}") from None
    return text


def _client(base_url: str) -> httpx.AsyncClient:
    """A client whose connections come from 127.0.0.3."""
    transport = httpx.AsyncHTTPTransport(local_address=CLIENT)
    return httpx.AsyncClient(base_url=base_url, transport=transport)


async def test_haproxy_names_the_client_with_either_version(data_dir: Path) -> None:
    """Through either frontend, the app and the access log see the client's address, not
    HAProxy's; HAProxy's own health checks (LOCAL headers) are answered as from HAProxy."""
    async with _behind_haproxy(data_dir) as deployment:
        log = deployment.served.log
        for version, base in (("v1", deployment.v1), ("v2", deployment.v2)):
            async with _client(base) as c:
                r = await c.get(f"/{version}", headers={**API, "cookie": deployment.cookie})
            assert r.status_code == 200, (version, r.status_code, r.text)
            [seen] = [s for s in deployment.up.seen if s.target == f"/{version}"]
            # The client as the header names it, alone: HAProxy is not a hop that the
            # gateway adds (it sent no X-Forwarded-For, and it is not the client).
            assert seen.header("x-forwarded-for") == CLIENT, version
            record = await _recorded(log, f"/{version}")
            assert (record["client"], record["status"]) == (CLIENT, 200), (version, record)
            assert "peer" not in record  # only a trusted proxy's X-Forwarded-For makes one
        # HAProxy's checks run all along: each is a LOCAL header, which names no client, then
        # a GET that the gateway answers as from the balancer itself.
        text = await asyncio.to_thread(log.read_text)
        checks = [r for r in _records(text) if r.get("ua") == CHECK_AGENT]
        assert checks, text
        assert {(r["client"], r["path"], r["status"]) for r in checks} == {
            (BALANCER, "/.lychgate/healthz", 200)
        }
        assert "proxy_protocol: cut" not in text  # neither version's header was refused
        # And HAProxy says so: its server went up on a check's 200 (it was down until the
        # gateway listened, and goes down again once it stops: neither is asserted on).
        haproxy_said = await asyncio.to_thread(deployment.haproxy_log.read_text)
        assert "Server v2/gateway is UP, reason: Layer7 check passed, code: 200" in haproxy_said


async def test_a_client_that_bypasses_haproxy_is_cut(data_dir: Path) -> None:
    """A connection straight to the gateway, from an address that is not a trusted proxy, is
    cut before any answer: its header (had it sent one) could name any client. The log says
    whom it cut."""
    async with _behind_haproxy(data_dir) as deployment:
        async with _client(deployment.served.url) as c:
            with pytest.raises(httpx.TransportError):  # reset or closed: which, is a race
                await c.get("/direct", headers={**API, "cookie": deployment.cookie})
        log = deployment.served.log
        cut = f"proxy_protocol: cut a connection from {CLIENT}"
        text = await _once(log, lambda t: cut in t, repr(cut))
    assert not [s for s in deployment.up.seen if s.target == "/direct"]  # nothing forwarded
    assert _record(text, "/direct") is None  # nor answered
