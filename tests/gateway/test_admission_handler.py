"""The Handler: admission carried into the engine's Decision (Forward, Respond, Local)."""

from __future__ import annotations

import ipaddress
import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import cast

import pytest

from fixtures.clocks import Ticks
from gateway.world import APPS, AUTHZ, FETCH, NAVIGATE, NOW, Clock, NoAuthz, World, handler_for
from lychgate.config.settings import Settings
from lychgate.gateway.admission import ToApp, admit
from lychgate.gateway.admit_assertions import CachedAssertions
from lychgate.gateway.admit_handler import GatewayHandler, GatewayOptions
from lychgate.gateway.cookies import drop_lychgate_set_cookies
from lychgate.gateway.endpoints import Endpoints
from lychgate.gateway.forwarding import identity_headers
from lychgate.gateway.http.limits import CONTROL_PLANE_MAX_BODY, SIGN_IN_MAX_BODY
from lychgate.gateway.snapshot import SnapshotHolder
from lychgate.gateway.types import Forward, Local, Respond, Upstream
from lychgate.ids import AppSlug, SessionId
from lychgate.tokens import CachedVerifier, verify_assertion


def header(decision: Forward | Respond, name: str) -> list[str]:
    return [v for n, v in decision.headers if n == name]


SINGLE = World("single-host")


def test_admitted_request_is_forwarded_with_a_signed_assertion() -> None:
    handler, _ = handler_for(SINGLE)
    request = SINGLE.head(
        "/x/../page?q=1",
        cookies=[SINGLE.token()],
        headers=(("x-lychgate-user", "admin"), ("cookie", "theme=dark")),
    )
    decision = handler(request)
    assert isinstance(decision, Forward)
    assert decision.upstream == Upstream("http://127.0.0.1:9/wiki")
    assert decision.target == "/page?q=1"
    assert decision.app == "wiki"
    assert decision.session_id == "sess-1"
    assert not decision.allow_upgrade
    assert decision.response_fields is drop_lychgate_set_cookies  # no app sets our cookies
    assert header(decision, "x-lychgate-user") == ["user-1"]
    assert header(decision, "x-lychgate-email") == ["ann@example.com"]
    assert header(decision, "cookie") == ["theme=dark"]
    assert header(decision, "x-forwarded-for") == ["203.0.113.9"]
    [assertion] = header(decision, "x-lychgate-assertion")
    keyring = SINGLE.snapshot.assertion_keyring
    assert keyring is not None
    claims = verify_assertion(
        keyring.public, assertion, now=NOW, issuer=SINGLE.snapshot.issuer, audience=AppSlug("wiki")
    )
    assert (claims.sub, claims.email, claims.name, claims.groups, claims.adm) == (
        "user-1",
        "ann@example.com",
        "Ann",
        ("staff",),
        False,
    )


def test_app_settings_reach_the_forward() -> None:
    world = World("subdomains")
    handler, _ = handler_for(world)
    request = world.head("/", host="metrics.corp.example", cookies=[world.token(app="grafana")])
    decision = handler(request)
    assert isinstance(decision, Forward)
    assert decision.upstream == Upstream("http://127.0.0.1:9/grafana", read_timeout=3.0)
    assert decision.max_body_bytes == 1024
    admin = handler(
        world.head(
            "/",
            host="admin.example.com",
            cookies=[world.token(app="admin", sub="user-2", adm=True)],
        )
    )
    assert isinstance(admin, Forward)
    assert admin.allow_upgrade


def test_assertions_are_cached_until_shortly_before_expiry() -> None:
    clock = Clock()
    handler, _ = handler_for(SINGLE, clock=clock)
    request = SINGLE.head("/", cookies=[SINGLE.token()])

    def assertion() -> str:
        decision = handler(request)
        assert isinstance(decision, Forward)
        return header(decision, "x-lychgate-assertion")[0]

    first = assertion()
    clock.now += timedelta(seconds=45)
    assert assertion() == first
    clock.now += timedelta(seconds=6)  # 51 s old: less than 10 s left
    assert assertion() != first


def test_authz_gets_the_request_with_its_cookies_but_no_spoofed_identity() -> None:
    handler, _ = handler_for(SINGLE)
    request = SINGLE.head(
        "/.lychgate/login?rd=/x",
        headers=(("cookie", "lychgate_session=abc"), ("x-lychgate-user", "admin")),
    )
    decision = handler(request)
    assert isinstance(decision, Forward)
    assert decision.upstream == AUTHZ
    assert decision.app is None
    assert not decision.allow_upgrade  # authz serves no WebSocket: upgrades to it are 403
    assert decision.response_fields is None  # authz owns the lychgate cookies
    assert decision.max_body_bytes == CONTROL_PLANE_MAX_BODY  # 413 here, not a GB for authz
    assert decision.target == "/.lychgate/login?rd=/x"
    assert header(decision, "cookie") == ["lychgate_session=abc"]
    assert header(decision, "x-lychgate-user") == []


def test_navigation_without_a_token_is_a_302() -> None:
    handler, _ = handler_for(SINGLE)
    decision = handler(SINGLE.head("/docs", headers=NAVIGATE))
    assert isinstance(decision, Respond)
    assert decision.status == 302
    assert header(decision, "location") == ["/.lychgate/login?rd=/docs"]
    assert header(decision, "cache-control") == ["no-store"]


def test_script_without_a_token_is_a_401_json() -> None:
    handler, _ = handler_for(SINGLE)
    decision = handler(SINGLE.head("/api", headers=FETCH))
    assert isinstance(decision, Respond)
    assert decision.status == 401
    assert header(decision, "content-type") == ["application/json"]
    assert header(decision, "www-authenticate")
    assert json.loads(decision.body) == {
        "error": "login_required",
        "login_url": "/.lychgate/login?rd=/api",
    }


def test_denials_say_nothing_about_why() -> None:
    handler, _ = handler_for(SINGLE)
    expired = SINGLE.token(issued=NOW - timedelta(hours=3))
    decision = handler(SINGLE.head("/api", cookies=[expired], headers=FETCH))
    assert isinstance(decision, Respond)
    assert b"expired" not in decision.body
    page = handler(SINGLE.head("/", host="evil.example", headers=NAVIGATE))
    assert isinstance(page, Respond)
    assert page.status == 404
    assert header(page, "content-type") == ["text/html; charset=utf-8"]
    assert header(page, "content-security-policy")
    api = handler(SINGLE.head("/", host="evil.example", headers=FETCH))
    assert isinstance(api, Respond)
    assert json.loads(api.body) == {"error": "not_found"}


def test_endpoints_become_local() -> None:
    handler, _ = handler_for(SINGLE)
    decision = handler(SINGLE.head("/.lychgate/healthz"))
    assert isinstance(decision, Local)
    assert decision.name == "healthz"


def test_no_snapshot_is_503() -> None:
    handler = GatewayHandler(
        SnapshotHolder(), GatewayOptions(AUTHZ), Endpoints(SnapshotHolder(), NoAuthz())
    )
    decision = handler(SINGLE.head("/", cookies=[SINGLE.token()]))
    assert isinstance(decision, Respond)
    assert decision.status == 503


def test_without_an_assertion_key_apps_are_refused_but_authz_works() -> None:
    world = World("single-host", assertion_key=None)
    handler, _ = handler_for(world)
    decision = handler(world.head("/", cookies=[world.token()]))
    assert isinstance(decision, Respond)
    assert decision.status == 503
    assert isinstance(handler(world.head("/.lychgate/login")), Forward)


def test_a_stale_snapshot_still_serves(caplog: pytest.LogCaptureFixture) -> None:
    ticks = [0.0]
    holder = SnapshotHolder(clock=lambda: ticks[0])
    holder.replace(SINGLE.snapshot)
    ticks[0] = 60.0  # a minute without a word from the feed (feed_max_stale: 5 minutes)
    assert holder.is_stale(30.0)
    handler = GatewayHandler(
        holder, GatewayOptions(AUTHZ, stale_after=30.0), Endpoints(holder, NoAuthz()), clock=Clock()
    )
    assert isinstance(handler(SINGLE.head("/", cookies=[SINGLE.token()])), Forward)
    assert handler.stale
    assert "serving on the last snapshot" in caplog.text
    holder.confirm(SINGLE.snapshot.serial)  # a heartbeat arrives
    assert isinstance(handler(SINGLE.head("/", cookies=[SINGLE.token()])), Forward)
    assert not handler.stale


def _silent_for(seconds: float) -> tuple[GatewayHandler, Endpoints, SnapshotHolder, Clock, Ticks]:
    """A handler whose feed last confirmed its snapshot ``seconds`` ago (max_stale: 300 s):
    its wall clock, and the monotonic one the feed's age is on."""
    ticks = Ticks()
    holder = SnapshotHolder(clock=ticks)
    holder.replace(SINGLE.snapshot)
    ticks.now = seconds
    options = GatewayOptions(AUTHZ, stale_after=30.0, max_stale=300.0)
    endpoints = Endpoints(holder, NoAuthz(), max_stale=options.max_stale)
    clock = Clock()
    return GatewayHandler(holder, options, endpoints, clock=clock), endpoints, holder, clock, ticks


async def test_a_feed_silent_past_max_stale_denies_until_it_is_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SECURITY.md item 9: past feed_max_stale the last snapshot no longer admits anybody."""
    handler, endpoints, holder, _clock, ticks = _silent_for(301.0)
    request = SINGLE.head("/", cookies=[SINGLE.token()], headers=FETCH)
    refused = handler(request)
    assert isinstance(refused, Respond)
    assert refused.status == 503
    assert handler.expired
    assert refused.reason == "config feed silent past feed_max_stale"  # the access log's
    assert "refusing requests until it is back" in caplog.text
    health = handler(SINGLE.head("/.lychgate/healthz"))
    assert isinstance(health, Local)
    assert (await health.endpoint(SINGLE.head("/.lychgate/healthz"))).status == 503
    # A heartbeat confirms the snapshot: within the next second's check, requests pass again.
    assert holder.confirm(SINGLE.snapshot.serial)
    ticks.now += 1.0
    assert isinstance(handler(request), Forward)
    assert (await endpoints.healthz(SINGLE.head("/.lychgate/healthz"))).status == 200


def test_a_wall_clock_stepped_back_does_not_put_off_the_feeds_expiry() -> None:
    """SECURITY.md item 9 under a clock step (NTP, a restored VM): the next look at the feed's
    age was due on the wall clock, so a step back of ten minutes served ten minutes past
    max_stale on the last snapshot."""
    handler, _endpoints, _holder, clock, ticks = _silent_for(100.0)
    request = SINGLE.head("/", cookies=[SINGLE.token()], headers=FETCH)
    assert isinstance(handler(request), Forward)  # silent, not yet for long
    clock.now -= timedelta(minutes=10)
    ticks.now = 301.0  # the feed's silence goes on, past max_stale
    refused = handler(request)
    assert isinstance(refused, Respond)
    assert refused.status == 503
    assert handler.expired


@pytest.mark.parametrize("accept", [FETCH, NAVIGATE], ids=["json", "html"])
def test_the_503_of_a_silent_feed_says_when_to_try_again(
    accept: tuple[tuple[str, str], ...],
) -> None:
    handler, _endpoints, _holder, _clock, _ticks = _silent_for(301.0)
    refused = handler(SINGLE.head("/", cookies=[SINGLE.token()], headers=accept))
    assert isinstance(refused, Respond)
    assert refused.status == 503
    assert ("retry-after", "5") in refused.headers


def test_a_feed_silent_within_max_stale_still_serves() -> None:
    """Below the bound the gateway keeps serving: an authz restart does not sign anybody out."""
    handler, _endpoints, _holder, _clock, _ticks = _silent_for(299.0)
    assert isinstance(handler(SINGLE.head("/", cookies=[SINGLE.token()])), Forward)
    assert handler.stale
    assert not handler.expired


def test_feed_max_stale_comes_from_the_settings(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, feed_max_stale=60)
    assert GatewayOptions.from_settings(settings).max_stale == 60.0
    assert GatewayOptions.from_settings(Settings(data_dir=tmp_path)).max_stale == 300.0


def test_a_new_key_set_drops_cached_verifications() -> None:
    handler, holder = handler_for(SINGLE)
    request = SINGLE.head("/", cookies=[SINGLE.token()], headers=FETCH)
    assert isinstance(handler(request), Forward)
    rotated = World("single-host")  # fresh keys: the old ones are gone from the JWKS
    holder.replace(rotated.snapshot)
    refused = handler(request)
    assert isinstance(refused, Respond)
    assert refused.status == 401


def test_revocation_applies_to_the_next_request() -> None:
    handler, holder = handler_for(SINGLE)
    request = SINGLE.head("/", cookies=[SINGLE.token(sid="s9")], headers=FETCH)
    assert isinstance(handler(request), Forward)
    holder.replace(SINGLE.changed(serial=2, revoked_sessions=frozenset({SessionId("s9")})))
    refused = handler(request)
    assert isinstance(refused, Respond)
    assert refused.status == 401


def test_unparsable_forwarding_from_a_trusted_proxy_is_400() -> None:
    options = GatewayOptions(AUTHZ, trusted_proxies=(ipaddress.ip_network("10.0.0.0/8"),))
    handler, _ = handler_for(SINGLE, options=options)
    request = SINGLE.head(
        "/", cookies=[SINGLE.token()], headers=(("x-forwarded-for", "nope"),), client_ip="10.0.0.2"
    )
    decision = handler(request)
    assert isinstance(decision, Respond)
    assert decision.status == 400


class ExplodingHolder:
    clock = Ticks()

    @property
    def current(self) -> None:
        raise RuntimeError("boom")


def test_any_exception_is_a_500(caplog: pytest.LogCaptureFixture) -> None:
    handler = GatewayHandler(
        cast(SnapshotHolder, ExplodingHolder()),
        GatewayOptions(AUTHZ),
        Endpoints(SnapshotHolder(), NoAuthz()),
    )
    decision = handler(SINGLE.head("/", cookies=[SINGLE.token()]))
    assert isinstance(decision, Respond)
    assert decision.status == 500
    assert b"boom" not in decision.body
    assert "request handling failed" in caplog.text


def test_options_from_settings(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, trusted_proxies=("10.0.0.0/8",))
    options = GatewayOptions.from_settings(settings)
    assert options.authz.url == f"unix:{tmp_path}/run/authz.sock"
    assert options.trusted_proxies == (ipaddress.ip_network("10.0.0.0/8"),)
    tcp = Settings(data_dir=tmp_path, authz_listen="127.0.0.1:9100")
    assert GatewayOptions.from_settings(tcp).authz.url == "http://127.0.0.1:9100"
    app = APPS[2]
    assert options.upstream(app).read_timeout == 3.0
    assert options.upstream(app).connect_timeout == settings.limits.upstream_connect_timeout
    assert options.authz_max_body == CONTROL_PLANE_MAX_BODY
    # A listener limit under authz's own cap is kept for authz too: the cap only lowers it.
    low = Settings(data_dir=tmp_path, limits={"max_body_bytes": 32 * 1024})
    assert GatewayOptions.from_settings(low).authz_max_body == 32 * 1024
    # Never under what sign-in sends: a listener at 0 (apps raising their own) still signs in.
    for tiny in (0, 1024):
        none = Settings(data_dir=tmp_path, limits={"max_body_bytes": tiny})
        assert GatewayOptions.from_settings(none).authz_max_body == SIGN_IN_MAX_BODY


def test_cached_identity_headers_carry_the_cached_assertion() -> None:
    keyring = SINGLE.snapshot.assertion_keyring
    assert keyring is not None
    signer = CachedAssertions(keyring, SINGLE.snapshot.issuer)
    admitted = admit(
        SINGLE.head("/", cookies=[SINGLE.token()]),
        now=NOW,
        snapshot=SINGLE.snapshot,
        verifier=CachedVerifier(SINGLE.keyring.public),
    )
    assert isinstance(admitted, ToApp)
    headers = signer.headers(admitted.identity, NOW)
    assert headers == identity_headers(admitted.identity, signer.assertion(admitted.identity, NOW))
    assert signer.headers(admitted.identity, NOW + timedelta(seconds=30)) is headers
    later = signer.headers(admitted.identity, NOW + timedelta(seconds=55))  # < 10 s left: new
    assert later != headers


def test_denials_any_client_can_cause_are_logged_once_per_reason_and_window(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Before setup every request is a 503: one warning for all of them, not one each.
    world = World("single-host")
    handler, holder = handler_for(world)
    holder.replace(world.changed(serial=world.snapshot.serial + 1, setup_done=False))
    with caplog.at_level(logging.WARNING, logger="lychgate.gateway.admit_handler"):
        for _ in range(200):
            answer = handler(world.head("/", headers=FETCH))
            assert isinstance(answer, Respond)
            assert answer.status == 503
    assert len([r for r in caplog.records if "denied with 503" in r.getMessage()]) == 1


@pytest.mark.parametrize(("max_stale", "warn_after"), [(15, 10.0), (30, 20.0), (300, 30.0)])
def test_a_silent_feed_is_called_stale_before_requests_are_refused(
    tmp_path: Path, max_stale: int, warn_after: float
) -> None:
    # With feed_max_stale = 15 the "serving on the last snapshot" warning came fifteen
    # seconds after the gateway had begun refusing every request.
    options = GatewayOptions.from_settings(Settings(data_dir=tmp_path, feed_max_stale=max_stale))
    assert options.stale_after == warn_after
    assert options.stale_after < options.max_stale


def test_the_stale_warning_never_follows_the_refusal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ticks = [0.0]
    holder = SnapshotHolder(clock=lambda: ticks[0])
    holder.replace(SINGLE.snapshot)
    options = GatewayOptions.from_settings(Settings(data_dir=tmp_path, feed_max_stale=15))
    clock = Clock()
    handler = GatewayHandler(holder, options, Endpoints(holder, NoAuthz()), clock=clock)
    request = SINGLE.head("/", cookies=[SINGLE.token()])
    for second in range(1, 41):
        ticks[0] = float(second)
        clock.now += timedelta(seconds=1)
        handler(request)
    said = [r.getMessage() for r in caplog.records if "config feed" in r.getMessage()]
    assert said == [
        "config feed silent: serving on the last snapshot",
        "config feed silent for over 15 s: refusing requests until it is back",
    ]
