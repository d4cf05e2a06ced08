"""The gateway's own listen addresses (lychgate.gateway.runner): two of them on one address is
a clear error before anything binds, not a worker's traceback.

The OS check (``check_free``) asks about each address alone and finds them all free; only a
check of the addresses against each other catches ``metrics_listen`` on the ``listen`` port.
No sockets here: the check is pure.
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lychgate.config import Settings, load_settings
from lychgate.deployment.init import prepare_files
from lychgate.errors import ConfigError
from lychgate.gateway.http.limits import Limits
from lychgate.gateway.listeners import (
    check_distinct,
    check_listeners,
    listen_addresses,
    resolve_host,
)
from lychgate.gateway.plan import GatewayPlan, prepare
from lychgate.secret import Secret

ANY = "0.0.0.0"  # noqa: S104 - a host under test, not a bind address


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(tmp_path, {})


def plan(
    settings: Settings,
    listen: tuple[str, int],
    *,
    metrics: tuple[str, int] | None = None,
    redirect: tuple[str, int] | None = None,
) -> GatewayPlan:
    return GatewayPlan(
        settings=settings,
        internal_token=Secret("not used here"),
        host=listen[0],
        port=listen[1],
        limits=Limits(),
        tls=None,
        renew_tls=None,
        upstream_ssl=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT),
        metrics=metrics,
        redirect=redirect,
    )


def test_every_address_with_its_setting(settings: Settings) -> None:
    wanted = listen_addresses(
        plan(settings, (ANY, 443), metrics=("127.0.0.1", 9100), redirect=(ANY, 80)),
        workers=3,
    )
    assert wanted == [
        ("listen", ANY, 443),
        ("metrics_listen", "127.0.0.1", 9100),
        ("metrics_listen (worker 1)", "127.0.0.1", 9101),
        ("metrics_listen (worker 2)", "127.0.0.1", 9102),
        ("http_redirect_listen", ANY, 80),
    ]


def test_metrics_on_the_listen_address_names_both(settings: Settings) -> None:
    same = plan(settings, ("127.0.0.1", 18094), metrics=("127.0.0.1", 18094))
    with pytest.raises(ConfigError) as caught:
        check_listeners(same, workers=1)  # refused before any socket is opened
    assert str(caught.value) == (
        "metrics_listen: 127.0.0.1:18094 clashes with listen (127.0.0.1:18094)"
    )
    assert caught.value.field == "metrics_listen"


def test_the_redirect_on_the_listen_address_is_refused(settings: Settings) -> None:
    same = plan(settings, ("127.0.0.1", 8080), redirect=("127.0.0.1", 8080))
    with pytest.raises(ConfigError, match=r"^http_redirect_listen: .* clashes with listen "):
        check_listeners(same, workers=1)


def test_a_later_workers_metrics_port_on_the_listen_port_is_refused(settings: Settings) -> None:
    # metrics_listen 8079 puts worker 1's metrics on 8080, the gateway's own port.
    wanted = listen_addresses(
        plan(settings, ("127.0.0.1", 8080), metrics=("127.0.0.1", 8079)), workers=2
    )
    with pytest.raises(
        ConfigError,
        match=r"^metrics_listen \(worker 1\): 127\.0\.0\.1:8080 clashes with listen ",
    ):
        check_distinct(wanted)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (ANY, "127.0.0.1"),
        ("127.0.0.1", ANY),
        ("::", "::1"),
        (ANY, "localhost"),
        ("::0", "::1"),  # a wildcard however it is written
        ("::1", "0:0:0:0:0:0:0:1"),  # the same address written two ways
        ("LocalHost", "localhost"),
    ],
)
def test_a_wildcard_or_the_same_host_on_one_port_clashes(first: str, second: str) -> None:
    with pytest.raises(ConfigError, match="clashes with listen"):
        check_distinct([("listen", first, 8080), ("metrics_listen", second, 8080)])


def test_a_name_that_stands_for_the_same_address_clashes() -> None:
    # metrics_listen = "localhost:8080" beside listen = "127.0.0.1:8080" passed, and the
    # gateway died binding the second with a traceback. Names are looked up where it counts.
    wanted = [("listen", "127.0.0.1", 8080), ("metrics_listen", "localhost", 8080)]
    check_distinct(wanted)  # pure by default: as written, no clash seen
    with pytest.raises(
        ConfigError,
        match=r"^metrics_listen: localhost:8080 clashes with listen \(127\.0\.0\.1:8080\)$",
    ):
        check_distinct(wanted, resolve_host)
    assert "127.0.0.1" in resolve_host("localhost")
    assert resolve_host("no-such-host.invalid") == ("no-such-host.invalid",)


@pytest.mark.parametrize(
    "wanted",
    [
        [("listen", "127.0.0.1", 8080), ("metrics_listen", "127.0.0.1", 8081)],
        [("listen", "127.0.0.1", 8080), ("metrics_listen", "127.0.0.2", 8080)],
        [("listen", "127.0.0.1", 8080), ("metrics_listen", "::1", 8080)],
        [("listen", "127.0.0.1", 0), ("metrics_listen", "127.0.0.1", 0)],  # any free port
        [("listen", ANY, 0), ("metrics_listen", "127.0.0.1", 0)],
        [("listen", ANY, 8080), ("metrics_listen", "::1", 8080)],  # Linux binds both
        [("listen", "::1", 8080), ("metrics_listen", ANY, 8080)],
        [("listen", "::", 8080), ("metrics_listen", "127.0.0.1", 8080)],  # v6-only sockets
    ],
)
def test_distinct_addresses_pass(wanted: list[tuple[str, str, int]]) -> None:
    check_distinct(wanted)


def test_a_redirect_listener_on_a_plain_http_deployment_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # It redirected http to http, without a word.
    settings = prepare_files(tmp_path, {}, now=datetime.now(UTC)).settings
    plain = settings.model_copy(update={"http_redirect_listen": "127.0.0.1:0"})
    with caplog.at_level(logging.WARNING, logger="lychgate.gateway.listeners"):
        prepare(plain)
        assert "http_redirect_listen is set but the public URL" in caplog.text
        caplog.clear()
        prepare(settings)
        assert caplog.text == ""


@pytest.mark.parametrize(
    ("public_url", "listen", "warned"),
    [
        ("https://localhost:18943", "127.0.0.1:8080", True),  # init's URL, listen's default
        ("http://app.localhost", "127.0.0.1:8080", True),  # port 80
        ("http://localhost:8080", "127.0.0.1:8080", False),
        ("https://localhost:8443", "0.0.0.0:8443", False),
        ("https://gw.example", "127.0.0.1:8443", False),  # elsewhere: a proxy may forward
        ("http://localhost:8080", "127.0.0.1:0", False),  # any free port: tests
    ],
)
def test_a_public_url_on_this_machine_at_another_port_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, public_url: str, listen: str, warned: bool
) -> None:
    # init --public-url https://localhost:18943 left listen at 8080: serve started, and no
    # browser could reach it, without a word.
    settings = prepare_files(tmp_path, {}, public_url=public_url, now=datetime.now(UTC)).settings
    with caplog.at_level(logging.WARNING, logger="lychgate.gateway.listeners"):
        prepare(settings, listen=listen)
    assert ("browsers will not reach it" in caplog.text) is warned
    if warned:  # the advice keeps the host it listens on (0.0.0.0 in a container)
        assert f'listen = "{listen.rpartition(":")[0]}:' in caplog.text


def test_behind_a_load_balancer_the_public_port_is_not_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # HAProxy on this machine at the public URL's port forwards it: the usual set-up.
    url = "http://127.0.0.1:18943"
    settings = prepare_files(tmp_path, {}, public_url=url, now=datetime.now(UTC)).settings
    behind = settings.model_copy(
        update={"proxy_protocol": True, "trusted_proxies": (ipaddress.ip_network("127.0.0.1"),)}
    )
    with caplog.at_level(logging.WARNING, logger="lychgate.gateway.listeners"):
        prepare(behind, listen="127.0.0.1:8080")
    assert caplog.text == ""


def test_a_metrics_port_past_65535_for_a_later_worker_is_refused(settings: Settings) -> None:
    # metrics_listen 65535 with two workers put worker 1 on port 65536, which the OS took as
    # 0: any free port, where no scraper would look.
    wanted = plan(settings, ("127.0.0.1", 8080), metrics=("127.0.0.1", 65535))
    with pytest.raises(ConfigError) as caught:
        listen_addresses(wanted, workers=2)
    assert caught.value.field == "metrics_listen"
    assert str(caught.value).startswith("metrics_listen: port 65535 + 1 worker is past 65535")
    with pytest.raises(ConfigError, match=r"\+ 3 workers is past 65535 .* up to 65532$"):
        check_listeners(plan(settings, ("127.0.0.1", 8080), metrics=("::1", 65533)), workers=4)
    last = listen_addresses(
        plan(settings, ("127.0.0.1", 8080), metrics=("127.0.0.1", 65534)), workers=2
    )
    assert last[-1] == ("metrics_listen (worker 1)", "127.0.0.1", 65535)
    assert listen_addresses(wanted, workers=1)[-1] == ("metrics_listen", "127.0.0.1", 65535)
