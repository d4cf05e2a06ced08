"""Caddy reverse_proxy, plain and with forward_auth, limited to one core (GOMAXPROCS=1).

The forward_auth endpoint is a second site in the same Caddy process that checks the cookie is
present and answers 200: like nginx's auth_request case, the auth call costs a request but the
decision itself is free. Caddy streams request and response bodies and passes WebSocket upgrades
on by default.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from bench.install import find_tool
from bench.procs import LOOPBACK, free_port, start_process, wait_ready
from bench.targets import ADMITTED, Target, TargetUnavailable, placeholder_cookie, write_files


def caddyfile(port: int, upstream_port: int, auth_port: int | None) -> str:
    """A Caddyfile for the proxy on ``port``; with ``auth_port``, forward_auth to that port."""
    lo = LOOPBACK
    auth = (
        f"""\
    forward_auth {lo}:{auth_port} {{
        uri /auth
    }}
"""
        if auth_port is not None
        else ""
    )
    text = f"""\
{{
    admin off
    auto_https off
    grace_period 1s
    servers {{
        protocols h1
    }}
}}

http://:{port} {{
    bind {lo}
{auth}    reverse_proxy {lo}:{upstream_port}
}}
"""
    if auth_port is not None:
        text += f"""
http://:{auth_port} {{
    bind {lo}
    @cookie header Cookie *lychgate=*
    respond @cookie 200
    respond 401
}}
"""
    return text


async def _start_caddy(name: str, workdir: Path, upstream_port: int, *, auth: bool) -> Target:
    caddy = find_tool("caddy")
    if caddy is None:
        raise TargetUnavailable("caddy is not installed")
    port = free_port()
    auth_port = free_port() if auth else None
    while auth_port == port:
        auth_port = free_port()
    conf = caddyfile(port, upstream_port, auth_port)
    await asyncio.to_thread(write_files, workdir, {"Caddyfile": conf.encode()})
    env = {
        **os.environ,
        "GOMAXPROCS": "1",
        # Caddy keeps state under $HOME / XDG dirs; keep it inside the work directory.
        "HOME": str(workdir),
        "XDG_DATA_HOME": str(workdir / "data"),
        "XDG_CONFIG_HOME": str(workdir / "config"),
    }
    argv = [caddy, "run", "--config", str(workdir / "Caddyfile"), "--adapter", "caddyfile"]
    proc = await start_process(name, argv, workdir / "caddy.log", env=env)
    target = Target(port=port, cookie=placeholder_cookie(), processes=(proc,))
    try:
        status = await wait_ready(proc, port, path="/small", headers=target.headers)
        if status not in ADMITTED:
            raise RuntimeError(f"{name} answered {status} to a request with the cookie")
    except BaseException:
        await target.stop()
        raise
    return target


async def start_proxy(workdir: Path, upstream_port: int) -> Target:
    """Caddy reverse_proxy, GOMAXPROCS=1."""
    return await _start_caddy("caddy", workdir, upstream_port, auth=False)


async def start_forward_auth(workdir: Path, upstream_port: int) -> Target:
    """Caddy forward_auth (to a cookie check in the same process) then reverse_proxy."""
    return await _start_caddy("caddy-auth", workdir, upstream_port, auth=True)
