"""Request ids: one name per request, for the upstream, the access log and the client's error page.

Theory of operation
-------------------
Every request the gateway forwards carries ``X-Request-Id`` to its upstream (authz's included),
so an app's logs and the gateway's access log name the same request alike; every answer the
gateway gives itself (its error pages, a redirect to the login page, a 401) carries it too, and
every error page shows it (the engine's, :mod:`.errors`, admission's and the endpoints'), so
a user can quote it. A WebSocket's two access records share it.

* **Made here, by default.** 24 hex digits: 96 random bits, read from :func:`os.urandom` a
  few kilobytes at a time (one system call per 341 ids; a call per request would cost more than
  the rest of the id). Random rather than counted, so that ids a client sees say nothing about
  how many requests the gateway served between them. An id is made only when one is needed:
  for a request forwarded, answered or recorded.
* **A client's own is not believed**: ``X-Request-Id`` from the client is dropped from what is
  forwarded (:mod:`.headers`), and ours sent instead, as Envoy does with an external request's.
  An app must not find two, nor a value a client chose to look like another request's.
* **A trusted proxy's is kept** (``trusts``, the gateway's ``trusted_proxies``; none by
  default): one ``X-Request-Id`` of 1 to 128 characters from ``[A-Za-z0-9._~:@/+=-]`` (a UUID,
  nginx's ``$request_id``, base64) names the request end to end. Anything else from it (two
  fields, a space, a quote, a longer value) is replaced by one of ours, not refused: a request
  id is worth no 400.

Each request head carries its id (:attr:`.RequestHead.rid`, made as the head is parsed), so
that admission's own pages can show it too. A :class:`RequestIds` belongs to one listener of
one worker and its event loop. Each worker makes its own after the fork, so no two workers
draw from the same random bytes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from itertools import chain
from typing import Final

from lychgate.request_log import ID_FIELD, kept_id, one_id

__all__ = ["ID_FIELD", "RequestIds", "kept_id", "trusts_nobody"]

_ID_BYTES: Final = 12  # 96 bits: 24 hex digits
_READ: Final = _ID_BYTES * 341  # random bytes read at a time (4,092)
# Where each id of one read's hex digits lies.
_CUTS: Final = tuple(slice(at, at + 2 * _ID_BYTES) for at in range(0, 2 * _READ, 2 * _ID_BYTES))


def trusts_nobody(_client_ip: str) -> bool:
    return False


def _reads() -> Iterator[Iterator[str]]:
    """The ids of each read of random bytes, for ever."""
    while True:
        digits = os.urandom(_READ).hex()  # hex once per read, not once per id
        yield map(digits.__getitem__, _CUTS)


class RequestIds:
    """Names requests; see the module docstring. ``trusts``: the TCP peers whose own
    ``X-Request-Id`` names the request (the trusted proxies)."""

    __slots__ = ("_trusts", "new", "trusts_nobody")

    def __init__(self, trusts: Callable[[str], bool] = trusts_nobody) -> None:
        self._trusts = trusts
        #: Whether no peer's own id is kept: then :attr:`new` is the id of every request.
        self.trusts_nobody = trusts is trusts_nobody
        #: A new random id. The ``__next__`` of an iterator made of C parts, so that making
        #: one runs no Python: a forwarded request pays for it (about 1,500 instructions).
        self.new: Callable[[], str] = chain.from_iterable(_reads()).__next__

    def of(self, client_ip: str, fields: Iterable[tuple[str, str]]) -> str:
        """The id of a request from ``client_ip`` with these header ``fields`` (lower-cased
        names): its trusted proxy's, or a new one."""
        if not self.trusts_nobody and self._trusts(client_ip):
            kept = one_id([value for name, value in fields if name == ID_FIELD])
            if kept:
                return kept
        return self.new()
