"""authz's listener settings: the warning for a TCP listener that believes no remote gateway."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from lychgate.authz.server import uvicorn_config, warn_about_gateway_trust
from lychgate.config import Settings


def settings(tmp_path: Path, listen: str, *gateways: str) -> Settings:
    base = Settings(data_dir=tmp_path, authz_listen=listen)
    if not gateways:
        return base  # the default: loopback only
    trusted = tuple(ipaddress.ip_network(g) for g in gateways)
    return base.model_copy(update={"authz_trusted_gateways": trusted})


@pytest.mark.parametrize(
    ("listen", "gateways", "warns"),
    [
        ("0.0.0.0:9000", (), True),  # reachable from anywhere, loopback-only trust
        ("10.0.0.2:9000", (), True),
        ("authz.internal:9000", (), True),
        ("10.0.0.2:9000", ("10.0.0.0/8",), False),
        ("127.0.0.1:9000", (), False),  # only local gateways can reach it anyway
        ("localhost:9000", (), False),
        ("[::1]:9000", (), False),
    ],
)
def test_a_remote_listener_with_loopback_only_trust_warns(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    listen: str,
    gateways: tuple[str, ...],
    warns: bool,
) -> None:
    config = settings(tmp_path, listen, *gateways)
    host = uvicorn_config(config, object()).host
    assert warn_about_gateway_trust(config, host) is warns
    assert ("authz_trusted_gateways names only loopback" in caplog.text) is warns


def test_the_unix_socket_never_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    uvicorn_config(Settings(data_dir=tmp_path), object())
    assert "authz_trusted_gateways" not in caplog.text
