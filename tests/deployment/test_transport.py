"""Plain HTTP is refused wherever cookies would cross a network or a shared domain."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.test_cli import lychgate
from gateway.world import make_app
from lychgate.cli.serve import check_stored_apps
from lychgate.config import load_settings
from lychgate.deployment.transport import (
    check_app_transport,
    check_apps_transport,
    check_transport,
    uncovered_apps,
)
from lychgate.errors import ConfigError
from lychgate.gateway.accesslog import LOGGER_NAME


def check(data_dir: Path, **env: str) -> None:
    check_transport(load_settings(data_dir, {f"LYCHGATE_{k.upper()}": v for k, v in env.items()}))


@pytest.mark.parametrize(
    "env",
    [
        {"public_url": "http://localhost:8080"},
        {"public_url": "http://127.0.0.1:8080"},
        {"public_url": "http://auth.localhost:8080", "routing": "subdomains"},
        {"public_url": "http://localhost:8080", "routing": "subdomains", "domain": "localhost"},
        {"public_url": "https://auth.corp.test", "routing": "subdomains"},
        {
            "public_url": "http://auth.localhost:8080",
            "routing": "subdomains",
            "domain": "corp.test",
            "allow_insecure_http": "true",
        },
    ],
)
def test_accepted(data_dir: Path, env: dict[str, str]) -> None:
    check(data_dir, **env)


def test_a_public_host_on_plain_http_is_refused(data_dir: Path) -> None:
    with pytest.raises(ConfigError) as info:
        check(data_dir, public_url="http://auth.corp.test")
    assert info.value.field == "public_url"


@pytest.mark.parametrize("domain", ["corp.test", "apps.localhost", "corp.localhost"])
def test_a_shared_parent_under_localhost_is_refused_too(data_dir: Path, domain: str) -> None:
    # Browsers refuse a Domain=localhost cookie, but a page on evil.apps.localhost may set
    # one for apps.localhost that every sibling app receives.
    with pytest.raises(ConfigError) as info:
        check(data_dir, public_url="http://localhost:8080", routing="subdomains", domain=domain)
    assert info.value.field == "domain"


def test_apps_under_a_shared_domain_on_plain_http_are_refused(data_dir: Path) -> None:
    # The portal on .localhost, the apps on *.corp.test over plain HTTP: any page under
    # corp.test could set a cookie for the whole domain (no __Host- prefix without https) and
    # plant its own sign-in state, then an attacker's code (login CSRF).
    with pytest.raises(ConfigError) as info:
        check(
            data_dir,
            public_url="http://auth.localhost:8080",
            routing="subdomains",
            domain="corp.test",
        )
    assert info.value.field == "domain"
    assert "corp.test" in str(info.value)


@pytest.mark.parametrize(
    ("public_url", "host", "refused"),
    [
        ("http://auth.localhost:8080", "metrics.localhost", False),
        ("http://auth.localhost:8080", "Metrics.Localhost.", False),
        ("http://auth.localhost:8080", "evil.wiki.localhost", True),  # under another app
        ("http://auth.localhost:8080", "localhost", True),
        ("http://auth.localhost:8080", "", False),  # no host of its own
        ("http://auth.localhost:8080", "metrics.corp.test", True),
        ("http://auth.localhost:8080", "Metrics.Corp.Test.", True),
        ("https://auth.corp.test", "metrics.corp.test", False),
        ("http://auth.localhost:8080", None, False),  # the app lives under the domain
    ],
)
def test_an_apps_own_host_follows_the_same_rule(
    data_dir: Path, public_url: str, host: str | None, refused: bool
) -> None:
    settings = load_settings(
        data_dir, {"LYCHGATE_PUBLIC_URL": public_url, "LYCHGATE_ROUTING": "subdomains"}
    )
    if refused:
        with pytest.raises(ConfigError) as info:
            check_app_transport(settings, host)
        assert info.value.field == "host"
    else:
        check_app_transport(settings, host)


def test_the_cli_refuses_such_an_app(data_dir: Path) -> None:
    code, out = lychgate(
        "init",
        "--dir",
        str(data_dir),
        "--public-url",
        "http://auth.localhost:8080",
        "--routing",
        "subdomains",
    )
    assert code == 0, out
    code, out = lychgate(
        "app",
        "add",
        "--dir",
        str(data_dir),
        "--slug",
        "grafana",
        "--name",
        "Grafana",
        "--upstream",
        "http://127.0.0.1:3000",
        "--host",
        "grafana.corp.test",
    )
    assert code == 2, out
    assert "plain HTTP" in out
    code, out = lychgate("app", "list", "--dir", str(data_dir))
    assert "grafana" not in out


# -- apps stored before the public URL turned plain HTTP -----------------------------------------


def _init_https_subdomains(data_dir: Path) -> None:
    code, out = lychgate(
        "init", "--dir", str(data_dir), "--public-url", "https://auth.corp.test",
        "--routing", "subdomains",
    )  # fmt: skip
    assert code == 0, out


def _deployment_with_an_app_host(data_dir: Path) -> None:
    _init_https_subdomains(data_dir)
    code, out = lychgate(
        "app", "add", "--dir", str(data_dir), "--slug", "grafana", "--name", "Grafana",
        "--upstream", "http://127.0.0.1:3000", "--host", "grafana.corp.test",
    )  # fmt: skip
    assert code == 0, out  # fine on https


PLAIN = {"LYCHGATE_PUBLIC_URL": "http://auth.localhost:8080", "LYCHGATE_DOMAIN": "localhost"}


@pytest.mark.parametrize("command", ["serve", "authz"])
def test_serving_refuses_a_stored_app_host_once_the_url_is_plain_http(
    data_dir: Path, command: str
) -> None:
    _deployment_with_an_app_host(data_dir)
    code, out = lychgate(command, "--dir", str(data_dir), env=PLAIN)
    assert code == 2, out  # refused before anything listens
    assert "app grafana" in out
    assert "grafana.corp.test" in out
    assert "lychgate app update grafana --host grafana.localhost" in " ".join(out.split())


def test_a_stored_app_host_on_localhost_or_forced_passes(data_dir: Path) -> None:
    _deployment_with_an_app_host(data_dir)
    settings = load_settings(data_dir, {**PLAIN, "LYCHGATE_ALLOW_INSECURE_HTTP": "true"})
    check_stored_apps(settings)  # forced: the operator owns the risk
    # What serve's refusal says to run, on the deployment as it now is (on the https one, the
    # internal CA could not certify grafana.localhost: that is refused).
    code, out = lychgate(
        "app", "update", "grafana", "--dir", str(data_dir), "--host", "grafana.localhost",
        env=PLAIN,
    )  # fmt: skip
    assert code == 0, out
    check_stored_apps(load_settings(data_dir, PLAIN))


def test_the_first_app_refused_is_named(data_dir: Path) -> None:
    settings = load_settings(data_dir, {**PLAIN, "LYCHGATE_ROUTING": "subdomains"})
    fine = make_app("wiki", host="wiki.localhost")
    bad = make_app("metrics", host="metrics.corp.test")
    check_apps_transport(settings, [fine, make_app("docs")])
    with pytest.raises(ConfigError) as info:
        check_apps_transport(settings, [fine, bad])
    assert info.value.field == "host"
    assert str(info.value).startswith("host: app metrics: metrics.corp.test would be served")


def test_single_host_mode_serves_no_app_host_so_refuses_none(data_dir: Path) -> None:
    code, out = lychgate("init", "--dir", str(data_dir), "--public-url", "https://corp.test")
    assert code == 0, out
    code, out = lychgate(
        "app", "add", "--dir", str(data_dir), "--slug", "grafana", "--name", "Grafana",
        "--upstream", "http://127.0.0.1:3000", "--host", "grafana.corp.test",
    )  # fmt: skip
    assert code == 0, out
    settings = load_settings(data_dir, {"LYCHGATE_PUBLIC_URL": "http://localhost:8080"})
    assert settings.routing == "single-host"
    check_stored_apps(settings)  # the host is never routed on in this mode


@pytest.fixture
def logging_kept() -> Iterator[None]:
    """``lychgate authz`` sets up logging on the CLI runner's streams, closed once it returns:
    put the loggers back, or later tests' log lines fail to write."""
    loggers = [logging.getLogger(), logging.getLogger(LOGGER_NAME)]
    saved = [(lg, list(lg.handlers), lg.level, lg.propagate) for lg in loggers]
    yield
    for lg, handlers, level, propagate in saved:
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate = propagate


@pytest.mark.usefixtures("logging_kept")
def test_authz_on_a_directory_never_initialised_says_so_and_creates_nothing(
    data_dir: Path,
) -> None:
    code, out = lychgate("authz", "--dir", str(data_dir), env=PLAIN)
    assert code != 0
    assert "lychgate init" in " ".join(out.split())
    # No database made before the secrets were found missing (the socket's run directory
    # was made first before this check existed too).
    assert {p.name for p in data_dir.iterdir()} <= {"run"}


def test_authz_alone_refuses_plain_http_on_a_public_host(data_dir: Path) -> None:
    _deployment_with_an_app_host(data_dir)
    code, out = lychgate(
        "authz", "--dir", str(data_dir), env={"LYCHGATE_PUBLIC_URL": "http://auth.corp.test"}
    )
    assert code == 2, out
    assert "plain HTTP" in out


# -- an app host the internal CA cannot certify ---------------------------------------------------


def _add(
    data_dir: Path, slug: str, host: str, env: dict[str, str] | None = None
) -> tuple[int, str]:
    return lychgate(
        "app", "add", "--dir", str(data_dir), "--slug", slug, "--name", slug.title(),
        "--upstream", "http://127.0.0.1:3000", "--host", host, env=env,
    )  # fmt: skip


def test_on_the_internal_ca_an_app_host_outside_its_names_is_refused(data_dir: Path) -> None:
    # The CA is name-constrained to corp.test and its certificate covers *.corp.test: such an
    # app used to be accepted, and no browser could ever reach it over TLS.
    _init_https_subdomains(data_dir)
    for host in ("files.example.org", "deep.files.corp.test"):
        code, out = _add(data_dir, "files", host)
        assert code == 2, out
        said = " ".join(out.split())
        assert f"{host} is not covered by the internal CA, which certifies only corp.test, " in said
        assert "give the app a host <name>.corp.test" in said
    assert "files" not in lychgate("app", "list", "--dir", str(data_dir))[1]
    code, out = _add(data_dir, "files", "Files.Corp.Test.")
    assert code == 0, out
    code, out = lychgate(
        "app", "update", "files", "--dir", str(data_dir), "--host", "files.example.org"
    )
    assert code == 2, out
    assert "not covered by the internal CA" in out
    own = {"LYCHGATE_TLS_CERT": "/etc/ssl/own.pem", "LYCHGATE_TLS_KEY": "/etc/ssl/own.key"}
    code, out = _add(data_dir, "docs", "docs.example.org", env=own)  # their certificate
    assert code == 0, out


def test_an_app_host_the_internal_ca_no_longer_covers_is_warned_about(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The deployment's domain changed (and `ca rotate` made a CA for it): a stored app keeps
    # its host, which the new certificate does not cover. It is served, and every browser
    # refuses it; serve said nothing.
    _deployment_with_an_app_host(data_dir)  # grafana.corp.test, under auth.corp.test's domain
    check_stored_apps(load_settings(data_dir, {}))
    assert "warning" not in capsys.readouterr().err
    moved = {"LYCHGATE_PUBLIC_URL": "https://auth.new.test", "LYCHGATE_DOMAIN": "new.test"}
    check_stored_apps(load_settings(data_dir, moved))
    said = " ".join(capsys.readouterr().err.split())
    assert "warning: app grafana: browsers will refuse its certificate" in said
    assert "grafana.corp.test is not covered by the internal CA" in said


def test_a_stored_host_that_is_no_host_name_is_named_not_a_refusal_to_start(
    data_dir: Path,
) -> None:
    # A row written by hand: check_host refuses it (a ClientError), which escaped the
    # warning and stopped serve from starting.
    settings = load_settings(
        data_dir, {}, public_url="https://auth.corp.test", routing="subdomains"
    )
    odd = make_app("grafana", host="grafana..corp.test")
    assert list(uncovered_apps(settings, [odd, make_app("docs")])) == ["grafana"]
