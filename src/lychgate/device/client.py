"""The device's HTTP client: enrollment, and signed calls (docs/sign-in-protocol.md).

Every call after enrollment is signed with :func:`lychgate.devicesig.sign_request` over the
exact path and query httpx will put on the wire, so what we sign is what the server sees.
Calls go only to the enrolled server's public URL; redirects are never followed (a signed
request must not be bounced to another origin, and the protocol has no redirects).

A :class:`Connector` says how to reach a server: the CLI uses real sockets, tests pass an
in-process ``httpx.ASGITransport``. Build the TLS context (which reads files) before the event
loop runs; everything in here is then free of blocking calls.
"""

from __future__ import annotations

import json
import re
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lychgate import __version__
from lychgate.device.answers import check_answer, error_kind, is_replay_refusal
from lychgate.device.keyfile import DeviceRecord, KeyFile
from lychgate.device.urls import EnrollmentLink, parse_origin
from lychgate.device.wire import (
    AppEntry,
    AppList,
    BadAnswer,
    Enrollment,
    LoginContext,
    LogoutResult,
    OpenResult,
    SessionEntry,
    SessionList,
    check_choices,
    parse,
)
from lychgate.devicesig import b64url, sign_request
from lychgate.errors import ClientError, LychgateError
from lychgate.ids import LoginRequestId

API: Final = "/.lychgate/api/v1/device"
_SEGMENT_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,128}")

NAME_REQUIRED: Final = (
    "this is an admin setup link: give the new admin's name with --user-name NAME (and --email)"
)

TransportFactory = Callable[[ssl.SSLContext], httpx.AsyncBaseTransport]


def network_transport(tls: ssl.SSLContext) -> httpx.AsyncBaseTransport:
    """Real sockets, verifying the server with ``tls``; no retries (approvals are one-shot)."""
    return LocalhostTransport(httpx.AsyncHTTPTransport(verify=tls, retries=0))


class LocalhostTransport(httpx.AsyncBaseTransport):
    """Connects ``*.localhost`` names to 127.0.0.1 itself, as browsers do.

    RFC 6761 section 6.3 reserves ``localhost`` and its subdomains for loopback, and browsers
    resolve them so without asking DNS; many system resolvers do not. A deployment on
    ``http://auth.localhost:8080`` (subdomains mode on a laptop) must work for the device as it
    does for the browser. The Host header and the TLS server name stay the real name.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        if host.endswith(".localhost"):
            request = httpx.Request(
                request.method,
                request.url.copy_with(host="127.0.0.1"),
                headers=request.headers,
                stream=request.stream,
                extensions={**request.extensions, "sni_hostname": host},
            )
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


@dataclass(frozen=True, slots=True)
class Connector:
    """How to reach a server: a transport factory, a clock for timestamps, and a timeout."""

    transport: TransportFactory = network_transport
    clock: Callable[[], float] = time.time
    timeout: float = 15.0

    def http(self, base_url: str, tls: ssl.SSLContext) -> httpx.AsyncClient:
        """An httpx client for ``base_url``. Ignores proxy, netrc and CA settings from the
        environment: whom the device trusts is decided by its key file and ``--ca`` alone."""
        return httpx.AsyncClient(
            base_url=base_url,
            transport=self.transport(tls),
            trust_env=False,
            follow_redirects=False,
            timeout=self.timeout,
            headers={"user-agent": f"lychgate-device/{__version__}"},
        )


async def enroll(
    http: httpx.AsyncClient,
    link: EnrollmentLink,
    key: Ed25519PrivateKey,
    *,
    name: str,
    user_name: str | None,
    email: str | None,
    now: datetime,
    ca_file: str | None,
) -> KeyFile:
    """Redeem an enrollment link, binding ``key`` to the link's user.

    Unsigned: the one-time code is the credential. ``user_name``/``email`` describe the new
    admin when the link is an admin setup link. The server must report the origin we talked
    to as its public URL, which becomes the only place this device ever calls.
    """
    public_raw = key.public_key().public_bytes_raw()
    body: dict[str, Any] = {
        "code": link.code.reveal(),
        "public_key": b64url(public_raw),
        "name": name,
    }
    if user_name is not None:
        body["user_name"] = user_name
    if email is not None:
        body["email"] = email
    response = await _send(http, http.build_request("POST", f"{API}/enroll", json=body))
    if response.status_code == 400 and error_kind(response) == "user_name_required":
        # A setup link, still open, sent without --user-name (a server older than this error
        # refuses it as a bad code, with a hint).
        raise ClientError(NAME_REQUIRED)
    refused = "the link is unknown, used, cancelled or expired"
    check_answer(response, what="enrollment", messages={401: refused, 404: refused, 409: refused})
    enrollment = parse(Enrollment, response, what="enrollment")
    claimed = parse_origin(enrollment.public_url, field="public_url")
    if claimed != link.origin:
        raise BadAnswer(
            f"the server at {link.origin} calls itself {claimed}; use the link with the "
            "server's public URL"
        )
    record = DeviceRecord(
        device_id=enrollment.device_id,
        device_name=name,
        user_id=enrollment.user.id,
        user_name=enrollment.user.name,
        user_email=enrollment.user.email or None,
        server=str(link.origin),
        enrolled_at=now,
        ca_file=ca_file,
    )
    return KeyFile(record, key)


class DeviceClient:
    """Signed calls on behalf of one enrolled device."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        key_file: KeyFile,
        *,
        clock: Callable[[], float],
        stored_ca: str | None = None,
    ) -> None:
        """``stored_ca``: the key file's CA path when it is the one in use (no ``--ca``), for
        the advice when the server's certificate fails (:func:`stored_ca_hint`)."""
        self._http = http
        self._key = key_file.private_key
        self._device_id = key_file.record.device_id
        self._clock = clock
        self._ca_hint = _CA_ADVICE if stored_ca is None else stored_ca_hint(stored_ca)

    async def login(self, login_id: LoginRequestId) -> LoginContext:
        """What a pending sign-in request shows: browser, IP, app, time, number choices."""
        response = await self._call("GET", f"/login/{_segment(login_id)}", what="sign-in")
        context = parse(LoginContext, response, what="sign-in")
        if context.id != login_id:
            raise BadAnswer("the server answered about another sign-in request")
        check_choices(context)
        return context

    async def approve(self, login_id: LoginRequestId, number: int) -> None:
        """Approve with the number the browser shows. A wrong number denies the request."""
        await self._call(
            "POST",
            f"/login/{_segment(login_id)}/approve",
            {"number": number},
            what="approval",
            messages={409: "the sign-in request is no longer pending"},
        )

    async def deny(self, login_id: LoginRequestId) -> None:
        await self._call("POST", f"/login/{_segment(login_id)}/deny", {}, what="denial")

    async def apps(self) -> tuple[AppEntry, ...]:
        response = await self._call("GET", "/apps", what="app list")
        return parse(AppList, response, what="app list").apps

    async def open_app(self, slug: str) -> bool | None:
        """Open ``slug`` in the browser session this device most recently approved; whether a
        portal page of it got the request (None: the server cannot tell)."""
        response = await self._call(
            "POST",
            "/open",
            {"slug": slug},
            what="open",
            messages={404: "no such app, or no browser signed in by this device is open"},
        )
        return parse(OpenResult, response, what="open").delivered

    async def sessions(self) -> tuple[SessionEntry, ...]:
        response = await self._call("GET", "/sessions", what="session list")
        return parse(SessionList, response, what="session list").sessions

    async def revoke_session(self, session_id: str) -> None:
        await self._call(
            "DELETE",
            f"/sessions/{_segment(session_id, field='session')}",
            what="revocation",
            messages={404: "no such live session"},
        )

    async def logout(self) -> int:
        """Revoke every session this device approved; how many the server revoked."""
        response = await self._call("POST", "/logout", {}, what="logout")
        return parse(LogoutResult, response, what="logout").revoked

    async def _call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        what: str,
        messages: Mapping[int, str] | None = None,
    ) -> httpx.Response:
        content = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        now = int(self._clock())
        response = await self._send_signed(method, path, content, now)
        if is_replay_refusal(response):
            # Ed25519 signs deterministically, and a state-changing call is accepted once: the
            # same call twice in one second (a script opening one app twice) signs the same
            # bytes, and the server takes the second for a replay. Sign it once more with the
            # next second, which is well inside the server's ±60 s window.
            response = await self._send_signed(method, path, content, now + 1)
        check_answer(response, what=what, messages=messages)
        return response

    async def _send_signed(
        self, method: str, path: str, content: bytes, timestamp: int
    ) -> httpx.Response:
        headers = {"content-type": "application/json"} if content else {}
        request = self._http.build_request(
            method, API + path, content=content or None, headers=headers
        )
        # Sign the target exactly as it goes on the wire (path and query, percent-encoded);
        # every path we build is already in the normal form the gateway forwards
        # (docs/sign-in-protocol.md, "Device calls"), so it is also what authz checks.
        target = request.url.raw_path.decode("ascii")
        signed = sign_request(self._key, self._device_id, method, target, content, timestamp)
        request.headers.update(signed.as_dict())
        return await _send(self._http, request, ca_hint=self._ca_hint)


_CA_ADVICE: Final = "; if the server uses the internal CA, pass --ca (from `lychgate ca export`)"


def stored_ca_hint(ca_file: str) -> str:
    """What to do when the server's certificate fails against the CA the key file names: the
    device uses that path whenever no ``--ca`` is given, so the new CA goes there (after
    ``lychgate ca rotate``); "pass --ca" would fix one command and leave the next broken."""
    return (
        f"; this device trusts the CA at {ca_file} (kept in its key file since enrollment): "
        "if the server's CA changed (lychgate ca rotate), put the new one there "
        f"(lychgate ca export > {ca_file} on the server)"
    )


async def _send(
    http: httpx.AsyncClient, request: httpx.Request, *, ca_hint: str = _CA_ADVICE
) -> httpx.Response:
    try:
        return await http.send(request)
    except httpx.HTTPError as exc:
        hint = ""
        if "CERTIFICATE_VERIFY_FAILED" in str(exc):
            hint = ca_hint
        raise LychgateError(
            f"cannot reach {http.base_url}: {exc or type(exc).__name__}{hint}", status=502
        ) from None


def _segment(value: str, *, field: str = "id") -> str:
    # Ids are base64url: reject anything that would need escaping in a path (or change it).
    if not _SEGMENT_RE.fullmatch(value):
        raise ClientError("not a valid id", field=field)
    return value
