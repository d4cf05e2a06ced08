"""``lychgate serve --demo`` end to end: banner, whoami and chat through the gateway, Ctrl-C.

The server runs as a child process exactly as ``make run`` starts it; setup goes through the
CLI in a thread (it runs event loops of its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect

from e2e.deployment import free_port, lychgate

pytestmark = [pytest.mark.loopback, pytest.mark.slow]


@dataclass
class Served:
    url: str
    process: asyncio.subprocess.Process
    out: Path
    err: Path


@contextlib.asynccontextmanager
async def serve_demo(data_dir: Path, port: int) -> AsyncIterator[Served]:
    out, err = data_dir / "serve.out", data_dir / "serve.err"
    out_file = await asyncio.to_thread(out.open, "wb")
    err_file = await asyncio.to_thread(err.open, "wb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LYCHGATE_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "lychgate", "serve", "--demo", "--dir", str(data_dir)),
        *("--listen", f"127.0.0.1:{port}"),
        stdout=out_file,
        stderr=err_file,
        env=env,
        start_new_session=True,  # its own process group, as a terminal gives `make run`
    )
    served = Served(f"http://127.0.0.1:{port}", process, out, err)
    try:
        async with httpx.AsyncClient() as client, asyncio.timeout(30):
            while True:
                if process.returncode is not None:
                    raise AssertionError(await asyncio.to_thread(err.read_text))
                with contextlib.suppress(httpx.TransportError):
                    r = await client.get(f"{served.url}/.lychgate/healthz")
                    if r.status_code == 200:
                        break
                await asyncio.sleep(0.1)
        yield served
    finally:
        # The whole group, even if serve has exited: a failing test must not leave orphans.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        out_file.close()
        err_file.close()


def child_pids(log: str) -> list[int]:
    match = re.search(r"\(gateway pid (\d+), demo apps pid (\d+)\)", log)
    assert match, log
    return [int(match[1]), int(match[2])]


async def test_serve_demo_runs_the_apps_behind_the_gateway(data_dir: Path) -> None:
    port = free_port()
    d = str(data_dir)
    await asyncio.to_thread(
        lychgate, "init", "--dir", d, "--public-url", f"http://127.0.0.1:{port}"
    )
    async with serve_demo(data_dir, port) as served:
        banner = await asyncio.to_thread(served.out.read_text)
        assert f"whoami and chat behind http://127.0.0.1:{port}" in banner
        assert f"http://127.0.0.1:{port}/.lychgate/enroll/" in banner  # no admin yet
        assert "lychgate device enroll" in banner

        await asyncio.to_thread(
            lychgate, "user", "add", "Ada", "--email", "ada@example.test", "--admin", "--dir", d
        )
        whoami = await asyncio.to_thread(
            lychgate, "token", "mint", "--dir", d, "--app", "whoami", "--user", "ada@example.test"
        )
        chat = await asyncio.to_thread(
            lychgate, "token", "mint", "--dir", d, "--app", "chat", "--user", "ada@example.test"
        )
        async with httpx.AsyncClient(base_url=served.url) as client, asyncio.timeout(10):
            while True:  # the feed brings the new admin within about a second
                r = await client.get("/x?format=json", headers={"cookie": whoami.splitlines()[0]})
                if r.status_code != 503:
                    break
                await asyncio.sleep(0.2)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["verified"] is True, body
        assert body["claims"]["aud"] == "whoami"
        assert body["claims"]["iss"] == served.url
        assert body["claims"]["email"] == "ada@example.test"
        assert body["headers"]["x-forwarded-for"] == "127.0.0.1"
        assert re.fullmatch("[0-9a-f]{24}", body["headers"]["x-request-id"])  # the gateway's

        cookie = {"cookie": chat.splitlines()[0]}
        ws_url = f"ws://127.0.0.1:{port}/ws"
        async with (
            ws_connect(ws_url, additional_headers=cookie) as one,
            ws_connect(ws_url, additional_headers=cookie) as two,
        ):
            await one.send("hello through the gateway")
            for ws in (one, two):
                async with asyncio.timeout(5):
                    while (event := json.loads(await ws.recv()))["type"] != "message":
                        pass
                assert (event["from"], event["text"]) == ("Ada", "hello through the gateway")

        await stops_cleanly(served, lambda: os.killpg(served.process.pid, signal.SIGINT))


async def stops_cleanly(served: Served, send: Callable[[], None]) -> None:
    """``send`` a signal; serve exits 0, reaps every child, and logs no traceback."""
    pids = child_pids(await asyncio.to_thread(served.err.read_text))
    send()
    async with asyncio.timeout(20):
        code = await served.process.wait()
    log = await asyncio.to_thread(served.err.read_text)
    assert code == 0, log
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists()  # reaped: no zombie, no orphan
    assert "Traceback" not in log


async def test_sigterm_to_serve_alone_stops_its_children(data_dir: Path) -> None:
    # A service manager stops the main process only; the children must not be orphaned.
    port = free_port()
    await asyncio.to_thread(
        lychgate, "init", "--dir", str(data_dir), "--public-url", f"http://127.0.0.1:{port}"
    )
    async with serve_demo(data_dir, port) as served:
        await stops_cleanly(served, lambda: served.process.send_signal(signal.SIGTERM))
