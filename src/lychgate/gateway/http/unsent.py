"""Telling a peer that reads slowly from one that stopped reading.

``send_timeout`` cuts a peer that takes nothing of what we send it (slow-read). Its clock starts
when a transport's buffer passes its high-water mark, and it used to end only when the buffer
fell below its low-water mark again. A peer that reads slowly but steadily never got there in
time: the kernel tells the transport the socket is writable again only once a good part of its
send buffer is free, and that buffer grows to megabytes. A download read at 16 KiB/s was cut
after a minute as if its reader had stopped.

So while writes are paused, a :class:`StallWatch` looks four times per ``send_timeout`` at the
bytes still to send: the transport's buffer and, on Linux, the socket's send queue
(``SIOCOUTQ``: bytes the peer has not acknowledged). A look that finds fewer than the last
one restarts the clock, and the peer is cut once a whole ``send_timeout`` has passed since
the last look that did (nginx's ``send_timeout`` likewise counts only the time since the peer
last took something). A peer that stops is cut between one and one and a quarter
``send_timeout`` after it last took a byte; a peer that never read, as soon as the kernel has
filled its receive buffer, after one ``send_timeout`` (a single look at its end used to see the
filling as progress, and cut it only after two).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import socket
import struct
import termios
from typing import Final

_SIOCOUTQ: Final = getattr(termios, "TIOCOUTQ", None)  # the same request on a socket (Linux)
_INT: Final = struct.Struct("i")
LOOKS: Final = 4  # per send_timeout
_LINGER_NOT: Final = struct.pack("ii", 1, 0)  # l_onoff, l_linger: close with a reset


def unsent_bytes(transport: asyncio.BaseTransport) -> int:
    """Bytes written to ``transport`` that its peer has not taken yet, as far as we can tell:
    its write buffer, plus its socket's send queue where the system says."""
    total = 0
    if isinstance(transport, asyncio.WriteTransport):
        total = transport.get_write_buffer_size()
    sock = transport.get_extra_info("socket")
    if _SIOCOUTQ is not None and sock is not None:
        try:
            queued = fcntl.ioctl(sock.fileno(), _SIOCOUTQ, bytes(_INT.size))
        except (OSError, ValueError):  # not a socket that says, or closed meanwhile
            return total
        total += _INT.unpack(queued)[0]
    return total


def reset_on_close(transport: asyncio.BaseTransport) -> None:
    """Make closing ``transport`` a reset that drops what the kernel still queues for its peer.

    A plain close (or abort) closes the socket, and the kernel then goes on sending what it
    holds, then a FIN: megabytes, for a peer that reads none of them and is never told the
    end came. A zero linger time makes the close a reset instead. For a peer that stopped
    reading, where nothing of what is queued would be read anyway.
    """
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError, ValueError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_NOT)


class StallWatch:
    """Whether a peer whose writes are paused still takes bytes (see the module docstring).

    Made when writes pause; :meth:`stopped` is called every :attr:`every` seconds after.
    """

    __slots__ = ("_progress_at", "_unsent", "every", "timeout")

    def __init__(self, transport: asyncio.BaseTransport, timeout: float, now: float) -> None:
        self.timeout = timeout
        self.every = timeout / LOOKS
        self._unsent = unsent_bytes(transport)
        self._progress_at = now

    def took_some(self, transport: asyncio.BaseTransport, now: float) -> bool:
        """Look again: whether the peer took some bytes since the last look (any caller's)."""
        left = unsent_bytes(transport)
        took = left < self._unsent
        self._unsent = left
        if took:
            self._progress_at = now
        return took

    def stopped(self, transport: asyncio.BaseTransport, now: float) -> bool:
        """Look again: True once it has taken nothing for a whole ``timeout``."""
        if self.took_some(transport, now):
            return False
        # A timer fires at its time or a little after, never before: the quarter's slack
        # only keeps float rounding from adding a fifth look.
        return now - self._progress_at >= self.timeout - self.every / 4
