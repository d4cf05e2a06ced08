"""What the cyclic garbage collector walks in a gateway worker, and how often.

Theory of operation
-------------------
A full collection walks every tracked object that is not frozen, holding the GIL (even in the
feed's parsing thread): the event loop stalls for as long. A snapshot of 100,000 users holds
as many tracked profiles, and the JSON being read into the next one about three times that:
full collections while full snapshots were read stalled the loop 100-300 ms each at 100,000
and 200,000 users on an idle machine (over a second on a busy one), about one a snapshot at
a third threshold of 100, four or five at Python's 10; one with a snapshot of 100,000 users
merely loaded, 15-22 ms.

So full collections are made rare, and what lives as long as the process is not walked:

* :func:`settle_collector`, before the workers fork, freezes everything imported and
  prepared (frozen pages are not written by a collection, so the workers keep sharing them).
  ``lychgate serve`` freezes its own heap before it forks the gateway, for the same reason:
  the gateway's first collection walked authz's modules, and its own dirty memory doubled.
* ``FULL_COLLECTION_AFTER`` middle-generation collections come before a full one (Python's
  is 10). Reading a full snapshot makes about 60 of those per 100,000 users, so at 1,000 a
  full collection lands in one snapshot read in sixteen there, and the feed sends a full
  snapshot only when a gateway connects or keys or settings change (users, sessions and
  apps travel as changes: :mod:`.feed_wire`).
* Traffic makes no garbage cycles of ours: what a connection, a request, an upstream
  connection or a tunnel held is freed by reference counting when it ends
  (tests/gateway/test_garbage_cycles.py), so the collections it sets off find nothing to
  keep them coming, and the cycles that remain (httpx's, a few dozen objects per call to
  authz) are collected young.

Freezing the heap on each snapshot applied, which would keep full collections from walking
the snapshots at all, is not done: whatever is alive then is frozen with it, and an object
frozen is never collected as part of a cycle. httpx, which calls authz on sign-ins and
logouts, leaves each request and each expired keep-alive connection as a garbage cycle (36
and 64 objects, measured on 2026-12-01), so a call under way, or a connection idle in its
pool, as a snapshot came would have leaked for good.
"""

from __future__ import annotations

import gc
from typing import Final

#: The cyclic collector's third threshold (Python's is 10): see the module docstring.
FULL_COLLECTION_AFTER: Final = 1000


def freeze_heap() -> None:
    """Collect, then freeze what survives: no later collection here or in a child forked after
    this walks it, so those pages stay shared between the two (a collection writes to every
    object it walks, and a written page is copied)."""
    gc.collect()
    gc.freeze()


def settle_collector() -> None:
    """Freeze what the process holds now, and set the full collections' threshold. Call once,
    before the workers fork (they inherit both)."""
    freeze_heap()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_AFTER)
