"""Raw byte tunnels after ``101 Switching Protocols`` (WebSocket and other Upgrades).

Theory of operation
-------------------
Once the upstream answers an Upgrade with 101 (RFC 9110 section 7.8), HTTP is over on both
connections. The engine relays the 101 to the client, then gives both transports to a
:class:`Tunnel`: each gets a :class:`TunnelEnd` as its protocol (``transport.set_protocol``),
and each end writes what it reads into the other. Bytes that arrived behind either head (the
parser's upgrade offset) are written first.

Backpressure is symmetric: when one transport's write buffer passes its high-water mark, the
other transport stops reading until it drains.

An end-of-file is a half-close (RFC 9293 section 3.6: a side that sent its FIN may still
receive), and is passed on as one, as nginx's stream proxy and HAProxy do: the other side gets
what is buffered for it, then a FIN (``write_eof``), and the tunnel goes on relaying the other
way until that side ends too. A client that sends a request and shuts its write side gets the
whole reply, which a close of both at the first FIN used to cut. A half-closed tunnel is still
a tunnel: idle, revoked, cut for not reading, or a side lost, it closes both sides at once as
before (no timer of its own, unlike HAProxy's ``timeout client-fin``: the idle timeout bounds
it). Its record says who ended first ("client closed"), unless the gateway or an error ended
it. TLS has no half-close in asyncio or uvloop (``can_write_eof()`` is False, and returning
True from ``eof_received`` has no effect there), so an end-of-file involving a TLS side ends
both directions at once.

A close, or the end of both directions, closes both sides, after flushing what is buffered; a
side that has not flushed within ``drain_timeout`` (the listener's ``send_timeout``: its peer
reads nothing) is cut then. A TLS side (the client's, on an HTTPS listener; an https app's) has
its socket closed as soon as our close_notify has left, not when the peer's comes (RFC 8446
section 6.1 does not ask us to wait for it, see :mod:`.tls_close`): the tunnel keeps the TCP
transport under each. A side lost while its writes were held back is different: its peer
was not being read meanwhile, so a peer blocked writing to us would never read what we hold for
it, and that is cut at once (an echo app and a client that vanished mid-flood used to hold the
app's socket for the whole drain timeout). A tunnel that the gateway ends itself (revoked,
idle, the feed expired, shutting down) cuts at once a side that still holds unsent bytes:
waiting on a peer that does not read would keep its socket for ever, counted nowhere.

A side that stops reading while the other keeps sending fills its write buffer; the other side
then stops being read (backpressure). If the stalled side has not drained within
``drain_timeout`` (the listener's ``send_timeout``, as for an HTTP response), the tunnel is
cut: a client that never reads must not hold two sockets and their buffers for the hour the
idle timeout allows, and a peer that closed meanwhile (its FIN unread while reading is paused)
is let go too.

Open tunnels are kept by a :class:`.TunnelRegistry` (:mod:`.tunnel_registry`): by session,
so that revoking one closes its WebSockets, and swept for the ones idle too long.

A tunnel and its two ends refer to each other; once both connections are gone the ends let go
of each other and the tunnel of them, so that reference counting alone frees all three
(:mod:`lychgate.gateway.collector`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lychgate.gateway.http.tls_close import close_when_sent
from lychgate.gateway.http.unsent import StallWatch, reset_on_close, unsent_bytes
from lychgate.gateway.http.wsframes import FrameCursor, close_frame
from lychgate.gateway.types import Principal, RequestHead
from lychgate.ids import AppSlug, SessionId

if TYPE_CHECKING:
    from lychgate.gateway.http.tunnel_registry import TunnelRegistry

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TunnelEnded:
    """A tunnel's end, once both of its connections are gone (for the access log and metrics)."""

    head: RequestHead  # the handshake
    app: AppSlug | None
    seconds: float  # how long it was open
    why: str  # "client closed", "session ended", "idle (tunnel_idle_timeout)"...
    who: Principal | None
    sent: int  # bytes the client sent through it (behind its head included), less any dropped
    received: int  # bytes the client was sent (behind the 101 included), less any dropped
    rid: str = ""  # the handshake's request id (.request_ids)


#: Told of each tunnel's end (:attr:`.ServerContext.on_tunnel_end`).
TunnelEndHook = Callable[[TunnelEnded], None]


class TunnelEnd(asyncio.Protocol):
    """One side of a tunnel: what it reads, its peer writes."""

    __slots__ = (
        "_stall",
        "_stalled",
        "dropped",
        "ended",
        "frames",
        "name",
        "peer",
        "received",
        "transport",
        "tunnel",
    )

    def __init__(self, tunnel: Tunnel, transport: asyncio.Transport, name: str) -> None:
        self.tunnel = tunnel
        self.transport = transport
        self.name = name  # "client" or "upstream", for the log
        self.peer: TunnelEnd | None = None
        self.received = 0  # bytes read from this side
        self.dropped = 0  # bytes held for this side and dropped when it was cut
        self.ended = False  # it sent its end-of-file: it is not read any more
        self.frames: FrameCursor | None = None  # the app's side: where its frames end
        self._stalled: asyncio.TimerHandle | None = None  # armed while its writes are paused
        self._stall: StallWatch | None = None  # is this side still reading? (.unsent)

    def data_received(self, data: bytes) -> None:
        self.tunnel.quiet = 0
        self.received += len(data)
        frames = self.frames
        if frames is not None:
            frames.advance(data)
        peer = self.peer
        if peer is not None and not peer.transport.is_closing():
            peer.transport.write(data)

    def eof_received(self) -> bool | None:
        """This side's FIN: pass it on, and keep this side open to write (True), while the
        other side may still send; else close both (see the module docstring)."""
        if self.ended:
            return True  # told again: asyncio and uvloop both do, if reading resumes
        self.ended = True
        tunnel, peer = self.tunnel, self.peer
        first = peer if peer is not None and peer.ended else self  # whose FIN came first
        if (
            peer is None
            or peer.ended
            or tunnel.closed
            or peer.transport.is_closing()
            # TLS on either side: no half-close (can_write_eof() is False, and sslproto
            # closes a side that read its end whatever we return): both close, as before.
            or not (self.transport.can_write_eof() and peer.transport.can_write_eof())
        ):
            tunnel.close(why=f"{first.name} closed")
            return None
        tunnel.quiet = 0
        peer.transport.write_eof()  # after what is buffered for it
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        # Its writes were held back, so its peer was not being read: a peer that is itself
        # blocked writing to us would never take what we still hold for it.
        held_back = self._stall is not None
        self._unstall()
        why = f"{self.name} closed" if exc is None else f"{self.name} lost"
        self.tunnel.end_lost(why, cut=held_back)

    def pause_writing(self) -> None:
        peer = self._peer_read()
        if peer is not None:
            peer.pause_reading()
        if self._stalled is None and not self.tunnel.closed:
            loop = asyncio.get_running_loop()
            self._stall = StallWatch(self.transport, self.tunnel.drain_timeout, loop.time())
            self._stall_timer()

    @property
    def held_back(self) -> bool:
        """Whether its writes are paused: it reads slowly, or not at all (then its stall
        timer cuts it at ``drain_timeout``)."""
        return self._stall is not None

    def _stall_timer(self) -> None:
        assert self._stall is not None
        loop = asyncio.get_running_loop()
        self._stalled = loop.call_later(self._stall.every, self._stopped_reading)

    def resume_writing(self) -> None:
        self._unstall()
        peer = self._peer_read()
        if peer is not None:
            peer.resume_reading()

    def _peer_read(self) -> asyncio.Transport | None:
        """Its peer's transport while it is still read: not once the peer ended (resuming a
        transport that read its end-of-file reads that again), nor once it closes."""
        peer = self.peer
        if peer is None or peer.ended or peer.transport.is_closing():
            return None
        return peer.transport

    def _unstall(self) -> None:
        self._stall = None
        if self._stalled is not None:
            self._stalled.cancel()
            self._stalled = None

    def _stopped_reading(self) -> None:
        self._stalled = None
        if self.tunnel.closed:
            return  # already closing: its drain timer cuts what is left
        loop = asyncio.get_running_loop()
        if self._stall is not None and not self._stall.stopped(self.transport, loop.time()):
            self._stall_timer()  # reading, if slowly
            return
        why = f"{self.name} stopped reading (send_timeout)"
        log.info("closed a tunnel: %s for %.0f s", why, self.tunnel.drain_timeout)
        # Reset, not closed: a close whose bytes are all in the kernel already keeps the
        # socket sending them (megabytes, in FIN-WAIT) to a peer that reads none of them, and
        # that peer is never told. Nothing is lost: it was not reading.
        self.dropped += unsent_bytes(self.transport)  # the kernel's queue too: reset below
        reset_on_close(self.transport)
        self.transport.abort()
        self.tunnel.close(cut=True, why=why)


class Tunnel:
    """A client connection and an upstream connection joined byte for byte."""

    __slots__ = (
        "_client_tcp",
        "_closed",
        "_drain_timer",
        "_ends",
        "_head",
        "_on_end",
        "_open_ends",
        "_registry",
        "_rid",
        "_started",
        "_upstream_tcp",
        "app",
        "client",
        "quiet",
        "session_id",
        "upstream",
        "who",
        "why",
    )

    def __init__(
        self,
        registry: TunnelRegistry,
        session_id: SessionId | None,
        client: asyncio.Transport,
        upstream: asyncio.Transport,
        *,
        app: AppSlug | None = None,
        who: Principal | None = None,
        head: RequestHead | None = None,
        rid: str = "",
        on_end: TunnelEndHook | None = None,
        client_tcp: asyncio.Transport | None = None,
        upstream_tcp: asyncio.Transport | None = None,
    ) -> None:
        self._registry = registry
        self.session_id = session_id
        self.app = app  # what it was admitted for: the app, and the signed-in user
        self.who = who
        self.why = ""  # why it ended: the first reason given
        self._head = head  # the handshake and its id, for the record of its end
        self._rid = rid
        self._on_end = on_end  # told when both sides are gone
        self._started = 0.0
        self._ends: tuple[TunnelEnd, TunnelEnd] | None = None
        self.client = client
        self._client_tcp = client_tcp  # under the client's TLS, if it is (.tls_close)
        self.upstream = upstream
        self._upstream_tcp = upstream_tcp  # under the app's TLS, if https (.upstream_connect)
        self._closed = False
        self._open_ends = 2  # transports whose connection_lost has not come yet
        self._drain_timer: asyncio.TimerHandle | None = None
        self.quiet = 0  # the registry's sweeps since a byte last passed

    def draining(self) -> bool:
        """Whether a side's writes are paused. That is no silence, though nothing is read
        from the other side meanwhile: bytes wait for a side that reads slowly, or for one
        that reads nothing, which its own stall timer cuts as such ("client stopped
        reading"). Counted as idle, a client that stopped reading was closed as idle."""
        if self._ends is None:
            return False
        client, upstream = self._ends
        return client.held_back or upstream.held_back

    def start(self, to_upstream: bytes, to_client: bytes, *, client_ended: bool = False) -> None:
        """Switch both transports to tunnel ends; write bytes that came behind the heads.
        ``client_ended``: the client's FIN came before the 101 (read by the HTTP connection,
        which reads on while the app answers): it is passed on as if it came now."""
        a = TunnelEnd(self, self.client, "client")
        b = TunnelEnd(self, self.upstream, "upstream")
        a.peer, b.peer = b, a
        a.received, b.received = len(to_upstream), len(to_client)  # read behind the heads
        b.frames = FrameCursor()
        b.frames.advance(to_client)
        self._ends = (a, b)
        self._started = time.perf_counter()
        self.client.set_protocol(a)
        self.upstream.set_protocol(b)
        self._registry._add(self)
        if to_upstream:
            self.upstream.write(to_upstream)
        if to_client:
            self.client.write(to_client)
        if client_ended:
            a.eof_received()
        else:
            self.client.resume_reading()
        self.upstream.resume_reading()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def drain_timeout(self) -> float:
        return self._registry.drain_timeout

    def close(self, *, cut: bool = False, why: str = "", code: int | None = None) -> None:
        """Close both sides, after each has flushed what it holds (within the drain timeout).

        ``cut``: the gateway ends the tunnel itself; a side that still holds unsent bytes is
        aborted now rather than waited on. ``why``: for the record of its end. ``code``: tell
        the client with a close frame of this code and ``why``, if the app's last frame is
        whole (:mod:`.wsframes`).
        """
        if why and not self.why:
            self.why = why
        if self._closed:
            if cut:
                self._cut_unsent()
            return
        if code is not None and self._ends is not None:
            # Not once the app's FIN was passed on: the client's write side is shut then.
            upstream = self._ends[1]
            whole = upstream.frames is not None and upstream.frames.at_boundary
            if whole and not upstream.ended and not self.client.is_closing():
                self.client.write(close_frame(code, why))
        self._closed = True
        self._registry._remove(self)
        self.client.close()
        self.upstream.close()
        for tls, tcp in ((self.client, self._client_tcp), (self.upstream, self._upstream_tcp)):
            if tcp is not None:  # closed once our close_notify has left (.tls_close)
                close_when_sent(tls, tcp)
        self._client_tcp = self._upstream_tcp = None
        if cut:
            self._cut_unsent()
        elif self._open_ends:
            loop = asyncio.get_running_loop()
            self._drain_timer = loop.call_later(self._registry.drain_timeout, self._cut_unsent)

    def end_lost(self, why: str, *, cut: bool = False) -> None:
        """One side's connection is gone: close the other, and stop waiting when both are.
        ``cut``: the other side's unsent bytes are dropped at once rather than flushed (the
        gone side had stopped us reading it, see :meth:`TunnelEnd.connection_lost`)."""
        self._open_ends -= 1
        self.close(why=why, cut=cut)
        if self._open_ends:
            return
        if self._drain_timer is not None:
            self._drain_timer.cancel()
            self._drain_timer = None
        on_end, ends, head = self._on_end, self._ends, self._head
        self._on_end = None
        self._ends = None
        if ends is None:
            return
        # The ends refer to each other and to this tunnel: both sides are gone, so let go of
        # them, or only the cyclic garbage collector would free the three.
        client, upstream = ends
        client.peer = upstream.peer = None
        if on_end is not None and head is not None:
            seconds = time.perf_counter() - self._started
            # What each side was given: what the other sent, less what was dropped for it.
            sent, received = client.received - upstream.dropped, upstream.received - client.dropped
            why, who = self.why, self.who
            on_end(TunnelEnded(head, self.app, seconds, why, who, sent, received, self._rid))

    def _cut_unsent(self) -> None:
        timer, self._drain_timer = self._drain_timer, None
        if timer is not None:
            timer.cancel()  # a cut comes before it fired: it would hold the tunnel till then
        ends = self._ends
        for i, transport in enumerate((self.client, self.upstream)):
            # Our buffer alone: what the kernel holds goes out with the close (a close frame
            # on its way to a client that reads), and a side that stopped reading was reset
            # already (TunnelEnd._stopped_reading).
            held = transport.get_write_buffer_size()
            if held:
                if ends is not None:
                    ends[i].dropped += held
                transport.abort()
