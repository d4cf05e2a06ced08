"""Where the WebSocket frames from an app end, so the gateway can add a close frame of its own.

A tunnel relays bytes, not frames. But when the gateway itself ends a WebSocket (its session
ended, its app changed, the gateway stops), a client told why can act on it: a close frame
with code 1008 (policy violation) and the reason ("session ended") lets a page show "signed
out" instead of reconnecting at once, as it would after a bare disconnect (1006). A frame may
only go between two of the app's frames, so :class:`FrameCursor` follows the frame heads in
the app-to-client direction (RFC 6455 section 5.2): two bytes, an extended length of two or
eight, a masking key of four when the mask bit is set (an app's frames have none). Inside a
long frame it only counts down; a read holding whole small frames walks their heads.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Final

#: RFC 6455 section 7.4.1.
POLICY_VIOLATION: Final = 1008
GOING_AWAY: Final = 1001
_MAX_REASON: Final = 123  # a control frame's payload is at most 125 bytes, 2 of them the code
# RFC 6455 section 1.3: the GUID appended to Sec-WebSocket-Key to form Sec-WebSocket-Accept.
_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_for(key: str) -> str:
    """The Sec-WebSocket-Accept that answers a Sec-WebSocket-Key (section 4.2.2, step 5.4)."""
    digest = hashlib.sha1(key.encode("latin-1") + _GUID, usedforsecurity=False).digest()
    return base64.b64encode(digest).decode("ascii")


class FrameCursor:
    """Follows frame boundaries in one direction of a WebSocket byte stream."""

    __slots__ = ("_head", "_left")

    def __init__(self) -> None:
        self._left = 0  # bytes of the current frame still to come (after its head)
        self._head = b""  # the start of a frame head split across reads

    @property
    def at_boundary(self) -> bool:
        """Whether the bytes seen so far end exactly at the end of a frame."""
        return not self._left and not self._head

    def advance(self, data: bytes) -> None:
        """Account for ``data``, the next bytes of the stream."""
        left = self._left
        if left >= len(data):
            self._left = left - len(data)
            return
        if self._head:  # a head split across reads (then nothing was left of a frame)
            rest, pos = self._head + data, 0
        else:
            rest, pos = data, left  # walked in place: no copy of a large read
        end = len(rest)
        while pos < end:
            if end - pos < 2:
                break
            second = rest[pos + 1]
            size = second & 0x7F
            head = 2 + (2 if size == 126 else 8 if size == 127 else 0) + (4 if second & 0x80 else 0)
            if end - pos < head:
                break
            if size == 126:
                size = int.from_bytes(rest[pos + 2 : pos + 4], "big")
            elif size == 127:
                size = int.from_bytes(rest[pos + 2 : pos + 10], "big")
            if end - pos < head + size:
                self._left = head + size - (end - pos)
                self._head = b""
                return
            pos += head + size
        self._left = 0
        self._head = rest[pos:]


def close_frame(code: int, reason: str) -> bytes:
    """A server's (unmasked) close frame with ``code`` and ``reason`` (cut to fit)."""
    text = reason.encode("utf-8")[:_MAX_REASON].decode("utf-8", "ignore").encode("utf-8")
    payload = code.to_bytes(2, "big") + text
    return bytes((0x88, len(payload))) + payload
