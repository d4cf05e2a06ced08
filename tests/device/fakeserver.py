"""A fake authz speaking the device half of docs/sign-in-protocol.md, for the client's tests.

It keeps its state in plain dicts the tests read and change, verifies every signed call with
the real :func:`lychgate.devicesig.verify_request`, and answers errors the way the contract
says (bare ``401 {"error": "device_auth"}``, 404, 409 and 429 with ``Retry-After``). Like authz
it accepts each state-changing call's signature once (``"detail": "replayed"`` the second
time). It is run in process through ``httpx.ASGITransport``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from lychgate.device.client import Connector
from lychgate.devicesig import (
    HEADER_DEVICE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    REPLAYED,
    DeviceAuthError,
    signature_fingerprint,
    unb64url,
    verify_request,
)

API = "/.lychgate/api/v1/device"


@dataclass
class FakeDevice:
    id: str
    user_id: str
    public_key: bytes
    name: str
    revoked: bool = False


@dataclass
class FakeLogin:
    number: int
    choices: list[int]
    status: str = "pending"
    browser: str = "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"
    ip: str = "203.0.113.7"
    app: str | None = "wiki"
    requested_at: str = "2030-01-02T03:04:05Z"
    approved_by: str | None = None


#: A browser this device (``dev_cli``) signed in, as ``sessions`` lists it.
THIS_BROWSER: Final = {
    "browser": "Firefox",
    "ip": "192.0.2.1",
    "device": "dev_cli",
    "created_at": "2030-01-02T03:04:05Z",
}


@dataclass
class FakeServer:
    public_url: str = "https://gate.example.test"
    clock: Callable[[], float] = time.time
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)  # code -> user
    devices: dict[str, FakeDevice] = field(default_factory=dict)
    logins: dict[str, FakeLogin] = field(default_factory=dict)
    apps: list[dict[str, str]] = field(default_factory=list)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    ended: set[str] = field(default_factory=set)  # sessions revoked: 409 session_ended
    opened: list[tuple[str, str]] = field(default_factory=list)
    delivered: bool | None = None  # what open says of the portal page; None: as older servers
    enroll_bodies: list[dict[str, Any]] = field(default_factory=list)
    signed_calls: list[tuple[str, str]] = field(default_factory=list)
    used_signatures: set[tuple[str, bytes]] = field(default_factory=set)
    retry_after: str | None = None  # when set, every call is rate limited
    override: tuple[int, dict[str, Any]] | None = None  # force one answer to signed calls

    def connector(self, clock: Callable[[], float] | None = None) -> Connector:
        """A connector whose transport is this fake, in process."""
        return Connector(
            transport=lambda _tls: httpx.ASGITransport(app=self.asgi()),
            clock=clock or self.clock,
        )

    def asgi(self) -> FastAPI:
        app = FastAPI()
        app.post(API + "/enroll")(self._enroll)
        app.api_route(API + "/{rest:path}", methods=["GET", "POST", "DELETE"])(self._signed)
        return app

    async def _enroll(self, request: Request) -> Response:
        body = json.loads(await request.body())
        self.enroll_bodies.append(body)
        user = self.codes.pop(body["code"], None)
        if user is None:
            return _error(
                409, "code_refused", "unknown, used, cancelled or expired enrollment code"
            )
        device_id = f"dev_{len(self.devices) + 1}"
        raw = unb64url(body["public_key"], field="public_key")
        self.devices[device_id] = FakeDevice(device_id, user["id"], raw, body["name"])
        answer = {"device_id": device_id, "user": user, "public_url": self.public_url}
        return JSONResponse(answer, status_code=201)

    async def _signed(self, request: Request, rest: str) -> Response:
        if self.retry_after is not None:
            return _error(429, "rate_limited", "slow down", {"retry-after": self.retry_after})
        body = await request.body()
        device = self.devices.get(request.headers.get(HEADER_DEVICE, ""))
        path = request.scope["raw_path"].decode("latin-1")
        try:
            if device is None or device.revoked:
                raise DeviceAuthError("unknown or revoked device")
            verify_request(
                device.public_key,
                method=request.method,
                path=path,
                body=body,
                timestamp=request.headers.get(HEADER_TIMESTAMP),
                signature=request.headers.get(HEADER_SIGNATURE),
                now=int(self.clock()),
            )
        except DeviceAuthError:
            return JSONResponse({"error": "device_auth"}, status_code=401)
        if request.method != "GET":
            used = (device.id, signature_fingerprint(request.headers[HEADER_SIGNATURE]))
            if used in self.used_signatures:
                body_out = {"error": "device_auth", "detail": REPLAYED, "message": "used"}
                return JSONResponse(body_out, status_code=401)
            self.used_signatures.add(used)
        self.signed_calls.append((request.method, path))
        if self.override is not None:
            status, answer = self.override
            return JSONResponse(answer, status_code=status)
        data = json.loads(body) if body else {}
        return self._route(request.method, rest.split("/"), data, device)

    def _route(
        self, method: str, parts: list[str], data: dict[str, Any], device: FakeDevice
    ) -> Response:
        match method, parts:
            case "GET", ["login", login_id]:
                login = self.logins.get(login_id)
                if login is None:
                    return _error(404, "not_found", "no such login request")
                return JSONResponse(
                    {
                        "id": login_id,
                        "status": login.status,
                        "browser": login.browser,
                        "ip": login.ip,
                        "app": login.app,
                        "requested_at": login.requested_at,
                        "expires_at": "2030-01-02T03:06:05Z",
                        "choices": login.choices,
                    }
                )
            case "POST", ["login", login_id, ("approve" | "deny") as verb]:
                login = self.logins.get(login_id)
                if login is None:
                    return _error(404, "not_found", "no such login request")
                if login.status != "pending":
                    return _error(409, "conflict", f"login request is {login.status}")
                if verb == "deny":
                    login.status = "denied"
                    return JSONResponse({"status": "denied"})
                if data.get("number") != login.number:
                    login.status = "denied"
                    return _error(409, "wrong_number", "wrong number: the login request is denied")
                login.status, login.approved_by = "approved", device.id
                return JSONResponse({"status": "approved"})
            case "GET", ["apps"]:
                return JSONResponse({"apps": self.apps})
            case "POST", ["open"]:
                if not any(s.get("device") == device.id for s in self.sessions.values()):
                    return _error(404, "not_found", "no live browser session")
                self.opened.append((device.id, data["slug"]))
                sent: dict[str, Any] = {"status": "sent", "slug": data["slug"]}
                if self.delivered is not None:
                    sent["delivered"] = self.delivered
                return JSONResponse(sent)
            case "GET", ["sessions"]:
                listed = [
                    {**s, "id": sid, "this_device": s.get("device") == device.id}
                    for sid, s in self.sessions.items()
                ]
                return JSONResponse({"sessions": listed})
            case "DELETE", ["sessions", session_id]:
                if session_id in self.ended:
                    return _error(409, "session_ended", "that session has already ended")
                if self.sessions.pop(session_id, None) is None:
                    return _error(404, "not_found", "no such session")
                self.ended.add(session_id)
                return Response(status_code=204)
            case "POST", ["logout"]:
                mine = [sid for sid, s in self.sessions.items() if s.get("device") == device.id]
                for sid in mine:
                    del self.sessions[sid]
                self.ended.update(mine)
                return JSONResponse({"revoked": len(mine)})
        return _error(404, "not_found", "no such route")


def _error(
    status: int, kind: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": kind, "message": message}, status_code=status, headers=headers)
