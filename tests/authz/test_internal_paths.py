"""The internal API answers only on its literal paths (THREAT_MODEL.md T17, SECURITY.md item 2).

uvicorn percent-decodes the path before routing, so ``/.lychgate/internal%2Ffeed`` arrives as
``path="/.lychgate/internal/feed"`` with the encoding kept in ``raw_path``. Such a request must
get the plain 404 of an unknown path even with the right bearer secret, and do nothing.
httpx's ASGI transport keeps the encoding in ``raw_path`` the same way; :class:`Probe` records
what the app saw, so each test also proves the disguise reached authz intact.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authz.conftest import internal_client, live_session
from lychgate.authz.context import AuthzContext
from lychgate.authz.handoff import issue_handoff
from lychgate.authz.internal import sent_literally
from lychgate.gateway.feed_http import FEED_PATH, REDEEM_PATH, REVOKE_PATH
from lychgate.gateway.feed_wire import MEDIA_TYPE

NOT_FOUND = {"detail": "Not Found"}


class Probe:
    """Wraps authz: records ``(raw_path, path)`` of each request, and ends every response
    after its first body chunk (the feed never ends; httpx's ASGI transport waits for the end)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[tuple[bytes, str]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.seen.append((scope["raw_path"], scope["path"]))
        ended = False

        async def first_chunk_only(message: Message) -> None:
            nonlocal ended
            if ended:
                return
            if message["type"] == "http.response.body":
                ended = True  # the client then reports a disconnect, which stops a stream
                message = {**message, "more_body": False}
            await send(message)

        await self.app(scope, receive, first_chunk_only)


def disguises(path: str) -> list[str]:
    """Spellings of ``path`` that decode to it: an encoded slash (either case), every slash
    but the first encoded, an encoded letter, an encoded dot."""
    head, _, last = path.rpartition("/")
    return [
        f"{head}%2F{last}",
        f"{head}%2f{last}",
        "/" + path[1:].replace("/", "%2F"),
        f"{head}/%{ord(last[0]):02X}{last[1:]}",
        path.replace("/.lychgate", "/%2Elychgate", 1),
    ]


@pytest.fixture
def probe(authz: FastAPI) -> Probe:
    return Probe(authz)


@pytest.fixture
async def gateway(probe: Probe, ctx: AuthzContext) -> AsyncIterator[httpx.AsyncClient]:
    """A client that presents the right internal secret, through the probe."""
    async with internal_client(probe, ctx) as client:
        yield client


def assert_saw(probe: Probe, sent: str, decoded: str) -> None:
    """authz received the raw path exactly as sent, and the decoded path it routes on."""
    assert probe.seen[-1] == (sent.encode(), decoded)


@pytest.mark.parametrize("path", disguises(REDEEM_PATH))
async def test_a_disguised_handoff_path_is_404_and_redeems_nothing(
    ctx: AuthzContext, gateway: httpx.AsyncClient, probe: Probe, path: str
) -> None:
    slug, session = await live_session(ctx)
    code = await issue_handoff(ctx, session.id, slug)
    r = await gateway.post(path, json={"code": code})
    assert_saw(probe, path, REDEEM_PATH)
    assert (r.status_code, r.json()) == (404, NOT_FOUND)
    plain = await gateway.post(REDEEM_PATH, json={"code": code})  # the code is still unused
    assert plain.status_code == 200
    assert plain.json()["token"]


@pytest.mark.parametrize("path", disguises(FEED_PATH))
async def test_a_disguised_feed_path_is_404_and_streams_nothing(
    gateway: httpx.AsyncClient, probe: Probe, path: str
) -> None:
    r = await gateway.get(path)
    assert_saw(probe, path, FEED_PATH)
    assert (r.status_code, r.json()) == (404, NOT_FOUND)
    assert MEDIA_TYPE not in r.headers["content-type"]


@pytest.mark.parametrize("path", disguises(REVOKE_PATH))
async def test_a_disguised_revoke_path_is_404_and_revokes_nothing(
    ctx: AuthzContext, gateway: httpx.AsyncClient, probe: Probe, path: str
) -> None:
    _, session = await live_session(ctx)
    r = await gateway.post(path, json={"session_id": session.id})
    assert_saw(probe, path, REVOKE_PATH)
    assert (r.status_code, r.json()) == (404, NOT_FOUND)
    assert not (await ctx.store.sessions.get(session.id)).revoked


NO_SECRET = {"authorization": "Bearer wrong"}


@pytest.mark.parametrize(
    ("method", "path", "headers", "content"),
    [
        ("POST", "/.lychgate/internal%2Fhandoff", NO_SECRET, b"{}"),
        ("POST", "/.lychgate/internal%2Fhandoff", {}, b"{not json"),
        ("GET", "/.lychgate/internal%2Fhandoff", {}, None),
        ("DELETE", "/.lychgate/internal%2Frevoke", {}, None),
        ("GET", FEED_PATH + "/", {}, None),
    ],
    ids=[
        "bad-secret-not-401",
        "bad-json-not-422",
        "wrong-method-not-405",
        "revoke-wrong-method-not-405",
        "slash-not-307",
    ],
)
async def test_a_disguised_path_answers_like_an_unknown_one(
    gateway: httpx.AsyncClient,
    method: str,
    path: str,
    headers: dict[str, str],
    content: bytes | None,
) -> None:
    """No 401, 405, 422 or slash redirect that would show the route exists."""
    unknown = await gateway.request(method, "/.lychgate/internal/nothing-here")
    r = await gateway.request(method, path, headers=headers, content=content)
    assert (r.status_code, r.json()) == (unknown.status_code, unknown.json()) == (404, NOT_FOUND)


REFUSED = {"detail": "internal API: bad or missing secret"}
NAMESPACE = [
    FEED_PATH,
    REDEEM_PATH,
    REVOKE_PATH,
    FEED_PATH + "X",
    FEED_PATH + "/",
    "/.lychgate/internal/nothing-here",
    "/.lychgate/internal/",
    "/.lychgate/internal",
    "/.lychgate/internal/%66eed",  # decodes to the feed's path, but is in the namespace as sent
]


@pytest.fixture
async def stranger(probe: Probe) -> AsyncIterator[httpx.AsyncClient]:
    """A client without the internal secret, as anyone who reaches authz on TCP is."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=probe), base_url="http://authz.internal"
    ) as client:
        yield client


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic x"])
@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
async def test_without_the_secret_the_namespace_answers_one_way(
    ctx: AuthzContext,
    stranger: httpx.AsyncClient,
    probe: Probe,
    method: str,
    authorization: str | None,
) -> None:
    """The same 401 for every path and method: a stranger cannot tell the feed (whose GET was
    a 401 and POST a 405), the handoff (POST 401, GET 405) and a path with no route (404)
    apart."""
    _, session = await live_session(ctx)
    headers = {"authorization": authorization} if authorization else {}
    answers = set()
    for path in NAMESPACE:
        r = await stranger.request(method, path, headers=headers, content=b"{not json")
        assert probe.seen[-1][0] == path.encode()  # reached authz as sent
        answers.add((r.status_code, r.text, r.headers["content-type"], "allow" in r.headers))
        assert (r.status_code, r.json()) == (401, REFUSED), (method, path)
    assert len(answers) == 1
    assert not (await ctx.store.sessions.get(session.id)).revoked


async def test_with_the_secret_the_routes_answer_as_before(
    gateway: httpx.AsyncClient, stranger: httpx.AsyncClient
) -> None:
    """A gateway still learns of its own mistakes: a wrong method is a 405, no route a 404."""
    wrong_method = await gateway.post(FEED_PATH)
    assert (wrong_method.status_code, wrong_method.headers["allow"]) == (405, "GET")
    assert (await gateway.get(REDEEM_PATH)).status_code == 405
    for path in (FEED_PATH + "X", "/.lychgate/internal/nothing-here", "/.lychgate/internal"):
        r = await gateway.get(path)
        assert (r.status_code, r.json()) == (404, NOT_FOUND), path
    # Outside the namespace, the secret changes nothing.
    for client in (gateway, stranger):
        r = await client.get("/.lychgate/no-such-page")
        assert r.status_code == 404


async def test_the_literal_paths_still_serve_the_gateway(
    ctx: AuthzContext, gateway: httpx.AsyncClient, probe: Probe
) -> None:
    feed = await gateway.get(FEED_PATH)
    assert_saw(probe, FEED_PATH, FEED_PATH)
    assert feed.status_code == 200
    assert feed.headers["content-type"].startswith(MEDIA_TYPE)
    assert feed.content.startswith(b"{")  # the first NDJSON line: the snapshot
    _, session = await live_session(ctx)
    revoked = await gateway.post(REVOKE_PATH, json={"session_id": session.id})
    assert revoked.status_code == 204
    assert (await ctx.store.sessions.get(session.id)).revoked


@pytest.mark.parametrize(
    ("scope", "literal"),
    [
        ({"path": FEED_PATH, "raw_path": FEED_PATH.encode()}, True),
        ({"path": FEED_PATH, "raw_path": FEED_PATH.encode() + b"?x=1"}, True),
        ({"path": FEED_PATH}, False),  # a server that gives no raw_path: fail closed
        ({"path": FEED_PATH, "raw_path": FEED_PATH}, False),  # not bytes
        ({"path": FEED_PATH, "raw_path": b"/.lychgate/internal%2Ffeed"}, False),
        (
            {
                "path": "/.lychgate/internal/f\u00e9ed",
                "raw_path": b"/.lychgate/internal/f\xc3\xa9ed",
            },
            False,
        ),
    ],
)
def test_sent_literally(scope: Scope, literal: bool) -> None:
    """Only a raw path byte-for-byte equal to the (ASCII) decoded path counts as literal."""
    assert sent_literally(scope) is literal
