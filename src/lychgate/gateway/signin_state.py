"""The sign-in state: what binds a one-time code to the browser that asked for it.

Theory of operation
-------------------
A one-time code reaches an app's host as a link (``/.lychgate/callback?code=...``). Without more,
any site could send a user's browser such a link carrying the *attacker's* fresh code, and the
user would then work in the app as the attacker (login CSRF, THREAT_MODEL T30). Fetch metadata
tells a same-origin page from another site's, which is enough in single-host mode; in
subdomains mode the portal is a sibling site, or another site altogether, so it is not.

So every code is minted for a request that carries a *state* which the app's host set in a
cookie first, and the callback takes the code only with that same state and cookie:

1. ``GET <app origin>/.lychgate/start?app=<slug>&rd=<path>`` (the gateway): set the state
   cookie (or keep the one the browser has, so that two tabs signing in at once agree) and 303
   to ``<portal>/.lychgate/open/<slug>?rd=<path>&state=<state>``.
2. authz's ``open`` mints a code for the browser's own portal session and 303s to
   ``<app origin>/.lychgate/callback?code=<code>&rd=<path>&state=<state>``. Every other way to an
   app (after signing in, a portal tile, the device's "open") goes through step 1 first.
3. The callback compares ``state`` with the cookie before it spends the code, and clears the
   cookie once the app cookie is set.

The cookie is host-only, HttpOnly, ``SameSite=Lax`` (it must come along on the portal's
top-level navigation back) and, on https, ``__Host-`` prefixed, so a sibling subdomain cannot
toss one of its own. Its name is in Lychgate's namespace: never forwarded to an app, and no app
may set it. An attacker can make a browser run step 1, but that only signs the user in as
themselves; the state itself never leaves the browser's own redirects.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Iterable
from typing import Final
from urllib.parse import quote

from lychgate.domain import App
from lychgate.errors import UsageError
from lychgate.gateway.cookies import cookie_line, cookie_values
from lychgate.gateway.snapshot import ConfigSnapshot
from lychgate.gateway.types import RequestHead
from lychgate.ids import AppSlug

START_PATH: Final = "/.lychgate/start"
OPEN_PATH: Final = "/.lychgate/open/"  # + the app's slug (authz)
#: Steps 1 to 3 are redirects, one after another (a user who must sign in first does so
#: before step 1): minutes are plenty.
STATE_MAX_AGE: Final = 300
_STATE: Final = re.compile(r"[A-Za-z0-9_-]{22,64}")


def new_state() -> str:
    """A fresh state: 128 random bits, URL- and cookie-safe."""
    return secrets.token_urlsafe(16)


def is_state(value: str) -> bool:
    """True if ``value`` has the form of a state (any that :func:`new_state` makes)."""
    return _STATE.fullmatch(value) is not None


def state_cookie_name(secure: bool) -> str:
    """``__Host-lychgate_state`` on https, ``lychgate_state`` on plain http."""
    return "__Host-lychgate_state" if secure else "lychgate_state"


def set_state_cookie(state: str, *, secure: bool) -> str:
    """The ``Set-Cookie`` value that stores ``state`` for :data:`STATE_MAX_AGE` seconds."""
    if not is_state(state):
        raise UsageError("not a sign-in state", field="state")
    return cookie_line(state_cookie_name(secure), state, secure=secure, max_age=STATE_MAX_AGE)


def state_to_keep(head: RequestHead, secure: bool) -> str:
    """The browser's state, if it holds exactly one well-formed one, else a fresh one: so that
    two tabs signing in at once do not undo each other."""
    held = cookie_values(head.header_all("cookie"), state_cookie_name(secure))
    return held[0] if len(held) == 1 and is_state(held[0]) else new_state()


def app_to_start(snapshot: ConfigSnapshot, host_app: App | None, asked: list[str]) -> App | None:
    """The app a ``start`` hands off to: the host's (subdomains; ``app``, if given, must name
    it), or the one named by ``app`` (single-host). None: no such app here."""
    if snapshot.routing == "subdomains":
        if host_app is None or (asked and asked[0] != host_app.slug):
            return None
        return host_app
    return snapshot.apps_by_slug.get(AppSlug(asked[0])) if asked else None


def open_location(snapshot: ConfigSnapshot, app: App, target: str, state: str) -> str:
    """Step 2's URL: authz's ``open`` for ``app``, carrying the checked path and the state."""
    path = f"{OPEN_PATH}{quote(app.slug, safe='')}?rd={quote(target, safe='/')}&state={state}"
    return path if snapshot.routing == "single-host" else snapshot.public_origin + path


def state_cookies(cookie_headers: Iterable[str], secure: bool) -> list[str]:
    """Every value of the sign-in state cookie in these ``Cookie`` header values."""
    return cookie_values(cookie_headers, state_cookie_name(secure))


def holds(held: list[str], state: str) -> bool:
    """Whether ``held`` (:func:`state_cookies`) is exactly one value, ``state`` (compared in
    constant time). Exactly one: of two, either could be a sibling's (on plain http, where no
    prefix guards)."""
    return len(held) == 1 and hmac.compare_digest(held[0].encode(), state.encode())


def state_mismatch(head: RequestHead, states: list[str], secure: bool) -> str | None:
    """Why a callback's ``state`` values do not prove that this browser began the sign-in,
    or None when they do (one well-formed value, equal to the browser's one state cookie)."""
    if len(states) != 1 or not is_state(states[0]):
        return "no sign-in state in the link"
    held = state_cookies(head.header_all("cookie"), secure)
    if not held:
        return "no sign-in state cookie"
    if not holds(held, states[0]):
        return "the sign-in state does not match"
    return None
