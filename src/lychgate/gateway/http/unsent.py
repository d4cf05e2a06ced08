"""Telling a peer that reads slowly from one that stopped reading.

``send_timeout`` cuts a peer that takes nothing of what we send it (slow-read). Its clock starts
when a transport's buffer passes its high-water mark, and it used to end only when the buffer
fell below its low-water mark again. A peer that reads slowly but steadily never got there in
time: the kernel tells the transport the socket is writable again only once a good part of its
send buffer is free, and that buffer grows to megabytes. A download read at 16 KiB/s was cut
after a minute as if its reader had stopped.

So when the timeout comes, the bytes still to send are counted again: the transport's buffer
and, on Linux, the socket's send queue (``SIOCOUTQ``: bytes the peer has not acknowledged). If
they went down, the peer is reading, and it gets another ``send_timeout`` (as nginx's
``send_timeout`` counts only the time between two successful writes). A peer that takes
nothing in that time is cut as before.
"""

from __future__ import annotations

import asyncio
import fcntl
import struct
import termios
from typing import Final

_SIOCOUTQ: Final = getattr(termios, "TIOCOUTQ", None)  # the same request on a socket (Linux)
_INT: Final = struct.Struct("i")


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


def made_progress(transport: asyncio.BaseTransport, before: int) -> int | None:
    """The bytes still to send if fewer than ``before`` (the peer read some), else None."""
    now = unsent_bytes(transport)
    return now if now < before else None
