"""Write coalescing: one ``transport.write`` per transport per event-loop callback.

A small proxied response arrives from the upstream as one read that holds the head and the
body. Written as parsed, that is a write for the head, one for the body and, when re-chunked,
more for the framing: one system call each on uvloop, which writes eagerly. Instead every
``data_received`` runs inside a :class:`Batch`; writes made during it are collected per
:class:`Writer` and flushed once when the callback ends (``writelines`` so that large bodies
are not copied). Outside a batch a write goes straight to the transport.

Many pieces are joined into one before they reach the transport. A peer that reads nothing
leaves every piece in the transport's buffer with a record of its own (some 80 bytes in
uvloop), which the buffer's high-water mark, counted in bytes, does not see: a 256 KiB read of
one-byte chunks made 131,072 chunks, three pieces each, and held 15 MB per connection.
Joined, a callback's output is one buffer entry of about the size that was read, and a small
chunk is framed as one piece.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import Final

#: More pieces than this from one callback are joined into one (see the module docstring).
JOIN_OVER: Final = 16
#: A chunk of content up to this size is framed in one piece with its size line and CRLF.
SMALL_CHUNK: Final = 1024


class Batch:
    """The set of writers with collected output, shared by one server (one event loop).

    Hot callers inline :meth:`begin` and :meth:`end` as ``depth += 1`` and ``depth -= 1``
    followed by ``if not depth and dirty: flush_all()``.
    """

    __slots__ = ("depth", "dirty")

    def __init__(self) -> None:
        self.depth = 0
        self.dirty: list[Writer] = []

    def begin(self) -> None:
        self.depth += 1

    def end(self) -> None:
        self.depth -= 1
        if self.depth == 0 and self.dirty:
            self.flush_all()

    def flush_all(self) -> None:
        dirty = self.dirty
        self.dirty = []
        for writer in dirty:
            writer.flush()


class Writer:
    """Writes to one transport, coalescing while a :class:`Batch` is open."""

    __slots__ = ("_batch", "_chunks", "transport")

    def __init__(self, transport: asyncio.WriteTransport, batch: Batch) -> None:
        self.transport = transport
        self._batch = batch
        self._chunks: list[bytes] | None = None

    def write(self, data: bytes) -> None:
        chunks = self._chunks
        if chunks is not None:
            chunks.append(data)
        elif self._batch.depth:
            self._chunks = [data]
            self._batch.dirty.append(self)
        elif not self.transport.is_closing():
            self.transport.write(data)

    def write_chunk(self, data: bytes) -> None:
        """Write ``data`` framed as one chunk of chunked content (RFC 9112 section 7.1)."""
        if len(data) <= SMALL_CHUNK:
            self.write(b"%x\r\n%b\r\n" % (len(data), data))
            return
        self.write(b"%x\r\n" % len(data))
        self.write(data)
        self.write(b"\r\n")

    def unwrite(self, since: bytes) -> bool:
        """Take back ``since`` (the very object written) and all collected after it, if it has
        not reached the transport yet; returns whether it had not."""
        chunks = self._chunks
        if chunks is not None:
            for i in range(len(chunks) - 1, -1, -1):
                if chunks[i] is since:
                    del chunks[i:]
                    return True
        return False

    def flush(self) -> None:
        """Hand collected output to the transport now (before a protocol switch or close)."""
        chunks = self._chunks
        if chunks is None:
            return
        self._chunks = None
        transport = self.transport
        if transport.is_closing():
            return
        pieces = len(chunks)
        if pieces == 1:
            transport.write(chunks[0])
        elif pieces > JOIN_OVER:
            transport.write(b"".join(chunks))
        elif chunks:
            transport.writelines(chunks)

    def close(self) -> None:
        """Flush, then close the transport once its buffer has drained."""
        self.flush()
        self.transport.close()

    def abort(self) -> None:
        """Drop collected output and reset the connection (an RST, not a FIN: a client must
        not take a message cut short, an HTTP/1.0 one's above all, whose content ends at the
        close, for a whole one)."""
        self._chunks = None
        reset(self.transport)


_LINGER_NOT: Final = struct.pack("ii", 1, 0)  # SO_LINGER on, for no time: close sends an RST


def reset(transport: asyncio.WriteTransport) -> None:
    """Close ``transport`` with an RST: any output not yet sent is dropped."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_NOT)
    transport.abort()
