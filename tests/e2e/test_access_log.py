"""``access_log = true`` end to end: one JSON line per response on stdout, with the reason.

What the operator reads when a user says "it does not let me in": the token check behind a
redirect or a 401, the failure behind a 502, and never the token itself.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest

from e2e.deployment import free_port, lychgate, serve
from gateway.client import page_body
from gateway.upstreams import http_upstream
from lychgate.ids import SESSION_ID_PREFIX

pytestmark = [pytest.mark.loopback, pytest.mark.slow]
NAV = {"accept": "text/html", "sec-fetch-mode": "navigate"}
API = {"accept": "application/json"}


def _deploy(data_dir: Path, port: int, up_url: str, down_url: str) -> str:
    """Init with the access log on, two apps (one whose upstream is down); a cookie for Ada."""
    d = str(data_dir)
    lychgate("init", "--dir", d, "--public-url", f"http://127.0.0.1:{port}")
    config = data_dir / "lychgate.toml"
    config.write_text("access_log = true\n" + config.read_text())  # top-level keys go first
    lychgate("app", "add", "--dir", d, "--slug", "echo", "--name", "Echo", "--upstream", up_url)
    lychgate("app", "add", "--dir", d, "--slug", "gone", "--name", "Gone", "--upstream", down_url)
    # For everyone at first: `token mint` refuses a token its policy would refuse, and the
    # test wants one that the gateway refuses (it is made admins-only once minted, below).
    lychgate("app", "add", "--dir", d, "--slug", "ops", "--name", "Ops", "--upstream", up_url)
    lychgate("user", "add", "Admin", "--email", "admin@example.test", "--admin", "--dir", d)
    lychgate("user", "add", "Ada", "--email", "ada@example.test", "--dir", d)
    minted = lychgate("token", "mint", "--dir", d, "--app", "echo", "--user", "ada@example.test")
    return minted.split("\n")[0]


def _claims(cookie: str) -> dict[str, Any]:
    """The payload of the app token in ``cookie`` (NAME=TOKEN), read without verifying."""
    payload = cookie.partition("=")[2].split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def _records(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


async def _logged(log: Path, paths: set[str]) -> None:
    """Wait (10 s at most: a hang guard) until ``log`` holds a record for each of ``paths``."""
    async with asyncio.timeout(10):
        while True:
            try:
                records = await asyncio.to_thread(_records, log)
            except ValueError:  # a line caught half-written
                records = []
            if paths <= {r.get("path") for r in records}:
                return
            await asyncio.sleep(0.05)


async def test_the_access_log_says_why(data_dir: Path) -> None:
    port = free_port()
    with socket.socket() as s:  # a port nothing listens on: the "gone" app's upstream
        s.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{s.getsockname()[1]}"
    async with http_upstream() as up:
        cookie = await asyncio.to_thread(_deploy, data_dir, port, up.url, down)
        name, _, token = cookie.partition("=")
        gone, ops = [
            await asyncio.to_thread(
                lychgate, "token", "mint", "--dir", str(data_dir), "--app", app,
                "--user", "ada@example.test",
            )
            for app in ("gone", "ops")
        ]  # fmt: skip
        await asyncio.to_thread(
            lychgate, "app", "update", "ops", "--dir", str(data_dir), "--policy", "admins"
        )
        async with serve(data_dir, port) as served:
            async with httpx.AsyncClient(base_url=served.url) as c:
                assert (await c.get("/a", headers=NAV)).status_code == 302
                assert (await c.get("/b", headers=API)).status_code == 401
                forged = f"{name}={token[:-4]}AAAA"
                assert (await c.get("/c", headers={**API, "cookie": forged})).status_code == 401
                assert (await c.get("/d", headers={**API, "cookie": cookie})).status_code == 200
                gone_cookie = gone.split("\n")[0]
                r = await c.get("/e", headers={**API, "cookie": gone_cookie})
                gone_rid = r.headers["x-request-id"]
                assert (r.status_code, r.content) == (502, page_body(502, gone_rid))
                ops_cookie = ops.split("\n")[0]
                assert (await c.get("/f", headers={**API, "cookie": ops_cookie})).status_code == 403
                # A sign-in link authz refuses: the gateway's redemption is named by the
                # browser request's id, in authz's log line as on the page.
                state = "S" * 22
                r = await c.get(
                    f"/.lychgate/callback?code={'C' * 43}&rd=/&state={state}",
                    headers={**NAV, "cookie": f"lychgate_state={state}"},
                )
                refused_rid = r.headers["x-request-id"]
                assert r.status_code == 400
                assert r.text.endswith(f"\nrequest id: {refused_rid}\n")
            # The records are written as the responses go: wait for the last one to land.
            await _logged(served.log, {"/a", "/b", "/c", "/d", "/e", "/f"})
        log = served.log
    records = {r["path"]: r for r in await asyncio.to_thread(_records, log) if "path" in r}
    assert records["/a"]["status"] == 302
    assert records["/a"]["reason"] == "login: no_cookie"
    assert records["/b"]["reason"] == "no_cookie"
    assert records["/c"]["reason"] == "bad_signature"
    assert records["/d"]["status"] == 200
    assert records["/d"]["app"] == "echo"
    assert "reason" not in records["/d"]
    assert records["/e"]["reason"] == "upstream connect failed: Connection refused"
    # One id names each request in its record, on its error page and at its app.
    assert records["/e"]["request_id"] == gone_rid
    [echoed] = [seen for seen in up.seen if seen.target == "/d"]
    assert records["/d"]["request_id"] == echoed.header("x-request-id")
    assert len({record["request_id"] for record in records.values()}) == len(records)
    # Who: the user and session behind a forward, a failed forward and a policy's refusal;
    # nobody behind an answer to no token or a forged one. The session by its public handle,
    # the name its token carries and `token mint` prints: its id is the authz cookie's bearer
    # secret, which neither the token nor the gateway holds.
    ada = _claims(cookie)
    ops_sid = _claims(ops.split("\n")[0])["sid"]
    assert f"session {ops_sid}, expires" in ops
    assert records["/d"]["user"] == ada["sub"]
    assert records["/d"]["session"] == ada["sid"]
    assert records["/e"]["user"] == ada["sub"]
    assert (records["/f"]["status"], records["/f"]["reason"]) == (403, "admins only")
    assert records["/f"]["user"] == ada["sub"]
    assert records["/f"]["session"] == ops_sid
    assert not any("user" in records[path] for path in ("/a", "/b", "/c"))
    text = await asyncio.to_thread(log.read_text)
    assert f"app gone, upstream {down}: upstream connect failed: Connection refused" in text
    [refusal] = [line for line in text.splitlines() if "handoff refused" in line]
    assert refusal.endswith(
        f"handoff refused: code: unknown, used or expired code (request {refused_rid})"
    )
    assert token not in text  # no token, ever, nor a session id (each begins so)
    assert SESSION_ID_PREFIX not in text
    assert gone_cookie.partition("=")[2] not in text
