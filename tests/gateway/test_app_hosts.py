"""Which app keeps a host in subdomains mode when two claim it, or one claims the portal's."""

from __future__ import annotations

import pytest

from fixtures.store import make_app
from gateway.world import World
from lychgate.errors import ConfigError
from lychgate.gateway.app_hosts import app_host, clashes, host_clashes
from lychgate.ids import AppSlug

DOMAIN = "example.com"
PORTAL = "auth.example.com"


def test_an_app_answers_on_its_own_host_else_its_slug_under_the_domain() -> None:
    assert app_host(make_app(slug=AppSlug("wiki")), DOMAIN) == "wiki.example.com"
    assert app_host(make_app(host="metrics.corp.example"), DOMAIN) == "metrics.corp.example"


def test_apps_on_hosts_of_their_own_do_not_clash() -> None:
    apps = [make_app(slug=AppSlug("wiki")), make_app(host="metrics.corp.example")]
    assert clashes(apps, app_domain=DOMAIN, public_host=PORTAL) == {}


@pytest.mark.parametrize("order", [1, -1])
def test_an_apps_own_slug_host_wins_over_another_apps_explicit_host(order: int) -> None:
    echo = make_app(slug=AppSlug("echo"))
    clash = make_app(slug=AppSlug("clash"), host="echo.example.com")
    # Whichever came first, and in any order: the explicit host is the override that clashes.
    refused = clashes([echo, clash][::order], app_domain=DOMAIN, public_host=PORTAL)
    assert refused == {"clash": "its host echo.example.com is app echo's"}


def test_an_app_never_takes_the_portals_host() -> None:
    by_host = make_app(slug=AppSlug("p"), host=PORTAL)
    by_slug = make_app(slug=AppSlug("auth"))  # a reserved slug, but stored all the same
    refused = clashes([by_host, by_slug], app_domain=DOMAIN, public_host=PORTAL)
    assert set(refused) == {"p", "auth"}
    assert refused[AppSlug("p")] == "its host auth.example.com is the portal's (the public URL's)"


def test_disabled_apps_claim_no_host() -> None:
    echo = make_app(slug=AppSlug("echo"), enabled=False)
    clash = make_app(slug=AppSlug("clash"), host="echo.example.com")
    assert clashes([echo, clash], app_domain=DOMAIN, public_host=PORTAL) == {}


def test_settings_are_normalized_as_the_snapshot_normalizes_them() -> None:
    clash = make_app(slug=AppSlug("clash"), host="echo.example.com")
    apps = [make_app(slug=AppSlug("echo")), clash, make_app(slug=AppSlug("p"), host=PORTAL)]
    refused = host_clashes(apps, public_url="https://AUTH.Example.com:8443/", domain="Example.COM.")
    assert set(refused) == {"clash", "p"}


def test_what_is_left_makes_a_snapshot_that_gateways_accept() -> None:
    # The point of leaving apps out: the snapshot itself must build, or nothing goes out.
    world = World("subdomains")  # https://auth.example.com, apps under example.com
    echo = make_app(slug=AppSlug("echo"))
    apps = (echo, make_app(slug=AppSlug("clash"), host="echo.example.com"))
    with pytest.raises(ConfigError, match="already taken"):
        world.changed(apps=apps)
    refused = host_clashes(apps, public_url=world.snapshot.public_url, domain=DOMAIN)
    kept = world.changed(apps=tuple(a for a in apps if a.slug not in refused))
    assert kept.apps_by_host["echo.example.com"] == echo
