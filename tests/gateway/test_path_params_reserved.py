"""Path parameters cannot smuggle a path past the reserved namespace (paths.py step 7b).

Routing decides ``/.lychgate`` on the first segment. Tomcat and other Java servers strip path
parameters (``;jsessionid=...``), so ``/.lychgate;x/callback`` would be routed to the app and
read by a Java upstream as ``/.lychgate/callback``. Such spellings are refused (400), however
they are cased or encoded; parameters anywhere else are the app's business (THREAT_MODEL T13).
"""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from gateway.world import FETCH, NAVIGATE, NOW, Clock, NoAuthz, World
from lychgate.errors import ClientError
from lychgate.gateway.admission import Admission, Deny, ToApp, ToAuthz, admit
from lychgate.gateway.admit_handler import GatewayHandler, GatewayOptions
from lychgate.gateway.endpoints import Endpoints
from lychgate.gateway.paths import RequestTarget, is_reserved, normalize_path, parse_request_target
from lychgate.gateway.snapshot import SnapshotHolder
from lychgate.gateway.types import RequestHead, Respond, Upstream
from lychgate.tokens import CachedVerifier

PARAMETER = "target: path under /.lychgate holds a path parameter"
ESCAPE = "target: path under /.lychgate holds a percent-escape"

REFUSED = [
    # path parameters on the first segment, any letter case
    ("/.lychgate;x/callback", PARAMETER),
    ("/.lychgate;jsessionid=1/internal/feed", PARAMETER),
    ("/.lychgate;/internal/feed", PARAMETER),
    ("/.lychgate;x", PARAMETER),
    ("/.lychgate;x/", PARAMETER),
    ("/.lychgate;a=1;b=2/logout", PARAMETER),
    ("/.LYCHGATE;x/callback", PARAMETER),
    ("/.LychGate;JSESSIONID=1/Internal/Feed", PARAMETER),
    ("/%2Elychgate;x/internal/feed", PARAMETER),  # "%2E" is "." after step 3
    # segments that are only parameters vanish for a Java upstream
    ("/;x/.lychgate/internal/feed", PARAMETER),
    ("/;/.lychgate/callback", PARAMETER),
    ("/;a/;b/.LYCHGATE/internal/feed", PARAMETER),
    # the parameter separator encoded: refused as an escape (step 7a), any hex case
    ("/.lychgate%3Bx/callback", ESCAPE),
    ("/.lychgate%3bjsessionid=1/internal/feed", ESCAPE),
    ("/.LYCHGATE%3Bx/internal/feed", ESCAPE),
    ("/.lychgate%3B", ESCAPE),
    ("/%3Bx/.lychgate/internal/feed", ESCAPE),
    # with an encoded "/", "?" or "#" in the mix
    ("/%2F.lychgate;x/internal/feed", ESCAPE),
    ("/.lychgate;x%2Finternal%2Ffeed", ESCAPE),
    ("/;x%2F.lychgate/internal/feed", ESCAPE),  # decoded first: /;x/.lychgate/...
    ("/;x%2Fy/.lychgate/internal/feed", ESCAPE),  # Tomcat strips ";x%2Fy" whole
    ("/;x%3F/.lychgate/internal/feed", ESCAPE),  # Tomcat strips ";x%3F" whole
    ("/.lychgate;x%3F/internal/feed", ESCAPE),
]


@pytest.mark.parametrize(("raw", "message"), REFUSED)
def test_parameters_before_the_reserved_namespace_are_refused(raw: str, message: str) -> None:
    for _ in range(2):  # refusals are not memoized: every time
        with pytest.raises(ClientError) as err:
            parse_request_target(raw)
        assert (err.value.status, err.value.field) == (400, "target")
        assert str(err.value) == message
    with pytest.raises(ClientError):
        normalize_path(raw)
    with pytest.raises(ClientError):  # a query does not change it
        parse_request_target(raw + "?rd=/")


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        # look-alikes of the prefix are app paths
        ("/.lychgatex/", "/.lychgatex/"),
        ("/.lychgate-app/", "/.lychgate-app/"),
        ("/.lychgatex;x/y", "/.lychgatex;x/y"),
        ("/x.lychgate;y/z", "/x.lychgate;y/z"),
        ("/;x.lychgate/a", "/;x.lychgate/a"),  # ".lychgate" is inside the parameter
        # parameters on another first segment, or below the root
        ("/app;v=1/x", "/app;v=1/x"),
        ("/app;x/.lychgate", "/app;x/.lychgate"),
        ("/app;x/.lychgate/internal/feed", "/app;x/.lychgate/internal/feed"),
        ("/app%3Bx/.lychgate", "/app%3Bx/.lychgate"),
        ("/a/.lychgate;x", "/a/.lychgate;x"),
        ("/a/.lychgate%3Bx/y", "/a/.lychgate%3Bx/y"),
        ("/;x/app", "/;x/app"),
        ("/;jsessionid=1", "/;jsessionid=1"),
        # parameters inside the namespace: routing sends them to authz, which 404s them
        ("/.lychgate/login;x", "/.lychgate/login;x"),
        ("/.lychgate/;x/internal", "/.lychgate/;x/internal"),
        # the plain prefix
        ("/.lychgate", "/.lychgate"),
        ("/.LYCHGATE/callback", "/.LYCHGATE/callback"),
    ],
)
def test_parameters_elsewhere_are_kept(raw: str, path: str) -> None:
    assert parse_request_target(raw) == RequestTarget(path)
    assert normalize_path(raw) == path
    assert normalize_path(path) == path


# -- every reading, independently ---------------------------------------------------------------


def readings(path: str) -> list[str]:
    """What upstreams may read: with or without a cut at "%3F"/"%23", path parameters removed
    before decoding (Tomcat) or after; decoded "%2F", collapsed slashes, lower case."""
    found: list[str] = []
    for cut in (path, re.split("%3F|%23", path, flags=re.IGNORECASE)[0]):
        tomcat = re.sub(r";[^/]*", "", cut)
        tomcat = re.sub("%2F", "/", tomcat, flags=re.IGNORECASE)
        decoding = re.sub("%2F", "/", cut, flags=re.IGNORECASE)
        decoding = re.sub(r"(;|%3B)[^/]*", "", decoding, flags=re.IGNORECASE)
        found += [re.sub("/+", "/", tomcat).lower(), re.sub("/+", "/", decoding).lower()]
    return found


_PIECES = st.sampled_from(
    [
        *(".lychgate", ".LychGate", ".lychgatex", "app", "x", "", ".", ".."),
        *("/", ";", ";x", "%3B", "%3b", "%2F", "%3F", "%23", "=1", "%2E"),
    ]
)
targets = st.lists(_PIECES, min_size=1, max_size=10).map(lambda p: "/" + "".join(p))


@given(targets)
@example("/.lychgate;x/callback")
@example("/;x%2Fy/.lychgate/internal")
@example("/;x%2F.lychgate/internal")
@example("/;x%3F/.lychgate/internal")
def test_what_any_reading_puts_under_lychgate_was_routed_there(raw: str) -> None:
    # If some upstream may read the path as under /.lychgate, the gateway routed it there too,
    # spelled with nothing left to decode or strip before the namespace.
    try:
        path = normalize_path(raw)
    except ClientError:
        return
    if any(r == "/.lychgate" or r.startswith("/.lychgate/") for r in readings(path)):
        assert "%" not in path
        assert is_reserved(path)
        assert ";" not in path.split("/")[1]


# -- through admission and the handler ----------------------------------------------------------

SINGLE = World("single-host")
SUBS = World("subdomains")
EVERY_HOST = [
    pytest.param(SINGLE, "localhost:8080", id="single-host"),
    pytest.param(SUBS, "wiki.example.com", id="app-host"),
    pytest.param(SUBS, "auth.example.com", id="portal-host"),
]


def decide(world: World, request: RequestHead) -> Admission:
    return admit(
        request, now=NOW, snapshot=world.snapshot, verifier=CachedVerifier(world.keyring.public)
    )


@pytest.mark.parametrize(("world", "host"), EVERY_HOST)
@pytest.mark.parametrize(("target", "message"), REFUSED, ids=[t for t, _ in REFUSED])
def test_no_parameter_spelling_reaches_an_app(
    world: World, host: str, target: str, message: str
) -> None:
    # Before the token and before navigation is considered, as for the escapes of step 7a.
    for cookies, headers in ((None, ()), ([world.token()], NAVIGATE), ([world.token()], FETCH)):
        request = world.head(target, host=host, cookies=cookies, headers=headers)
        assert decide(world, request) == Deny(400, "bad_request", reason=message)


@pytest.mark.parametrize(("world", "host"), EVERY_HOST[:2])
def test_parameters_on_an_app_path_still_reach_the_app(world: World, host: str) -> None:
    request = world.head("/app;x/.lychgate?q=1", host=host, cookies=[world.token()])
    result = decide(world, request)
    assert isinstance(result, ToApp)
    assert result.target == RequestTarget("/app;x/.lychgate", "q=1")


def test_parameters_inside_the_namespace_go_to_authz() -> None:
    result = decide(SINGLE, SINGLE.head("/.lychgate/login;x"))
    assert isinstance(result, ToAuthz)


@pytest.mark.parametrize("target", ["/.lychgate;x/callback", "/.LYCHGATE%3Bx/internal/feed"])
def test_the_handler_answers_400(target: str) -> None:
    holder = SnapshotHolder()
    holder.replace(SINGLE.snapshot)
    options = GatewayOptions(Upstream("unix:/run/lychgate/authz.sock"))
    handler = GatewayHandler(holder, options, Endpoints(holder, NoAuthz()), clock=Clock())
    decision = handler(SINGLE.head(target, cookies=[SINGLE.token()], headers=NAVIGATE))
    assert isinstance(decision, Respond)
    assert decision.status == 400
