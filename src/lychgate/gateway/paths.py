"""Request-target normalization: one canonical path, decided on and forwarded as is.

Theory of operation
-------------------
Path bugs in proxies are parser differentials: the gateway reads ``/a/..%2f.lychgate`` one way
and the upstream another (SECURITY.md item 2). So the gateway parses the request-target exactly
once, here, into a canonical form; routing and admission look only at that form, and
:attr:`RequestTarget.origin_form` is byte for byte what goes upstream. Nothing downstream ever
looks at the raw target again.

The canonical path is built in this order:

1. **Form** (RFC 9112 section 3.2). Origin-form (``/path?query``) is the normal case. Absolute-
   form (``http://host/path``) is accepted only for ``http``/``https`` without userinfo, and its
   authority is handed to routing, which refuses it unless it names the same host as ``Host``
   (:mod:`lychgate.gateway.routing`). Asterisk- and authority-form (``OPTIONS *``, ``CONNECT``)
   are refused: the gateway is not a forward proxy.
2. **Characters.** Raw control characters, space, DEL, non-ASCII octets, ``\\`` and ``#`` are
   refused (a client never sends a fragment, RFC 9112 section 3.2.1; a backslash is a path
   separator to WHATWG URL parsers and to Windows). Printable characters outside RFC 3986
   ``pchar`` (``|``, ``^``, ``{`` ...) are percent-encoded, which is an equivalent spelling.
3. **Percent-encoding** (RFC 3986 section 6.2.2). An escape of an unreserved character is
   decoded (``%2e`` is ``.``, ``%7E`` is ``~``), every other escape keeps its encoding with
   upper-case hex. A malformed escape, an escaped control character (``%00``, ``%0a`` ...), an
   escaped backslash (``%5c``) and octets that do not decode as UTF-8 (``%c0%ae``, ``%ff``) are
   refused. ``%2F`` stays encoded and is *not* a separator: real apps put it in paths (GitLab's
   ``group%2Fproject``) -- outside the reserved namespace (step 7).
4. **Empty segments** are kept inside a path, as nginx (``proxy_pass`` without a URI part)
   and Traefik keep them: apps carry URLs and keys in their paths. Collapsed, thumbor's or
   imgproxy's ``/unsafe/300x200/https://example.com/a.jpg`` reached the app as
   ``.../https:/example.com/a.jpg``, a web archive's ``/web/2020/http://x.org/`` as
   ``.../http:/x.org/``, and an S3-style key ``a//b`` named another object. Only a *leading*
   run of ``/`` becomes one ``/``, both before step 5 and after it (step 5 alone turns
   ``/..//x``, ``/a/..//x`` and ``/.//x`` into ``//x``), so a path never starts with ``//``,
   which many upstreams would echo into a ``Location`` as a scheme-relative URL. Under
   ``/.lychgate`` every run is collapsed (step 7c).
5. **Dot segments** are removed as in RFC 3986 section 5.2.4; ``..`` at the root stays at the
   root. Because step 3 decoded ``%2e``, ``%2e%2e`` is removed too. An empty segment is a
   segment there: ``/a//../b`` is ``/a/b`` (the ``..`` removes the empty one), where a server
   that merges slashes first reads ``/b``. The upstream is sent ``/a/b`` byte for byte, so that
   is no differential for the app; for routing it is, and step 7c deals with it.
6. **Dot look-alikes are refused**: a segment that is not ``.`` or ``..`` but would become one in
   some upstream -- Tomcat's path parameters (``..;/``, ``.;x``) or a decoded ``%2F`` (``..%2F``,
   ``a%2F..``) -- is a 400, not a guess.
7. **The reserved namespace is spelled plainly.** Under ``/.lychgate`` (any letter case, as
   routing compares it) the gateway decides by path: its own endpoints, authz, or never
   (``/.lychgate/internal/``, THREAT_MODEL.md T17). Routing decides the namespace on the first
   segment alone (:func:`is_reserved`), so a path that some upstream
   reads as under ``/.lychgate`` must be one routing sent there, spelled so that it reads as
   nothing else. The namespace is tested as an upstream might read the path: an encoded ``?``
   or ``#`` (``%3F``, ``%23``) may end it, every ``%2F`` may be a ``/``, empty segments
   collapse (before dot segments are removed, or after), and path parameters may be removed --
   from a ``;`` or ``%3B`` to the next ``/`` (Tomcat strips them before decoding) or to the
   next ``%2F`` (servers that decode first).
   If in any such reading the first segment is ``.lychgate``:

   a. **No escapes.** authz's server percent-decodes a path before routing it, so
      ``/.lychgate/internal%2Ffeed`` would be decided on as an authz page and served as the
      internal feed. Every path authz serves is spelled without escapes, so a path that still
      holds one after step 3 -- ``%2F``, ``%3F``, ``%23``, ``%3B``, ``%25`` (double encoding),
      a non-ASCII octet -- is refused (400); what is left can only be decoded into itself. So
      ``/.lychgate%2Finternal%2Ffeed``, ``/%2F.lychgate/internal/feed``,
      ``/.lychgate%23/internal/feed`` and ``/.lychgate%3Bx/callback`` are refused;
      ``/group%2Fproject`` is not (no reading of it starts with ``.lychgate``).
   b. **No path parameters before the namespace.** The path must then be in the namespace as
      routing sees it: first segment exactly ``.lychgate``. ``/.lychgate;x/callback``,
      ``/.LYCHGATE;jsessionid=1/internal/feed`` and ``/;x/.lychgate/internal/feed`` would be
      routed to the app while a Java upstream reads ``/.lychgate/...``: refused (400).
      Parameters further down (``/.lychgate/login;x``, which routing sends to authz anyway)
      or after another first segment (``/app;v=1/x``, ``/app;x/.lychgate``,
      ``/a/.lychgate;x``) are kept: they cannot change what routing decided.
   c. **No empty segments.** In the namespace every run of ``/`` is collapsed:
      ``/.lychgate//internal/feed`` and ``/.lychgate/.//internal/feed`` are forwarded as
      ``/.lychgate/internal/feed`` (which routing then refuses as internal), because routing,
      the gateway's endpoints and authz compare exact strings, and a ``//`` must not carry a
      path past :func:`~lychgate.gateway.routing.is_internal` to a reader that merges slashes.
      Collapsing after step 5 cannot change the first segment (the leading run is gone, so it
      is never empty). Collapsing *before* step 5, as nginx and Tomcat do when they match a
      path, changes it only where a ``..`` removes an empty segment:
      ``/x//../.lychgate/internal/feed`` is ``/x/.lychgate/internal/feed`` here but the
      internal feed to such a reader (in front of the gateway, say), and ``/.lychgate//../x``
      is the other way round. A ``..`` that removes a segment which some reader counts as none
      or as several does the same: one holding ``;`` (Tomcat drops ``/;x``), ``%2F``
      (``/.lychgate/a%2Fb/../../x`` is ``/x`` here, ``/.lychgate/x`` to a decoding server),
      ``%3B``, ``%3F`` or ``%23``. So a path in which a ``..`` removes such a segment is
      refused (400) if it holds ``.lychgate`` anywhere, in any case. That over-approximates
      every reading, and costs nothing: no real link has ``//..`` near the gateway's
      namespace. ``/a//../b`` (``/a/b``) and ``/x/..//.lychgate/x`` (``/.lychgate/x``, where
      every reading agrees) are not refused.

   The prefix spelled with escapes of unreserved characters (``/%2Elychgate``,
   ``/.lychgat%65``) is the plain prefix after step 3, and ``\\`` and ``%5C`` never get this
   far (steps 2 and 3). Outside the namespace escapes are kept.

The query is not normalized (no decision looks at it) but must be printable ASCII without
``#``. The path ends at the first raw ``?``, so a query cannot widen a route
(``/.lychgate/healthz?/../internal/feed`` is the health check); an encoded ``%3F`` is not a
``?`` here, and under ``/.lychgate`` step 7 refuses it. Case is kept: paths are
case-sensitive (RFC 3986 section 6.2.2.1 only folds hex digits).

Parsing is a pure function of the raw target, so the results for short targets are memoized
(a bounded LRU): a browser asks for the same few URLs over and over. Refusals are not
memoized; they raise every time.
"""

from __future__ import annotations

import functools
import re
import string
from dataclasses import dataclass
from typing import Final

from lychgate.errors import ClientError

# RFC 3986 section 2.3 and 3.3.
_UNRESERVED: Final = frozenset(string.ascii_letters + string.digits + "-._~")
_SUB_DELIMS: Final = frozenset("!$&'()*+,;=")
_PATH_RAW: Final = _UNRESERVED | _SUB_DELIMS | frozenset(":@/")
# Printable ASCII that is not allowed raw in a path; re-spelled as %XX (step 2).
_PATH_ENCODE: Final = frozenset(chr(c) for c in range(0x21, 0x7F)) - _PATH_RAW - set("%\\#?")
_HEX: Final = frozenset("0123456789abcdefABCDEF")
_ABSOLUTE_FORM: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)(.*)", re.DOTALL)
# Separators some upstream may see inside one of our segments (step 6).
_HIDDEN_SEPARATORS: Final = re.compile(r";|%2F|%3B")
# A run of "/" inside a path under /.lychgate, and what makes a segment count as none or as
# several to some reader: empty, a path parameter, an encoded "/", ";", "?" or "#" (step 7c).
_EMPTY_SEGMENTS: Final = re.compile(r"//+")
_COUNTED_APART: Final = re.compile(r";|%2F|%3B|%3F|%23")
#: The reserved namespace (step 7; :mod:`lychgate.gateway.routing` routes it).
RESERVED_PREFIX: Final = "/.lychgate"
# Targets up to this long are memoized, at most _MEMO_ENTRIES of them (about 1 MB at worst).
_MEMO_CHARS: Final = 1024
_MEMO_ENTRIES: Final = 1024


@dataclass(frozen=True, slots=True)
class RequestTarget:
    """A normalized request-target.

    ``path`` is canonical (see the module docstring); ``query`` is None when the target had no
    ``?``. ``authority`` is the ``host[:port]`` of an absolute-form target, for routing to check
    against ``Host``; None for origin-form.
    """

    path: str
    query: str | None = None
    authority: str | None = None

    @property
    def origin_form(self) -> str:
        """What is sent upstream: the decided-on path plus the original query."""
        return self.path if self.query is None else f"{self.path}?{self.query}"


def bad_target(message: str) -> ClientError:
    """The error for a refused request-target (400)."""
    return ClientError(message, field="target", status=400)


def parse_request_target(raw: str) -> RequestTarget:
    """Parse and normalize a raw request-target (RFC 9112 section 3.2).

    Raises :class:`~lychgate.errors.ClientError` (400, field ``target``) for anything refused.
    """
    if len(raw) <= _MEMO_CHARS:
        return _memoized(raw)
    return _parse(raw)


def _parse(raw: str) -> RequestTarget:
    authority: str | None = None
    if not raw.startswith("/"):
        match = _ABSOLUTE_FORM.fullmatch(raw)
        if match is None:
            raise bad_target("request-target must be origin-form or absolute-form")
        scheme, authority, rest = match.groups()
        if scheme.lower() not in ("http", "https"):
            raise bad_target("absolute-form target must be http or https")
        if not authority or "@" in authority:
            raise bad_target("absolute-form target needs a host and no userinfo")
        raw = rest if rest.startswith("/") else "/" + rest
    path, sep, query = raw.partition("?")
    check_query(query)
    return RequestTarget(normalize_path(path), query if sep else None, authority)


# An exception is never cached by lru_cache: a refused target raises on every request.
_memoized = functools.lru_cache(maxsize=_MEMO_ENTRIES)(_parse)


def check_query(query: str) -> None:
    """A query must be printable ASCII without ``#`` (it is forwarded untouched)."""
    # Printable ASCII is 0x20-0x7E; without the space that is exactly 0x21-0x7E.
    if not (query.isascii() and query.isprintable()) or " " in query or "#" in query:
        raise bad_target("query holds a character that is not allowed")


def normalize_path(path: str) -> str:
    """Normalize an absolute path (steps 2-7 of the module docstring). Idempotent.

    Raises :class:`~lychgate.errors.ClientError` (400) for a path that is refused.
    """
    if not path.startswith("/"):
        raise bad_target("path must start with '/'")
    spelled = _respell(path)
    segments = spelled.split("/")[1:]
    # Step 5 (RFC 3986 section 5.2.4) on a stack of segments, empty ones included (step 4).
    out: list[str] = []
    uneven = False  # a ".." removed a segment that some reader counts differently (step 7c)
    for segment in segments:
        if segment == "..":
            if out:  # rule C; ".." at the root stays at the root
                removed = out.pop()
                uneven = uneven or not removed or _COUNTED_APART.search(removed) is not None
        elif segment == ".":
            pass  # rule B
        elif segment:
            _refuse_dot_lookalike(segment)
            out.append(segment)
        elif out:
            out.append(segment)  # an empty segment inside the path is kept (step 4), and
        # one at the root is dropped: at the start (//x) or where rule C got back to the
        # root (/a/..//x), so the path never starts with "//".
    if uneven and _PREFIX_LOWER in spelled.lower():
        raise bad_target("path has a '..' that servers resolve differently near /.lychgate")
    if not out:
        return "/"
    if segments[-1] in (".", ".."):
        out.append("")  # rules B and C: a final dot segment still means a directory
    normalized = "/" + "/".join(out)
    if "//" in normalized and is_reserved(normalized):
        normalized = _EMPTY_SEGMENTS.sub("/", normalized)  # step 7c
    _refuse_reserved_spelling(normalized)
    return normalized


def _respell(path: str) -> str:
    """Steps 2 and 3: check characters, decode unreserved escapes, upper-case the rest."""
    chunks: list[str] = []
    octets = bytearray()  # the fully decoded path, to check that it is UTF-8
    i, n = 0, len(path)
    while i < n:
        ch = path[i]
        if ch == "%":
            hex_digits = path[i + 1 : i + 3]
            if len(hex_digits) != 2 or not set(hex_digits) <= _HEX:
                raise bad_target("path holds a malformed percent-escape")
            value = int(hex_digits, 16)
            if value < 0x20 or value == 0x7F:
                raise bad_target("path holds an escaped control character")
            if value == 0x5C:
                raise bad_target("path holds an escaped backslash")
            decoded = chr(value)
            chunks.append(decoded if decoded in _UNRESERVED else "%" + hex_digits.upper())
            octets.append(value)
            i += 3
            continue
        if ch in _PATH_RAW:
            chunks.append(ch)
        elif ch in _PATH_ENCODE:
            chunks.append(f"%{ord(ch):02X}")
        elif ch == "\\":
            raise bad_target("path holds a backslash")
        else:
            raise bad_target("path holds a character that is not allowed")
        octets.append(ord(ch))
        i += 1
    try:
        octets.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_target("path is not UTF-8 once decoded") from None
    return "".join(chunks)


def _refuse_dot_lookalike(segment: str) -> None:
    """Step 6: refuse a segment some upstream would read as ``.`` or ``..``."""
    if "." not in segment:
        return
    for piece in _HIDDEN_SEPARATORS.split(segment):
        if piece in (".", ".."):
            raise bad_target("path holds a disguised dot-segment")


def _refuse_reserved_spelling(path: str) -> None:
    """Step 7: refuse a path some upstream may read as under ``/.lychgate`` unless it is
    spelled plainly: no percent-escape (7a), first segment exactly ``.lychgate`` (7b)."""
    if "%" not in path and ";" not in path:
        return  # nothing to decode or strip: upstreams read the path routing decided on
    if not _may_read_as_reserved(path):
        return
    if "%" in path:
        raise bad_target("path under /.lychgate holds a percent-escape")
    if not is_reserved(path):
        raise bad_target("path under /.lychgate holds a path parameter")


def is_reserved(path: str) -> bool:
    """True for ``/.lychgate`` and everything under it, in any letter case (how routing and
    step 7 decide the namespace: by the first segment alone)."""
    head = path[:11].lower()
    return head == RESERVED_PREFIX + "/" or (head == RESERVED_PREFIX and len(path) == 10)


# Step 3 upper-cased every escape, so these are the only spellings of the encoded characters.
_PREFIX_LOWER: Final = RESERVED_PREFIX[1:]  # ".lychgate"
_AFTER_PREFIX: Final = ("/", "%2F", ";", "%3B", "%3F", "%23")


def _may_read_as_reserved(path: str) -> bool:
    """True if, in some upstream's reading (step 7), the first segment is ``.lychgate``.

    One left-to-right pass over the path, tracking two possibilities at once: ``at_start``,
    a segment starts here and every segment before it vanished (it was empty, or only path
    parameters); ``in_param``, we are inside path parameters that began at such a start and
    that a Tomcat-style reading strips up to the next raw ``/``. A ``%2F`` is a separator to
    a decoding reading (which also ends parameters there) but not to Tomcat's, so both stay
    possible. Anything else that starts a segment keeps it, and nothing after can be first.
    Linear in the path. It over-approximates: it may say True for a mix of the step 7
    readings that no single server makes, but never False when one of them starts with
    ``.lychgate``.
    """
    lower = path.lower()
    n = len(lower)
    i, at_start, in_param = 1, True, False
    while i < n and (at_start or in_param):
        if at_start and lower.startswith(_PREFIX_LOWER, i):
            end = i + len(_PREFIX_LOWER)
            if end == n or path.startswith(_AFTER_PREFIX, end):
                return True
        if lower[i] == "/":
            at_start, in_param = True, False
            i += 1
        elif path.startswith("%2F", i):
            at_start = True  # an empty segment, or the end of parameters once decoded
            i += 3
        else:
            if at_start and (lower[i] == ";" or path.startswith("%3B", i)):
                in_param = True
            at_start = False
            i += 3 if lower[i] == "%" else 1
    return False
