"""The structured access log: one JSON object per response, off by default.

Fields: ``ts`` (UTC, ISO 8601), ``client`` (the TCP peer), ``method``, ``host``, ``path``
(without the query: queries carry one-time codes and other secrets), ``app``, ``status``,
``ms``, ``ua`` and ``request_id`` (what the upstream got as ``X-Request-Id``, and what an
error page shows: :mod:`.http.request_ids`); ``user`` (the user's id) and ``session`` (the
session's public handle, never its id, which is a bearer secret) when a signed-in user's token
decided the request: forwarded
to the app, or refused by the app's policy (403) or its header limits (431); and ``reason``
when the gateway answered itself and has something to say
why: the token check that sent a browser to log in (``login: expired``), a 401's
(``no_cookie``, ``bad_signature``, ``revoked``...), a 403's (``admins only``), a 404's, an
upstream's failure behind a 502 or 504 (``upstream connect failed: Connection refused``).
A WebSocket gets a second record when its tunnel closes: status 101, ``event`` ``tunnel_end``,
``ms`` the time it was open, ``reason`` why it ended (``client closed``, ``upstream closed``,
``session ended``, ``idle (tunnel_idle_timeout)``, ``gateway stopping``...), and ``bytes_in``
and ``bytes_out``, what its client sent and received through it.
A record longer than 4 KiB (a client's long ``User-Agent`` or path) has those texts cut, the
path last, each ending in ``...(cut)``, and ``truncated`` set: each line is one write small
enough to reach a pipe that several workers share whole (:data:`LINE_MAX`).
Cookies and Authorization headers are never logged, nor is any token, nor the one-time code in
an enrollment or admin-setup link's path (:func:`loggable_path`).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final, TextIO

from lychgate.config.settings import IpNetwork
from lychgate.errors import ClientError
from lychgate.gateway.http.tunnel import TunnelEnded
from lychgate.gateway.paths import parse_request_target
from lychgate.gateway.trusted_proxies import TrustedPeers, chain_client, is_trusted
from lychgate.gateway.types import Principal, RequestHead
from lychgate.ids import AppSlug

LOGGER_NAME = "lychgate.access"

log = logging.getLogger(__name__)


class AccessLogHandler(logging.StreamHandler[TextIO]):
    """The access log's handler: one JSON record a line on ``stream`` (stdout), until a write
    fails.

    A reader that goes away (``lychgate gateway | head``) breaks the pipe, and a stock handler
    would then print a traceback on stderr for every request. This one stops at the first
    failure to write (any :class:`OSError`: a broken pipe, a full disk), says so once on the
    normal log, and drops every later record quietly: the gateway keeps serving.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self.setFormatter(logging.Formatter("%(message)s"))
        self.stopped = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.stopped:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        """Called by :meth:`emit` inside its ``except``: the error is the one in hand."""
        failure = sys.exception()
        if not isinstance(failure, OSError):
            super().handleError(record)  # a bug of ours (a bad record): logging's report
            return
        self.stopped = True
        name = getattr(self.stream, "name", "its stream")
        log.warning(
            "access log stopped: cannot write to %s (%s); requests are still served",
            name,
            failure.strerror or type(failure).__name__,
        )


class AccessLog:
    """Writes access records to the ``lychgate.access`` logger at INFO. ``trusted_proxies``:
    a request from one of them is logged with the client its ``X-Forwarded-For`` names."""

    def __init__(
        self, logger: logging.Logger | None = None, trusted_proxies: Sequence[IpNetwork] = ()
    ) -> None:
        self._log = logger or logging.getLogger(LOGGER_NAME)
        self._trusted = TrustedPeers(trusted_proxies)

    def record(
        self,
        head: RequestHead | None,
        app: AppSlug | None,
        status: int,
        seconds: float,
        reason: str = "",
        who: Principal | None = None,
        rid: str = "",
    ) -> None:
        now = datetime.now(UTC)
        line = access_line(
            head,
            app,
            status,
            seconds,
            now=now,
            reason=reason,
            who=who,
            rid=rid,
            trusted=self._trusted,
        )
        self._log.info(line)

    def tunnel_end(self, end: TunnelEnded) -> None:
        """A second record for a WebSocket, when it closes: how long, why, and its bytes."""
        now = datetime.now(UTC)
        line = access_line(
            end.head,
            end.app,
            101,
            end.seconds,
            now=now,
            reason=end.why,
            who=end.who,
            rid=end.rid,
            tunnel=(end.sent, end.received),
            trusted=self._trusted,
        )
        self._log.info(line)


#: The longest record, its newline included: what one write puts into a pipe whole (PIPE_BUF
#: on Linux). The workers of a gateway share its stdout, and a longer write to a pipe may be
#: split by another worker's, which spliced records together under a service manager's pipe.
LINE_MAX: Final = 4096
# The texts a client chooses, cut in this order from a record that would be longer: the path,
# what was asked for, last.
_CLIENT_TEXT: Final = ("ua", "reason", "host", "path")
_CUT_MARK: Final = "...(cut)"
_KEPT: Final = 256  # characters of each text but the path kept while the line can hold them

# Paths whose last segment is a one-time secret: an enrollment or admin-setup link's code
# (lychgate.deployment.enroll). Logged as the prefix and a mark, never the code.
_SECRET_SEGMENT_PREFIXES: Final = ("/.lychgate/enroll/",)
_REDACTED: Final = "<redacted>"


def loggable_path(path: str) -> str:
    """``path``, with the one-time code of an enrollment link replaced.

    Decided on the path as routing reads it (any letter case, ``//``, dot segments, escaped
    letters such as ``%65nroll``), which authz serves all the same; a path that does not even
    parse is left out whole if it could name one.
    """
    try:
        normalized = parse_request_target(path).path.lower()
    except ClientError:
        lowered = path.lower()
        return _REDACTED if "enroll" in lowered or "%" in lowered else path
    for prefix in _SECRET_SEGMENT_PREFIXES:
        if normalized.startswith(prefix) and len(normalized) > len(prefix):
            return prefix + _REDACTED
    return path


def access_line(
    head: RequestHead | None,
    app: AppSlug | None,
    status: int,
    seconds: float,
    *,
    now: datetime,
    reason: str = "",
    who: Principal | None = None,
    rid: str = "",
    tunnel: tuple[int, int] | None = None,
    trusted: Sequence[IpNetwork] = (),
) -> str:
    """The JSON text of one access record; ``tunnel``: the record of a tunnel's end, with the
    bytes its client sent and received. From a ``trusted`` proxy, ``client`` is the one its
    ``X-Forwarded-For`` names (as authz reads it) and ``peer`` the proxy."""
    record: dict[str, object] = {
        "ts": now.isoformat(timespec="milliseconds"),
        "status": status,
        "ms": round(seconds * 1000, 3),
        "app": app,
    }
    if head is not None:
        record["client"] = head.client_ip
        if trusted and is_trusted(head.client_ip, trusted):
            chain = ", ".join(head.header_all("x-forwarded-for"))
            if chain:
                record.update(client=chain_client(chain, trusted), peer=head.client_ip)
    if head is not None and head.method:  # no method: refused before its head was whole
        record.update(
            method=head.method,
            host=head.header("host"),
            path=loggable_path(head.path),
            ua=head.header("user-agent"),
        )
    if who is not None:
        record.update(user=who.user_id, session=who.session_id)  # a handle: ids.session_handle
    if reason:
        record["reason"] = reason
    if rid:
        record["request_id"] = rid
    if tunnel is not None:
        record.update(event="tunnel_end", bytes_in=tunnel[0], bytes_out=tunnel[1])
    text = _json(record)
    return text if len(text) < LINE_MAX else _shortened(record, text)


def _json(record: object) -> str:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=True)


def _shortened(record: dict[str, object], text: str) -> str:
    """``record`` with the texts a client chose cut, in :data:`_CLIENT_TEXT`'s order and each
    only as far as needed, until its line fits in :data:`LINE_MAX` with its newline;
    ``truncated`` says so. The path is cut last, and the others keep their first
    :data:`_KEPT` characters while they can: a client padding its ``User-Agent`` must not push
    the URL it asked for out of the log."""
    record["truncated"] = True
    text = _json(record)
    for keep in (_KEPT, 0):  # the second pass only if the first could not make it fit
        for name in _CLIENT_TEXT:
            value = record.get(name)
            if len(text) < LINE_MAX:
                return text
            if not isinstance(value, str) or len(value) <= len(_CUT_MARK):
                continue
            budget = len(_json(value)) - (len(text) - LINE_MAX + 1) - len(_CUT_MARK)
            kept = max(_prefix_within(value, budget), 0 if name == "path" else keep)
            if kept < len(value):
                record[name] = value[:kept] + _CUT_MARK
                text = _json(record)
    return text


def _prefix_within(value: str, budget: int) -> int:
    """The length of the longest start of ``value`` whose JSON text takes at most ``budget``
    characters (a character takes one to six: ``\\u00e9``)."""
    low, high = 0, len(value)
    while low < high:
        middle = (low + high + 1) // 2
        if len(_json(value[:middle])) <= budget:
            low = middle
        else:
            high = middle - 1
    return low
