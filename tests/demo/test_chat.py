"""The chat: the room's bounds (pure), and real WebSocket clients on the demo's unix socket."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, unix_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from demo.conftest import RunningDemo
from demo.fakes import assertion
from lychgate.demo.chat import HISTORY, MAX_TEXT, QUEUE_SIZE, ChatEvent, ChatRoom, clean_text
from lychgate.tokens import Keyring

pytestmark = pytest.mark.loopback
Event = tuple[str, str, str]


@asynccontextmanager
async def member(
    demo: RunningDemo, keyring: Keyring | None, name: str = "Ada", **headers: str
) -> AsyncIterator[ClientConnection]:
    """A WebSocket to the chat as ``name`` (no assertion when ``keyring`` is None)."""
    if keyring is not None:
        headers["x-lychgate-assertion"] = assertion(keyring, app="chat", name=name)
    async with unix_connect(
        str(demo.chat), "ws://chat.test/ws", additional_headers=headers, open_timeout=5
    ) as ws:
        yield ws


async def events(ws: ClientConnection, n: int) -> list[Event]:
    out = []
    for _ in range(n):
        event = json.loads(await asyncio.wait_for(ws.recv(), 5))
        out.append((event["type"], event["from"], event["text"]))
    return out


async def test_the_page_opens_the_socket(demo: RunningDemo) -> None:
    transport = httpx.AsyncHTTPTransport(uds=str(demo.chat))
    async with httpx.AsyncClient(transport=transport) as client:
        r = await client.get("http://chat.test/")
    assert r.status_code == 200
    assert 'new URL("/ws", location.href)' in r.text
    assert "innerHTML" not in r.text  # messages go in as text, never as markup


async def test_messages_are_broadcast_with_the_asserted_name(
    demo: RunningDemo, keyring: Keyring
) -> None:
    # X-Lychgate-User is only a convenience: the name comes from the verified assertion.
    async with (
        member(demo, keyring, "Ada", **{"x-lychgate-user": "Mallory"}) as ada,
        member(demo, keyring, "Grace") as grace,
    ):
        assert await events(ada, 3) == [
            ("welcome", "Ada", ""),
            ("joined", "Ada", ""),
            ("joined", "Grace", ""),
        ]
        assert await events(grace, 2) == [("welcome", "Grace", ""), ("joined", "Grace", "")]
        await ada.send("  hello\tworld\x07 ")
        assert await events(grace, 1) == [("message", "Ada", "hello world")]
        assert await events(ada, 1) == [("message", "Ada", "hello world")]
        await grace.send("hi Ada")
        assert await events(ada, 1) == [("message", "Grace", "hi Ada")]
        assert await events(grace, 1) == [("message", "Grace", "hi Ada")]


async def test_a_newcomer_gets_the_history_and_leaving_is_announced(
    demo: RunningDemo, keyring: Keyring
) -> None:
    async with member(demo, keyring, "Ada") as ada:
        await events(ada, 2)
        await ada.send("first")
        await events(ada, 1)
        async with member(demo, keyring, "Grace") as grace:
            assert await events(grace, 3) == [
                ("welcome", "Grace", ""),
                ("message", "Ada", "first"),
                ("joined", "Grace", ""),
            ]
            await events(ada, 1)
        assert await events(ada, 1) == [("left", "Grace", "")]


async def test_a_long_message_is_refused_to_its_sender_only(
    demo: RunningDemo, keyring: Keyring
) -> None:
    async with member(demo, keyring, "Ada") as ada, member(demo, keyring, "Grace") as grace:
        await events(ada, 3)
        await events(grace, 2)
        await ada.send("x" * (MAX_TEXT + 1))
        await ada.send("x" * MAX_TEXT)
        kind, _, text = (await events(ada, 1))[0]
        assert kind == "notice"
        assert f"longer than {MAX_TEXT}" in text
        assert await events(grace, 1) == [("message", "Ada", "x" * MAX_TEXT)]


async def test_an_oversized_frame_is_stopped_by_the_server(
    demo: RunningDemo, keyring: Keyring
) -> None:
    async with member(demo, keyring, "Ada") as ada:
        await events(ada, 2)
        await ada.send("x" * 5000)
        with pytest.raises(ConnectionClosed) as info:
            await events(ada, 1)
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 1009  # RFC 6455 section 7.4.1: message too big


async def test_binary_frames_close_the_socket(demo: RunningDemo, keyring: Keyring) -> None:
    async with member(demo, keyring, "Ada") as ada:
        await events(ada, 2)
        await ada.send(b"\x00\x01")
        with pytest.raises(ConnectionClosed) as info:
            await events(ada, 1)
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 1003


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-assertion"),
        pytest.param({"x-lychgate-user": "usr_ada"}, id="user-header-only"),
        pytest.param({"x-lychgate-assertion": "not.a.token"}, id="garbage"),
    ],
)
async def test_a_socket_without_a_valid_assertion_is_refused(
    demo: RunningDemo, headers: dict[str, str]
) -> None:
    with pytest.raises(InvalidStatus) as info:
        async with member(demo, None, **headers):
            pass
    assert info.value.response.status_code == 403


async def test_an_assertion_for_another_app_is_refused(demo: RunningDemo, keyring: Keyring) -> None:
    headers = {"x-lychgate-assertion": assertion(keyring, app="whoami")}
    with pytest.raises(InvalidStatus):
        async with member(demo, None, **headers):
            pass


async def test_a_page_on_another_site_cannot_open_the_socket(
    demo: RunningDemo, keyring: Keyring
) -> None:
    with pytest.raises(InvalidStatus):
        async with member(demo, keyring, origin="https://evil.example"):
            pass
    async with member(demo, keyring, origin="http://chat.test") as ws:
        assert await events(ws, 1) == [("welcome", "Ada", "")]


def test_clean_text() -> None:
    assert clean_text(" a\r\n b\x00c\u2028d ") == "a b c d"
    assert clean_text("\t \x07") == ""


async def test_the_history_is_bounded() -> None:
    room = ChatRoom()
    writer = room.join("Ada")
    for i in range(HISTORY + 5):
        room.post(writer, f"m{i}")
    newcomer = room.join("Grace")
    seen: list[ChatEvent] = []
    while not newcomer.outbox.empty():
        event = newcomer.outbox.get_nowait()
        assert event is not None
        seen.append(event)
    texts = [e.text for e in seen if e.kind == "message"]
    assert texts == [f"m{i}" for i in range(5, HISTORY + 5)]


async def test_a_member_that_falls_behind_is_dropped_not_buffered() -> None:
    room = ChatRoom()
    slow = room.join("Slow")
    talker = room.join("Talker")
    for i in range(QUEUE_SIZE + 1):
        room.post(talker, f"m{i}")
        while not talker.outbox.empty():  # the talker keeps up
            talker.outbox.get_nowait()
    assert room.size == 1
    assert slow.outbox.qsize() == 1
    assert slow.outbox.get_nowait() is None  # its writer closes the socket
