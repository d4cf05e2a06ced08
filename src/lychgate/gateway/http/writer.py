"""Write coalescing: one ``transport.write`` per transport per event-loop callback.

A small proxied response arrives from the upstream as one read that holds the head and the
body. Written as parsed, that is a write for the head, one for the body and, when re-chunked,
more for the framing: one system call each on uvloop, which writes eagerly. Instead every
``data_received`` runs inside a :class:`Batch`; writes made during it are collected per
:class:`Writer` and flushed once when the callback ends (``writelines`` so that large bodies
are not copied). Outside a batch a write goes straight to the transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import Final


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
        if len(chunks) == 1:
            transport.write(chunks[0])
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
