"""The open-file limit: every client connection is a file descriptor, and so is every pooled
upstream connection.

Many systems start processes with a soft limit of 1024 open files, which would cap a worker at
about a thousand connections: beyond it, libuv accepts and at once closes what the kernel
queued, so clients see their connections dropped. The hard limit is usually far higher
(systemd gives 524288). Go's runtime raises the soft limit to the hard one at start-up, which
is why Caddy and other Go proxies do not hit this; :func:`raise_open_file_limit` does the same
for the gateway, before workers are forked (they inherit it).
"""

from __future__ import annotations

import logging
import resource
from typing import Final

log = logging.getLogger(__name__)

#: Used when the hard limit is "unlimited", which the kernel does not accept as a soft limit.
UNLIMITED_TARGET: Final = 1 << 20
#: Below this many open files, say at start-up that connections will be capped.
WARN_BELOW: Final = 4096


_raised: list[int] = []  # the limit this process (or the parent it was forked from) set


def raise_open_file_limit() -> int:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit; the soft limit now in force.

    Once per process: ``serve`` raises it before forking, and the gateway it forks, which
    calls this again, inherits the limit (and does not warn twice).
    """
    if _raised:
        return _raised[0]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = UNLIMITED_TARGET if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, target, exc)
        else:
            log.info("raised the open-file limit from %d to %d", soft, target)
            soft = target
    if soft != resource.RLIM_INFINITY and soft < WARN_BELOW:
        log.warning(
            "only %d open files allowed: a gateway worker can hold about %d connections (and "
            "authz as many waiting login pages); raise the hard limit (ulimit -Hn, or "
            "LimitNOFILE= in a systemd unit)",
            soft,
            soft // 2,
        )
    _raised.append(soft)
    return soft
