"""``chat``: a demo WebSocket chat behind the gateway.

Theory of operation
-------------------
``GET /`` is a page with a little vanilla JS (:mod:`lychgate.demo.chat_page`); it opens
``/ws``. The handshake is accepted only when the ``Origin`` (if any) is this host (a page on
another site must not drive a user's socket) and ``X-Lychgate-Assertion`` verifies: the
sender's name is the assertion's ``name``, never something the client says. A socket lives
on after its 60-second assertion expires, as a session does; the gateway closes the tunnels of
revoked sessions.

Everything is bounded. A message is at most :data:`MAX_TEXT` characters (the server's frame
limit, set in :mod:`lychgate.demo.runner`, stops larger frames before they are read); the room
keeps the last :data:`HISTORY` messages for newcomers. Each member has its own queue of
:data:`QUEUE_SIZE` outgoing messages and a task that writes them: a broadcast never waits on a
slow client, and a client that falls that far behind is disconnected rather than buffered.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from lychgate.demo.chat_page import CHAT_PAGE
from lychgate.demo.verify import AssertionVerifier, JwksUnavailable, utc_now
from lychgate.errors import TokenError
from lychgate.tokens import IdentityAssertion

MAX_TEXT: Final = 500  # characters in one message
MAX_NAME: Final = 60
HISTORY: Final = 50
QUEUE_SIZE: Final = HISTORY + 50
# RFC 6455 section 7.4.1: 1008 policy violation (refused or too slow), 1003 unsupported data.
POLICY_VIOLATION: Final = 1008
UNSUPPORTED_DATA: Final = 1003


@dataclass(frozen=True, slots=True)
class ChatEvent:
    """One thing members see: a message, a join or leave, or a notice for one member."""

    kind: str  # "message" | "joined" | "left" | "notice" | "welcome"
    author: str
    text: str
    at: datetime

    def to_json(self) -> str:
        return json.dumps(
            {"type": self.kind, "from": self.author, "text": self.text, "at": self.at.isoformat()}
        )


class Member:
    """A connected client: its name and its queue of events to send (None: disconnect it)."""

    __slots__ = ("name", "outbox")

    def __init__(self, name: str) -> None:
        self.name = name
        self.outbox: asyncio.Queue[ChatEvent | None] = asyncio.Queue(QUEUE_SIZE)


class ChatRoom:
    """The members and the bounded history; :meth:`post` broadcasts without ever waiting."""

    def __init__(self, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._clock = clock
        self._members: set[Member] = set()
        self._history: deque[ChatEvent] = deque(maxlen=HISTORY)

    @property
    def size(self) -> int:
        return len(self._members)

    def join(self, name: str) -> Member:
        """Add a member; its queue starts with a welcome and the recent history."""
        member = Member(name)
        member.outbox.put_nowait(ChatEvent("welcome", name, "", self._clock()))
        for event in self._history:
            member.outbox.put_nowait(event)
        self._members.add(member)
        self._broadcast(ChatEvent("joined", name, "", self._clock()), remember=False)
        return member

    def leave(self, member: Member) -> None:
        if member in self._members:
            self._members.discard(member)
            self._broadcast(ChatEvent("left", member.name, "", self._clock()), remember=False)

    def post(self, member: Member, text: str) -> None:
        """Broadcast ``text`` from ``member`` (already cleaned; see :func:`clean_text`)."""
        self._broadcast(ChatEvent("message", member.name, text, self._clock()), remember=True)

    def notify(self, member: Member, text: str) -> None:
        """A notice for one member only (e.g. their message was too long)."""
        self._deliver(member, ChatEvent("notice", "", text, self._clock()))

    def _broadcast(self, event: ChatEvent, *, remember: bool) -> None:
        if remember:
            self._history.append(event)
        for member in list(self._members):
            self._deliver(member, event)

    def _deliver(self, member: Member, event: ChatEvent) -> None:
        try:
            member.outbox.put_nowait(event)
        except asyncio.QueueFull:
            # Too far behind: drop what is queued and tell its writer to disconnect it.
            self._members.discard(member)
            while not member.outbox.empty():
                member.outbox.get_nowait()
            member.outbox.put_nowait(None)


def clean_text(text: str) -> str:
    """One line of printable text: runs of whitespace and control characters become a space."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def display_name(claims: IdentityAssertion) -> str:
    """What the room calls a member: the asserted name, else e-mail, else user id."""
    return (claims.name or claims.email or claims.sub)[:MAX_NAME]


def same_origin(websocket: WebSocket) -> bool:
    """No ``Origin`` (not a browser), or one naming the host the gateway routed on."""
    origin = websocket.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc.lower() == websocket.headers.get("host", "").lower()


def create_chat(verifier: AssertionVerifier, room: ChatRoom | None = None) -> Starlette:
    """The chat ASGI app. ``verifier`` carries this app's audience (its slug)."""
    chat_room = room if room is not None else ChatRoom()

    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(CHAT_PAGE, headers={"cache-control": "no-store"})

    async def socket(websocket: WebSocket) -> None:
        claims = await _verified(verifier, websocket)
        if claims is None or not same_origin(websocket):
            # Closing before accept refuses the handshake (the client sees HTTP 403).
            await websocket.close(POLICY_VIOLATION)
            return
        await websocket.accept()
        member = chat_room.join(display_name(claims))
        try:
            async with asyncio.TaskGroup() as group:
                writer = group.create_task(_write(websocket, member))
                await _read(websocket, chat_room, member)
                writer.cancel()  # the client is gone: nothing more to send
        finally:
            chat_room.leave(member)

    return Starlette(routes=[Route("/", page), WebSocketRoute("/ws", socket)])


async def _verified(verifier: AssertionVerifier, websocket: WebSocket) -> IdentityAssertion | None:
    token = websocket.headers.get("x-lychgate-assertion")
    if not token:
        return None
    try:
        return await verifier.verify(token)
    except (TokenError, JwksUnavailable):
        return None


async def _read(websocket: WebSocket, room: ChatRoom, member: Member) -> None:
    """Post what the client sends until it goes away."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None:
            await websocket.close(UNSUPPORTED_DATA)
            return
        cleaned = clean_text(text)
        if len(cleaned) > MAX_TEXT:
            room.notify(member, f"message not sent: longer than {MAX_TEXT} characters")
        elif cleaned:
            room.post(member, cleaned)


async def _write(websocket: WebSocket, member: Member) -> None:
    """Send the member's queue until it says stop (None)."""
    try:
        while (event := await member.outbox.get()) is not None:
            await websocket.send_text(event.to_json())
        await websocket.close(POLICY_VIOLATION, "too slow")
    except (WebSocketDisconnect, RuntimeError):
        return  # the client left (or we already closed): the reader sees it too
