"""Keep-alive connections to upstreams, bounded per upstream.

Idle connections are kept per (url, verify_tls) and reused last-in first-out: the most recently
used connection is the least likely to have been closed by the upstream's own idle timeout.
Reuse is synchronous (:meth:`UpstreamPool.acquire`), so a request on a warm pool costs no task.
A new connection is made by :meth:`UpstreamPool.connect` under the upstream's connect timeout
(an https one's TLS handshake included: :mod:`.upstream_connect`).

At most ``max_connections`` are open per upstream. A request beyond that waits for a released
connection (or for a slot when one closes) within the same connect timeout, then gets 504.
Connections that become tunnels leave the pool and stop counting.

A connection is reused only for requests of the same *owner*, the signed-in user (None for
requests no user was admitted for: authz's pages). HTTP/1.1 cannot tell the bytes of one
response from the next: an app that sends more than it framed (content on a 204 or 304, more
than its Content-Length), later than the rest, has those bytes read as the answer to whatever
request the connection carries next. Bytes that arrive while the connection is idle, or in the
same read as the end, close it; bytes that come after the next request went out cannot be told
apart, so that next request is always the same user's: one user's requests can never shape
another's responses. A request that finds only other users' idle connections at the limit
closes the oldest of them and takes its slot; a connection released while another user waits
is closed and its slot passes on.
"""

from __future__ import annotations

import asyncio
import errno
import ssl
from collections import deque
from dataclasses import dataclass
from typing import Final, NamedTuple
from urllib.parse import urlsplit

from lychgate.errors import ConfigError, LychgateError
from lychgate.gateway.http.upstream import UpstreamConnection
from lychgate.gateway.http.upstream_connect import open_tls
from lychgate.gateway.http.writer import Batch
from lychgate.gateway.types import Upstream
from lychgate.unix_sockets import socket_path_problem


class UpstreamError(LychgateError):
    """The upstream could not be reached: 502, or 504 for a timeout. ``kind`` is a fixed word
    for metrics (:mod:`.failures`); the message says more, for logs."""

    status = 502

    def __init__(self, message: str, *, kind: str, status: int = 502) -> None:
        super().__init__(message, status=status)
        self.kind = kind


#: The kind of a connect that failed for want of the gateway's own resources (file
#: descriptors, memory): counted without an app, since no app is at fault.
LOCAL: Final = "local_resources"
_OUT_OF_RESOURCES: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def connect_failure(exc: OSError) -> str:
    """A short, log-safe description of why a connection could not be made."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted: {exc.verify_message or exc.reason}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed: {exc.reason or type(exc).__name__}"
    return exc.strerror or type(exc).__name__


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where an upstream URL points."""

    host: str  # for TCP; "" for a unix socket
    port: int
    path: str | None  # the unix socket's path
    tls: bool


def parse_upstream_url(url: str) -> Endpoint:
    """Parse ``http://host[:port]``, ``https://host[:port]`` or ``unix:/path`` (schemes in any
    case, as RFC 3986 has them: ``HTTP://`` was stored as typed)."""
    if url[:5].lower() == "unix:":
        path = url[5:]
        if not path.startswith("/"):
            raise ConfigError("a unix upstream needs an absolute path", field="upstream.url")
        return Endpoint("", 0, path, False)
    try:
        parts = urlsplit(url)
    except ValueError:  # a bracketed host that is no IPv6 address
        raise ConfigError("not a URL", field="upstream.url") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("expected http://, https:// or unix:", field="upstream.url")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigError("no credentials, query or fragment allowed", field="upstream.url")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError("bad port", field="upstream.url") from None
    if port == 0:  # not the scheme's default: "port or 80" below read it as that
        raise ConfigError("port 0", field="upstream.url")
    tls = parts.scheme == "https"
    return Endpoint(parts.hostname, port or (443 if tls else 80), None, tls)


def unverified_client_context() -> ssl.SSLContext:
    """A client context that checks neither the chain nor the name (``verify_tls=False``)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


_Key = tuple[str, bool]


class _Waiter(NamedTuple):
    owner: str | None
    fut: asyncio.Future[UpstreamConnection | None]


class UpstreamPool:
    """Connections to every upstream of one server (one event loop)."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext,
        batch: Batch | None = None,
        max_idle: int = 64,
        max_connections: int = 512,
        idle_timeout: float = 4.0,
        write_buffer_high: int = 256 * 1024,
    ) -> None:
        """``ssl_context`` verifies https upstreams (system CAs, see :mod:`.tls`)."""
        self._verified = ssl_context
        self._unverified = unverified_client_context()
        self.batch = batch or Batch()
        self._max_idle = max_idle
        self._max_connections = max_connections
        self._idle_timeout = idle_timeout
        self._write_buffer_high = write_buffer_high
        self._endpoints: dict[_Key, Endpoint] = {}
        self._idle: dict[_Key, list[UpstreamConnection]] = {}
        self._open: dict[_Key, int] = {}
        self._waiters: dict[_Key, deque[_Waiter]] = {}
        self._all: set[UpstreamConnection] = set()
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweeper: asyncio.TimerHandle | None = None  # set while any connection is idle

    def _time(self) -> float:
        # asyncio.get_running_loop() makes a getpid() system call: look it up once.
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop.time()

    @property
    def open_connections(self) -> int:
        return len(self._all)

    def acquire(self, upstream: Upstream, owner: str | None = None) -> UpstreamConnection | None:
        """An idle, healthy connection to ``upstream`` that served ``owner``, or None."""
        idle = self._idle.get((upstream.url, upstream.verify_tls))
        if not idle:
            return None
        now = self._time()
        i = len(idle) - 1
        while i >= 0:
            conn = idle[i]
            if not conn.usable:
                del idle[i]
            elif now - conn.idle_since > self._idle_timeout:
                # Freshest first: if this one is stale, every one below it is too.
                for old in idle[: i + 1]:
                    old.close()
                del idle[: i + 1]
                return None
            elif conn.owner == owner:
                del idle[i]
                return conn
            i -= 1
        return None

    async def connect(self, upstream: Upstream, owner: str | None = None) -> UpstreamConnection:
        """A new connection for ``owner`` (or one of theirs released while we waited). Raises
        :class:`UpstreamError`."""
        if self._closed:
            raise UpstreamError("gateway shutting down", kind="shutdown")
        key = (upstream.url, upstream.verify_tls)
        endpoint = self._endpoints.get(key)
        if endpoint is None:
            try:
                endpoint = parse_upstream_url(upstream.url)
            except ConfigError:
                raise UpstreamError("bad upstream url", kind="bad_url") from None
            problem = None if endpoint.path is None else socket_path_problem(endpoint.path)
            if problem is not None:
                # Never connect: uvloop would cut the path and reach another socket, which
                # would get the user's requests and identity assertions.
                raise UpstreamError(f"bad upstream url: {problem}", kind="bad_url")
            self._endpoints[key] = endpoint
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(upstream.connect_timeout):
                if self._open.get(key, 0) < self._max_connections:
                    self._open[key] = self._open.get(key, 0) + 1
                elif not self._evict_idle(key):  # others' idle connection: its slot is ours
                    handed = await self._wait_turn(loop, key, owner)
                    if handed is not None:
                        return handed
                try:
                    conn = await self._open_connection(loop, key, endpoint, upstream)
                    conn.owner = owner
                    return conn
                except BaseException:
                    self._slot_freed(key)
                    raise
        except TimeoutError:
            raise UpstreamError(
                "upstream connect timed out", kind="connect_timeout", status=504
            ) from None
        except (OSError, ssl.SSLError) as exc:
            if exc.errno in _OUT_OF_RESOURCES:
                # The gateway's own shortage, not the app's: a 503, and no failure of the app.
                why = f"gateway out of resources: {connect_failure(exc)}"
                raise UpstreamError(why, kind=LOCAL, status=503) from None
            kind = "tls" if isinstance(exc, ssl.SSLError) else "connect"
            why = f"upstream connect failed: {connect_failure(exc)}"
            raise UpstreamError(why, kind=kind) from None

    def _evict_idle(self, key: _Key) -> bool:
        """Close the oldest idle connection to ``key`` and keep its slot for the caller."""
        idle = self._idle.get(key)
        if not idle:
            return False
        self._drop(idle.pop(0))
        return True

    def _drop(self, conn: UpstreamConnection) -> None:
        """Close ``conn`` whose slot the caller passes on (it no longer counts as lost)."""
        self._all.discard(conn)
        conn.unbind_pool()
        conn.close()

    async def _wait_turn(
        self, loop: asyncio.AbstractEventLoop, key: _Key, owner: str | None
    ) -> UpstreamConnection | None:
        """Wait for a released connection of ``owner`` (returned) or a free slot (None, slot
        taken)."""
        fut: asyncio.Future[UpstreamConnection | None] = loop.create_future()
        waiters = self._waiters.setdefault(key, deque())
        waiter = _Waiter(owner, fut)
        waiters.append(waiter)
        try:
            return await fut
        except BaseException:
            if fut.done() and not fut.cancelled():
                # Handed something just as we gave up: pass it on.
                conn = fut.result()
                if conn is None:
                    self._slot_freed(key)
                else:
                    self.release(conn)
            raise
        finally:
            if waiter in waiters:
                waiters.remove(waiter)

    async def _open_connection(
        self, loop: asyncio.AbstractEventLoop, key: _Key, endpoint: Endpoint, upstream: Upstream
    ) -> UpstreamConnection:
        def factory() -> UpstreamConnection:
            return UpstreamConnection(key, self.batch, self._write_buffer_high)

        if endpoint.path is not None:
            _, conn = await loop.create_unix_connection(factory, endpoint.path)
        elif endpoint.tls:
            # TCP, then TLS on it: the connection keeps both, and closes its socket without
            # waiting for the app's close_notify (.upstream_connect).
            ctx = self._verified if upstream.verify_tls else self._unverified
            conn = factory()
            await open_tls(loop, conn, endpoint.host, endpoint.port, ctx, upstream.connect_timeout)
        else:
            _, conn = await loop.create_connection(factory, endpoint.host, endpoint.port)
        if self._closed:
            conn.close()
            raise UpstreamError("gateway shutting down", kind="shutdown")
        self._all.add(conn)
        conn.bind_pool(self._lost)
        return conn

    def release(self, conn: UpstreamConnection) -> None:
        """Return a healthy connection after a complete exchange."""
        key = conn.key
        waiters = self._waiters.get(key)
        while waiters:
            owner, fut = waiters.popleft()
            if fut.done():
                continue
            if owner == conn.owner and conn.usable:
                fut.set_result(conn)
            else:
                self._drop(conn)  # another user's turn: a new connection, in this one's slot
                fut.set_result(None)
            return
        if self._closed or not conn.usable:
            conn.close()
            return
        idle = self._idle.setdefault(key, [])
        if len(idle) >= self._max_idle:
            conn.close()
            return
        conn.idle_since = self._time()
        idle.append(conn)
        if self._sweeper is None and self._loop is not None:
            self._sweeper = self._loop.call_later(self._idle_timeout, self.sweep)

    def sweep(self) -> int:
        """Close idle connections past ``idle_timeout``, whatever their upstream; returns how
        many. Runs by itself while any connection is idle: :meth:`acquire` drops stale ones
        of the upstream it is asked for, but an upstream no longer asked for (an app whose
        URL changed, or that was removed) would otherwise keep its sockets open."""
        self._sweeper = None
        now = self._time()
        closed = 0
        for key, idle in list(self._idle.items()):
            fresh = []
            for conn in idle:
                if now - conn.idle_since > self._idle_timeout:
                    conn.close()
                    closed += 1
                else:
                    fresh.append(conn)
            if fresh:
                self._idle[key] = fresh
                continue
            del self._idle[key]
            if self._open.get(key, 0) <= 0 and not self._waiters.get(key):
                self._open.pop(key, None)  # nothing open or waited for: forget the upstream
                self._endpoints.pop(key, None)
                self._waiters.pop(key, None)
        if self._idle and not self._closed and self._loop is not None:
            self._sweeper = self._loop.call_later(self._idle_timeout, self.sweep)
        return closed

    def detach(self, conn: UpstreamConnection) -> None:
        """``conn`` became a tunnel: it no longer counts against the pool."""
        if conn in self._all:
            self._all.discard(conn)
            conn.unbind_pool()
            self._slot_freed(conn.key)

    def _lost(self, conn: UpstreamConnection) -> None:
        self._all.discard(conn)
        key = conn.key
        idle = self._idle.get(key)
        if idle and conn in idle:
            idle.remove(conn)
        self._slot_freed(key)

    def _slot_freed(self, key: _Key) -> None:
        waiters = self._waiters.get(key)
        while waiters:
            _, fut = waiters.popleft()
            if not fut.done():
                fut.set_result(None)  # the slot passes to the waiter, the count stays
                return
        self._open[key] = self._open.get(key, 1) - 1

    def close(self) -> None:
        """Close every connection; busy ones are cut (their exchanges see a broken upstream)."""
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for conn in list(self._all):
            conn.abort()
        self._idle.clear()
