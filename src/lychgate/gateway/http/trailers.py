"""Bounding what llhttp buffers for the trailer fields of chunked content.

httptools hands a field to us only once it is complete, and until then keeps its value in a
buffer of its own that grows with every byte (and is copied as it grows). In a head, the bytes
read while the head is unfinished bound that. After chunked content, though, the trailer
section follows the last chunk with nothing to tell it apart, so a peer that sends ``0\\r\\n``
and then one endless field line would grow that buffer without limit: a client with any
chunked request, or an upstream with any chunked response.

:class:`TrailerGuard` tells trailer bytes apart with llhttp's chunk callbacks. After a chunk
header, content follows at once unless the chunk was the last one, so a read in which nothing
but that chunk header's aftermath arrived (no content, no other chunk header) is trailer
bytes, and those are counted until the message ends. The read in which the last chunk header
itself arrived is not counted, so at most one read's worth more than the limit is buffered.
Whole trailer fields are counted too (:meth:`field`), as a head's are.
"""

from __future__ import annotations


class TrailerGuard:
    """Per-connection counts of trailer bytes, started afresh at every chunk header (trailer
    fields follow the last one, so what was counted before it was not trailers)."""

    __slots__ = ("_fields", "_fresh", "_raw", "after_chunk")

    def __init__(self) -> None:
        # A chunk header was parsed, and no content since. The parser's on_body clears it
        # itself (``guard.after_chunk = False``): it runs for every piece of content, where
        # a method call would cost more than the rest of the check.
        self.after_chunk = False
        self._fresh = False  # that chunk header arrived in the current read
        self._raw = 0  # bytes read since, in reads that held nothing else
        self._fields = 0  # bytes of complete fields since

    def chunk_header(self) -> None:
        """llhttp parsed a chunk header (``on_chunk_header``)."""
        self.after_chunk = self._fresh = True
        self._raw = self._fields = 0

    def before_read(self) -> bool:
        """Call before feeding a read to the parser. When it says True (the read may be
        trailer bytes), call :meth:`after_read` once the parser has had it."""
        self._fresh = False
        return self.after_chunk

    def after_read(self, size: int, limit: int) -> bool:
        """Count a read of ``size`` bytes; True when the trailer bytes exceed ``limit``."""
        if not self.after_chunk or self._fresh:
            return False  # content came, or another chunk header: not trailer bytes
        self._raw += size
        return self._raw > limit

    def field(self, size: int, limit: int) -> bool:
        """Count one complete trailer field; True when they exceed ``limit`` in all."""
        self._fields += size
        return self._fields > limit
