"""Strict-Transport-Security on the https listener (``hsts_max_age``).

A browser that once reached the deployment over https must not be talked back down to plain
http by whoever sits on its network: the gateway's answers over TLS say so, for its own pages
and the apps' alike, unless an app states its own policy. Never over plain http, and never for
a loopback or ``*.localhost`` host, where it would hold every local port of that name.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pydantic
import pytest
import trustme

from gateway.conftest import Start
from gateway.upstreams import Reply, Seen, http_upstream
from lychgate.config import Settings
from lychgate.gateway.http.server import GatewayServer
from lychgate.gateway.http.tls import CertPair, server_context
from lychgate.gateway.plan import hsts_field
from lychgate.gateway.types import Decision, Forward, Handler, RequestHead, Respond, Upstream

HSTS = b"strict-transport-security: max-age=600\r\n"
YEAR = b"strict-transport-security: max-age=31536000\r\n"


def _settings(tmp_path: Path, url: str, **more: object) -> Settings:
    return Settings(data_dir=tmp_path, public_url=url, **more)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "more", "line"),
    [
        ("https://gw.example.com", {}, YEAR),
        (
            "https://gw.example.com",
            {"hsts_max_age": 60},
            b"strict-transport-security: max-age=60\r\n",
        ),
        ("https://gw.example.com", {"hsts_max_age": 0}, b""),
        ("http://gw.example.com", {"allow_insecure_http": True}, b""),
        ("https://localhost:8443", {}, b""),
        ("https://auth.localhost", {}, b""),
        ("https://127.0.0.1:8443", {}, b""),
        (
            "https://auth.example.com",
            {"routing": "subdomains"},
            b"strict-transport-security: max-age=31536000\r\n",
        ),
        ("https://auth.example.com", {"routing": "subdomains", "domain": "localhost"}, b""),
    ],
)
def test_which_deployments_send_it(
    tmp_path: Path, url: str, more: dict[str, object], line: bytes
) -> None:
    assert hsts_field(_settings(tmp_path, url, **more)) == line


@pytest.mark.parametrize("age", [-1, 2 * 365 * 86400 + 1])
def test_its_age_is_bounded(tmp_path: Path, age: int) -> None:
    with pytest.raises(pydantic.ValidationError):
        _settings(tmp_path, "https://gw.example.com", hsts_max_age=age)


@pytest.fixture
def listener(ca: trustme.CA, tmp_path: Path) -> ssl.SSLContext:
    cert = ca.issue_cert("gw.example")
    cert_file, key_file = tmp_path / "gw.crt", tmp_path / "gw.key"
    cert.private_key_pem.write_to_path(str(key_file))
    cert_file.write_bytes(b"".join(pem.bytes() for pem in cert.cert_chain_pems))
    return server_context(CertPair(cert_file, key_file), {})


async def _app(seen: Seen, reply: Reply) -> None:
    own = [("strict-transport-security", "max-age=5; includeSubDomains")]
    await reply.send(200, b"ok", own if seen.target == "/own" else [])


def _forward_or_answer(url: str) -> Handler:
    def handler(head: RequestHead) -> Decision:
        if head.path == "/local":
            return Respond(302, (("location", "/"),), b"")
        if head.path == "/down":  # nothing listens there: a 502
            return Forward(Upstream("http://127.0.0.1:9"), head.target, head.headers, app=None)
        return Forward(Upstream(url), head.target, head.headers, app=None)

    return handler


async def _fields(server: GatewayServer, ca: trustme.CA, path: str, *, tls: bool) -> list[str]:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    scheme = "https" if tls else "http"
    async with httpx.AsyncClient(verify=ctx) as client:
        r = await client.get(
            f"{scheme}://127.0.0.1:{server.port}{path}",
            headers={"host": "gw.example"},
            extensions={"sni_hostname": "gw.example"},
        )
    return r.headers.get_list("strict-transport-security")


async def test_the_https_listener_says_it_on_app_and_gateway_answers(
    gateway: Start, ca: trustme.CA, listener: ssl.SSLContext
) -> None:
    async with http_upstream(_app) as up:
        server = await gateway(_forward_or_answer(up.url), ssl=listener, hsts=HSTS)
        assert await _fields(server, ca, "/app", tls=True) == ["max-age=600"]
        assert await _fields(server, ca, "/local", tls=True) == ["max-age=600"]
        # The gateway's error pages too: an upstream down, a request refused.
        assert await _fields(server, ca, "/down", tls=True) == ["max-age=600"]
        assert await _fields(server, ca, "/%00", tls=True) == ["max-age=600"]
        # An app's own policy stands, alone: browsers read only the first of two.
        assert await _fields(server, ca, "/own", tls=True) == ["max-age=5; includeSubDomains"]


async def test_a_plain_listener_never_says_it(gateway: Start, ca: trustme.CA) -> None:
    async with http_upstream(_app) as up:
        server = await gateway(_forward_or_answer(up.url), hsts=HSTS)
        assert await _fields(server, ca, "/app", tls=False) == []
        assert await _fields(server, ca, "/local", tls=False) == []
