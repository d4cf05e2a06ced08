"""One request as the connection tracks it: head, framing, and where its content goes."""

from __future__ import annotations

from time import perf_counter
from typing import Final, Protocol

from lychgate.gateway.types import Principal, RequestHead
from lychgate.ids import AppSlug

# Why a client connection is not reading (bit flags; it reads again when none is left).
PAUSE_UPSTREAM = 1  # the upstream cannot take the content as fast as it comes
PAUSE_BUFFER = 2  # parsed ahead: pipelined requests, or content waiting for its upstream
PAUSE_HOLD = 4  # HTTP is over on this connection: an upgrade is pending, or it is closing


# What a held piece of content costs beyond its bytes (its list slot and object header, and
# the chunk framing it is sent with), counted against the buffer limits: content in 1-byte
# chunks must not pile up a quarter of a million pieces (53 MB for 4 MB on the wire).
PIECE_COST: Final = 64


class BodySink(Protocol):
    """Takes a request's content as it is parsed (the forwarding exchange)."""

    def request_body(self, data: bytes) -> None: ...

    def request_end(self) -> None: ...

    def request_failed(self, status: int, why: str = "") -> None: ...


class Responder(Protocol):
    """What answers the active request: the forwarding exchange, while it runs."""

    @property
    def app(self) -> AppSlug | None:
        """The app the request is forwarded to (None: the control plane)."""
        ...

    @property
    def status(self) -> int:
        """The status of the response sent so far (0: none of it yet)."""
        ...

    def client_write_paused(self) -> None: ...

    def client_write_resumed(self) -> None: ...

    def client_lost(self) -> tuple[AppSlug | None, int]:
        """The client went away; returns the app and the status sent so far (0: none)."""
        ...


class Request:
    """A parsed request head plus the state of its content.

    Content goes to ``sink`` once the request is being forwarded; before that (it is queued
    behind a pipelined request) it is buffered here, bounded by pausing reads; after a local
    answer it is read and discarded (``discard``), up to ``Limits.max_drain_bytes``.
    """

    __slots__ = (
        "body_done",
        "buffer",
        "buffered",
        "chunked",
        "content_length",
        "continue_sent",
        "discard",
        "error",
        "expect_continue",
        "head",
        "head_only",
        "keep_alive",
        "received",
        "rid",
        "sink",
        "started",
        "upgrade",
        "who",
        "why",
    )

    def __init__(
        self,
        head: RequestHead | None,
        *,
        error: int | None = None,
        why: str = "",
        head_only: bool = False,
    ) -> None:
        self.head = head
        # A HEAD refused before its head was whole (414, 431, 400): its answer has no content.
        self.head_only = head_only
        self.error = error  # answer with this error page and close (set while parsing)
        self.why = why  # and this is why, for the access log
        self.keep_alive = False
        self.upgrade = False
        self.content_length: int | None = None
        self.chunked = False
        self.expect_continue = False
        self.continue_sent = False
        self.received = 0
        self.body_done = head is None
        self.buffer: list[bytes] = []
        self.buffered = 0
        self.sink: BodySink | None = None
        self.discard = False
        # Its duration runs from here: the head is whole (or refused), so a request queued
        # behind a pipelined one counts its wait too, as the client sees it.
        self.started = perf_counter()
        self.who: Principal | None = None  # set from the decision, for the response hook
        # Its id (.request_ids): its head's; for one refused before its head was whole, made
        # when its answer is.
        self.rid = "" if head is None else head.rid

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length)

    def take_buffer(self) -> list[bytes]:
        chunks = self.buffer
        if chunks:  # most requests buffer nothing: keep their (empty) list
            self.buffer = []
            self.buffered = 0
        return chunks
