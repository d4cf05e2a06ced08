"""Empty segments (paths.py steps 4, 5 and 7c): kept in app paths, never leading, never reserved.

nginx (``proxy_pass`` without a URI part) and Traefik forward ``//`` unchanged, and apps put
URLs and object keys in their paths (thumbor, imgproxy, web archives, S3-style keys), so the
gateway keeps empty segments too. Three things must still hold: a forwarded path never starts
with ``//`` (a scheme-relative URL once echoed into ``Location``); a path under ``/.lychgate``
is spelled with single slashes; and no reading of a path -- merging slashes before dot
segments are removed or after, or merging only some of them -- puts it under ``/.lychgate``
while routing sends it to an app.
"""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gateway.conftest import Connect, Start
from gateway.test_security_audit import deployment
from gateway.test_security_wire_paths import send
from gateway.world import FETCH, NAVIGATE, NOW, World
from lychgate.errors import ClientError
from lychgate.gateway.admission import Admission, Deny, ToApp, ToAuthz, admit
from lychgate.gateway.admit_redirect import safe_redirect
from lychgate.gateway.paths import RequestTarget, is_reserved, normalize_path, parse_request_target
from lychgate.tokens import CachedVerifier

DOUBLE_DOT = "target: path has a '..' that servers resolve differently near /.lychgate"

KEPT = [
    # the probe's apps: URLs and keys inside the path
    ("/unsafe/300x200/https://example.com/a.jpg", "/unsafe/300x200/https://example.com/a.jpg"),
    (
        "/insecure/rs:fit:300/plain/http://x.org/a.png",
        "/insecure/rs:fit:300/plain/http://x.org/a.png",
    ),
    ("/web/2020/http://x.org/", "/web/2020/http://x.org/"),
    ("/web/2020*/https://x.org//a", "/web/2020*/https://x.org//a"),  # "*" is a sub-delim
    ("/bucket/a//b", "/bucket/a//b"),
    ("/bucket/a///b//", "/bucket/a///b//"),
    # trailing and interior runs
    ("/a//b/", "/a//b/"),
    ("/a/b//", "/a/b//"),
    ("/a//", "/a//"),
    # dot segments around them (RFC 3986 section 5.2.4 counts an empty segment as one)
    ("/a/.//b", "/a//b"),
    ("/a//./b", "/a//b"),
    ("/a//.", "/a//"),
    ("/a//../b", "/a/b"),  # the ".." removes the empty segment, not "a"
    ("/a//..", "/a/"),
    ("/a//..//b", "/a//b"),
    ("/a/b//c/../d", "/a/b//d"),
    ("/a/../b/./c//d/%2e%2e/e", "/b/c//e"),
    # "." and ".lychgate" further down are app paths
    ("/x//.lychgate/internal/feed", "/x//.lychgate/internal/feed"),
    ("/unsafe/https://x.org/../.lychgate", "/unsafe/https://.lychgate"),
]


@pytest.mark.parametrize(("raw", "path"), KEPT)
def test_empty_segments_inside_an_app_path_are_kept(raw: str, path: str) -> None:
    assert parse_request_target(raw) == RequestTarget(path)
    assert parse_request_target(raw + "?w=1&u=//x").origin_form == path + "?w=1&u=//x"
    assert normalize_path(path) == path  # idempotent
    assert not is_reserved(path)


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ("//", "/"),
        ("///", "/"),
        ("//x", "/x"),
        ("//evil.example/", "/evil.example/"),
        ("///x//y", "/x//y"),
        # RFC 3986 section 5.2.4 alone would leave "//" in front of these
        ("/..//evil.example", "/evil.example"),
        ("/%2e%2e//evil.example", "/evil.example"),
        ("/.%2E//evil.example", "/evil.example"),
        ("/.//evil.example", "/evil.example"),
        ("/././/evil.example", "/evil.example"),
        ("/a/..//evil.example", "/evil.example"),
        ("/a/b/../..//evil.example", "/evil.example"),
        ("/a/..///evil.example//x", "/evil.example//x"),
        ("/..//..//evil.example", "/evil.example"),
        ("/a/..//", "/"),
        ("/a//../..//evil.example", "/evil.example"),
    ],
)
def test_a_leading_run_of_slashes_is_one(raw: str, path: str) -> None:
    assert parse_request_target(raw).path == path
    assert parse_request_target("http://gate.example" + raw).origin_form == path
    # and a sign-in's return path is what was checked: never scheme-relative
    assert safe_redirect(raw) in (None, path)


RESERVED = [
    ("//.lychgate/internal/feed", "/.lychgate/internal/feed"),
    ("///.lychgate//internal//feed", "/.lychgate/internal/feed"),
    ("/x/..//.lychgate/internal/feed", "/.lychgate/internal/feed"),
    ("/a/%2e%2e//.lychgate/internal/feed", "/.lychgate/internal/feed"),
    ("/.lychgate//internal/feed", "/.lychgate/internal/feed"),
    ("/.lychgate/.//internal/feed", "/.lychgate/internal/feed"),
    ("/.LychGate//Internal//Feed", "/.LychGate/Internal/Feed"),
    ("/.lychgate/x/..//internal/feed", "/.lychgate/internal/feed"),
    ("/.lychgate//internal//", "/.lychgate/internal/"),
    ("/.lychgate//", "/.lychgate/"),
    ("/a/%2e%2e//.lychgate/x", "/.lychgate/x"),
    ("/.lychgate//login", "/.lychgate/login"),
    ("/.lychgate//healthz", "/.lychgate/healthz"),
]


@pytest.mark.parametrize(("raw", "path"), RESERVED)
def test_the_reserved_namespace_is_spelled_with_single_slashes(raw: str, path: str) -> None:
    # Step 7c: routing, the endpoints and authz compare exact strings.
    assert parse_request_target(raw) == RequestTarget(path)
    assert normalize_path(path) == path


REFUSED = [
    # a slash-merging reader puts these under /.lychgate; RFC 3986 keeps them in /x
    "/x//../.lychgate/internal/feed",
    "/x//%2e%2e/.lychgate/internal/feed",
    "/x//./../.lychgate/callback",
    "/X//../.LyChGaTe/internal/feed",
    "/x/y///../../../.lychgate/internal/feed",
    "/x//../%2Elychgate/internal/feed",
    # and the other way round: RFC 3986 reads /.lychgate/internal, a merging reader /internal
    "/.lychgate//../internal",
    "/.lychgate/internal//../feed",
    # a ".." that removes a segment other readers count as none or as several
    "/x/;y/../.lychgate/internal/feed",  # Tomcat drops ";y": /x//../ to it
    "/x/%2F/../.lychgate/internal/feed",  # decoded: /x///../
    "/x/%2f%2F/../.lychgate/internal/feed",
    "/x/%3B/../.lychgate/internal/feed",
    "/.lychgate/a%2Fb/../../x",  # decoded: /.lychgate/a/b/../../x is /.lychgate/x
    "/.lychgate/x%3F/../../app",  # cut at the "?": /.lychgate/x
    "/.lychgate/x%23/../../app",
    # an over-approximation: wherever ".lychgate" is, with a ".." that removes such a segment
    "/a//../b/.lychgate",
    "/a/;x/../b/.LYCHGATE",
]


@pytest.mark.parametrize("raw", REFUSED)
def test_a_double_dot_that_servers_resolve_differently_is_refused(raw: str) -> None:
    for _ in range(2):  # refusals are not memoized: every time
        with pytest.raises(ClientError) as err:
            parse_request_target(raw)
        assert (err.value.status, err.value.field) == (400, "target")
        assert str(err.value) == DOUBLE_DOT


# -- through admission --------------------------------------------------------------------------

SINGLE = World("single-host")
SUBS = World("subdomains")
EVERY_HOST = [
    pytest.param(SINGLE, "localhost:8080", id="single-host"),
    pytest.param(SUBS, "wiki.example.com", id="app-host"),
    pytest.param(SUBS, "auth.example.com", id="portal-host"),
]
INTERNAL = [raw for raw, path in RESERVED if path.lower().startswith("/.lychgate/internal")]


def decide(world: World, target: str, host: str) -> Admission:
    request = world.head(target, host=host, cookies=[world.token()], headers=NAVIGATE)
    return admit(
        request, now=NOW, snapshot=world.snapshot, verifier=CachedVerifier(world.keyring.public)
    )


@pytest.mark.parametrize(("world", "host"), EVERY_HOST)
@pytest.mark.parametrize("raw", INTERNAL)
def test_no_spelling_with_empty_segments_reaches_the_internal_api(
    world: World, host: str, raw: str
) -> None:
    assert decide(world, raw, host) == Deny(
        404, "not_found", reason="no route: unknown host or internal path"
    )


@pytest.mark.parametrize(("world", "host"), EVERY_HOST)
@pytest.mark.parametrize("raw", REFUSED)
def test_a_path_that_reads_two_ways_reaches_nobody(world: World, host: str, raw: str) -> None:
    for headers in (NAVIGATE, FETCH):
        request = world.head(raw, host=host, cookies=[world.token()], headers=headers)
        decided = admit(
            request, now=NOW, snapshot=world.snapshot, verifier=CachedVerifier(world.keyring.public)
        )
        assert decided == Deny(400, "bad_request", reason=DOUBLE_DOT)


@pytest.mark.parametrize(("world", "host"), EVERY_HOST[:2])
def test_an_app_gets_its_empty_segments(world: World, host: str) -> None:
    raw = "/unsafe/300x200/https://example.com/a.jpg?w=1"
    result = decide(world, raw, host)
    assert isinstance(result, ToApp)
    assert result.target.origin_form == raw


def test_the_namespace_with_empty_segments_goes_to_authz_collapsed() -> None:
    result = decide(SINGLE, "/.lychgate//open//wiki", "localhost:8080")
    assert isinstance(result, ToAuthz)
    assert result.target == RequestTarget("/.lychgate/open/wiki")


# -- every reading, independently ---------------------------------------------------------------


def remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4, step by step as the RFC writes it (an independent oracle)."""
    source, output = path, ""
    while source:
        if source.startswith(("../", "./")):
            source = source.partition("/")[2]  # rule A
        elif source.startswith("/./") or source == "/.":
            source = "/" + source[3:]  # rule B
        elif source.startswith("/../") or source == "/..":
            source = "/" + source[4:]  # rule C
            output = output[: max(output.rfind("/"), 0)]
        elif source in (".", ".."):
            source = ""  # rule D
        else:
            end = source.find("/", 1)
            end = len(source) if end == -1 else end
            output, source = output + source[:end], source[end:]  # rule E
    return output


def merge(path: str) -> str:
    return re.sub("/+", "/", path)


def readings(plain: str) -> list[str]:
    """Every way a server may resolve ``plain``: with or without a cut at ``%3F``/``%23``, path
    parameters removed before decoding ``%2F`` (Tomcat) or after, and dot segments removed with
    any subset of the empty segments merged away first, or with all of them merged after."""
    found: list[str] = []
    for cut in (plain, re.split("%3F|%23", plain)[0]):
        tomcat = re.sub(r";[^/]*", "", cut).replace("%2F", "/")
        decoding = re.sub(r"(;|%3B)[^/]*", "", cut.replace("%2F", "/"))
        for variant in (cut, tomcat, decoding):
            segments = variant.split("/")[1:]
            empty = [i for i, s in enumerate(segments) if s == ""]
            found.append(merge(remove_dot_segments(variant)))
            for n in range(len(empty) + 1):
                for dropped in itertools.combinations(empty, n):
                    kept = [s for i, s in enumerate(segments) if i not in dropped]
                    found.append(remove_dot_segments("/" + "/".join(kept)))
    return found


def under_the_namespace(reading: str) -> bool:
    merged = merge(reading).lower()
    return merged == "/.lychgate" or merged.startswith("/.lychgate/")


_PIECES = st.sampled_from(
    [
        *("a", "x", ".lychgate", ".LychGate", "internal", "", "", ".", "..", "%2e%2E"),
        *(";x", "%2F", "a%2Fb", "%3B", "b%3F", "%23"),
    ]
)
dotted = st.lists(_PIECES, min_size=1, max_size=9).map(lambda parts: "/" + "/".join(parts))


@settings(max_examples=400)
@given(dotted)
@example("/x//../.lychgate/internal")
@example("/.lychgate//../x")
@example("/x/..//.lychgate/internal")
@example("/x//..//../.lychgate")
@example("/a//../.././.lychgate")
@example("/x/;x/../.lychgate/internal")
@example("/.lychgate/a%2Fb/../../x")
def test_the_forwarded_path_is_rfc_3986_and_no_reading_leaves_the_namespace(raw: str) -> None:
    plain = re.sub("%2e", ".", raw, flags=re.IGNORECASE)
    try:
        path, refused = normalize_path(raw), ""
    except ClientError as err:
        path, refused = "", str(err)
    if refused:
        # Refused by step 7c only where a ".." removed an odd segment and ".lychgate" is there;
        # the other refusals (steps 6, 7a and 7b) have their own tests.
        assert refused != DOUBLE_DOT or ".lychgate" in plain.lower()
        return
    # The path is RFC 3986's, with a leading run of "/" made one, and merged in the namespace.
    rfc = re.sub("^/+", "/", remove_dot_segments(plain))
    assert path == (merge(rfc) if is_reserved(rfc) else rfc)
    assert not path.startswith("//")
    # Whatever any reader makes of the raw path, or of the one forwarded, routing agrees.
    if any(under_the_namespace(r) for r in readings(plain) + readings(path)):
        assert is_reserved(path)
        assert "//" not in path
    else:
        assert not is_reserved(path)


# -- through the wire ---------------------------------------------------------------------------


@pytest.mark.loopback
@pytest.mark.parametrize(
    ("sent", "forwarded"),
    [
        ("/unsafe/300x200/https://example.com/a.jpg", "/unsafe/300x200/https://example.com/a.jpg"),
        ("/web/2020/http://x.org/?q=//y", "/web/2020/http://x.org/?q=//y"),
        ("//double//slash//", "/double//slash//"),
        ("/..//evil.example", "/evil.example"),
    ],
)
async def test_the_upstream_gets_its_empty_segments(
    gateway: Start, connect: Connect, sent: str, forwarded: str
) -> None:
    async with deployment(gateway) as d:
        assert await send(d, connect, sent) == 200
        assert [s.target for s in d.app.seen] == [forwarded]
        assert d.authz.seen == []


@pytest.mark.loopback
@pytest.mark.parametrize(
    ("sent", "status"),
    [
        ("/.lychgate//internal/feed", 404),
        ("/x/..//.lychgate/internal/feed", 404),
        ("/x//../.lychgate/internal/feed", 400),
    ],
)
async def test_empty_segments_carry_nothing_into_the_internal_api(
    gateway: Start, connect: Connect, sent: str, status: int
) -> None:
    async with deployment(gateway) as d:
        assert await send(d, connect, sent) == status
        assert d.app.seen == []
        assert d.authz.seen == []
