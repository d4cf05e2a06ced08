"""A small deployment for admission, handler and endpoint tests (no tests of its own).

Two shapes: single-host on ``http://localhost:8080`` (cookie ``lychgate``) and subdomains with
the portal on ``https://auth.example.com`` (cookie ``__Host-lychgate``). Apps: ``wiki`` (any
user), ``admin`` (admins only), ``grafana`` on its own host, ``old`` (disabled). Users:
``user-1`` and the admin ``user-2``. Session ``revoked-sess`` is revoked.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final

from fixtures.keys import ISSUER, KEY_NOW, app_claims, make_keyring
from lychgate.domain import App, AppPolicy
from lychgate.gateway.admit_handler import GatewayHandler, GatewayOptions
from lychgate.gateway.endpoints import Endpoints
from lychgate.gateway.snapshot import ConfigSnapshot, SnapshotHolder, UserProfile
from lychgate.gateway.types import RequestHead, Upstream
from lychgate.ids import AppId, AppSlug, SessionId, UserId
from lychgate.tokens import Keyring, encode_app_token, generate_signing_key

#: "Now" in these tests: a minute after the keys and tokens were made.
NOW: Final = KEY_NOW + timedelta(minutes=1)


class Clock:
    """A settable clock for the handler: tests move ``now`` explicitly."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class NoAuthz:
    """An authz client for tests whose requests never reach authz."""

    async def redeem_code(self, code: str, *, rid: str = "") -> str:
        raise AssertionError("not used here")

    async def revoke_session(
        self, session_id: SessionId, user_id: UserId | None = None, *, rid: str = ""
    ) -> None:
        raise AssertionError("not used here")


def make_app(slug: str, **kw: Any) -> App:
    fields: dict[str, Any] = {
        "id": AppId(f"app_{slug}"),
        "slug": AppSlug(slug),
        "name": slug.title(),
        "upstream": f"http://127.0.0.1:9/{slug}",
        "host": None,
    }
    fields.update(kw)
    return App(**fields)


APPS: Final = (
    make_app("wiki"),
    make_app("admin", policy=AppPolicy.ADMINS, websockets=True),
    make_app("grafana", host="metrics.corp.example", max_body_bytes=1024, read_timeout=3.0),
    make_app("old", enabled=False),
)
USERS: Final = {
    UserId("user-1"): UserProfile("Ann", "ann@example.com", ("staff",)),
    UserId("user-2"): UserProfile("Root", "root@example.com", ("ops",)),
}


class World:
    """Keys, a snapshot and request builders for one deployment shape."""

    def __init__(self, routing: str = "single-host", **changes: Any) -> None:
        self.keyring = make_keyring()
        single = routing == "single-host"
        fields: dict[str, Any] = {
            "serial": 1,
            "issued_at": KEY_NOW,
            "issuer": ISSUER,
            "routing": routing,
            "public_url": "http://localhost:8080" if single else "https://auth.example.com",
            "app_domain": "localhost" if single else "example.com",
            "setup_done": True,
            "apps": APPS,
            "users": USERS,
            "revoked_sessions": frozenset({SessionId("revoked-sess")}),
            "keyring": self.keyring.public,
            "assertion_key": generate_signing_key(KEY_NOW),
        }
        fields.update(changes)
        self.snapshot = ConfigSnapshot(**fields)
        self.cookie_name = "lychgate" if single else "__Host-lychgate"
        self.scheme = "http" if single else "https"
        self.default_host = "localhost:8080" if single else "wiki.example.com"

    def changed(self, **changes: Any) -> ConfigSnapshot:
        """This world's snapshot with some fields changed (same keys)."""
        fields = {
            name: getattr(self.snapshot, name)
            for name in (
                "serial",
                "issued_at",
                "issuer",
                "routing",
                "public_url",
                "app_domain",
                "setup_done",
                "apps",
                "users",
                "revoked_sessions",
                "keyring",
                "assertion_key",
            )
        }
        fields.update(changes)
        return ConfigSnapshot(**fields)

    def token(
        self,
        *,
        app: str = "wiki",
        sid: str = "sess-1",
        sub: str = "user-1",
        adm: bool = False,
        issued: datetime = KEY_NOW,
        ttl: timedelta = timedelta(hours=1),
        issuer: str = ISSUER,
        keyring: Keyring | None = None,
    ) -> str:
        claims = app_claims(app=app, sid=sid, sub=sub, adm=adm, now=issued, ttl=ttl, issuer=issuer)
        return encode_app_token(keyring or self.keyring, claims)

    def head(
        self,
        target: str = "/",
        *,
        method: str = "GET",
        host: str | None = None,
        cookies: list[str] | None = None,
        headers: tuple[tuple[str, str], ...] = (),
        client_ip: str = "203.0.113.9",
        sni: str | None = None,
    ) -> RequestHead:
        """A request; ``cookies`` are values of the app cookie, each in its own pair."""
        all_headers: list[tuple[str, str]] = [("host", host or self.default_host)]
        if cookies is not None:
            pairs = "; ".join(f"{self.cookie_name}={value}" for value in cookies)
            all_headers.append(("cookie", pairs))
        all_headers.extend(headers)
        path, _, query = target.partition("?")
        return RequestHead(
            method=method,
            target=target,
            path=path,
            query=query,
            headers=tuple(all_headers),
            http_version="1.1",
            client_ip=client_ip,
            scheme=self.scheme,
            sni=sni,
        )


NAVIGATE: Final = (("sec-fetch-mode", "navigate"), ("accept", "text/html,*/*;q=0.8"))
FETCH: Final = (("sec-fetch-mode", "cors"), ("accept", "application/json"))


AUTHZ: Final = Upstream("unix:/run/lychgate/authz.sock")


def handler_for(
    world: World, *, options: GatewayOptions | None = None, clock: Clock | None = None
) -> tuple[GatewayHandler, SnapshotHolder]:
    """The real request handler on ``world``'s snapshot, and the holder to change it."""
    holder = SnapshotHolder()
    holder.replace(world.snapshot)
    endpoints = Endpoints(holder, NoAuthz())
    handler = GatewayHandler(
        holder, options or GatewayOptions(AUTHZ), endpoints, clock=clock or Clock()
    )
    return handler, holder
