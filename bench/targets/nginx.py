"""nginx as the fast upstream and as the proxy under test (plain and with auth_request).

Every nginx runs in the foreground (``daemon off``) with its prefix, pid file, logs and temp
paths inside its own work directory, so it never touches /etc/nginx or /var/lib/nginx.
"""

from __future__ import annotations

import asyncio
import getpass
import resource
from pathlib import Path

from bench.install import find_tool
from bench.procs import LOOPBACK, free_port, start_process, wait_ready
from bench.targets import ADMITTED, Target, TargetUnavailable, placeholder_cookie, write_files

SMALL_BODY = "lychgate bench: small fixed body\n"
LARGE_SIZE = 1 << 20  # the "1 MB" response
# The download: fixed, because the upstream starts once per run, before any scenario's settings.
DOWNLOAD_SIZE = 100 << 20
DOWNLOAD_PATH = f"/{DOWNLOAD_SIZE >> 20}mb"
# Enough for the 10k idle connections plus the upstream side of the busy ones.
WORKER_CONNECTIONS = 16384


def _common(workdir: Path) -> str:
    # nginx warns when worker_connections exceed the inherited open-file limit.
    connections = min(WORKER_CONNECTIONS, resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 64)
    temp = "\n".join(
        f"    {kind}_temp_path {workdir}/tmp_{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # Workers run as the user who runs the bench, so they can read the files in the private
    # temp directory (as root nginx would otherwise switch to "nobody").
    return f"""\
user {getpass.getuser()};
worker_processes 1;
daemon off;
master_process on;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{
    worker_connections {connections};
}}
http {{
    access_log off;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 300s;
    # The default (1000) closes wrk's connections every 1000 requests; Caddy has no such cap.
    keepalive_requests 100000000;
{temp}
"""


def upstream_conf(workdir: Path, port: int) -> str:
    """The upstream: a small fixed body at /small, a 1 MiB file at /1mb, the download file."""
    return (
        _common(workdir)
        + f"""\
    server {{
        listen {LOOPBACK}:{port} backlog=4096;
        location = /1mb {{
            alias {workdir}/1mb.bin;
        }}
        location = {DOWNLOAD_PATH} {{
            alias {workdir}/download.bin;
        }}
        location / {{
            return 200 "{SMALL_BODY.strip()}\\n";
        }}
    }}
}}
"""
    )


def proxy_conf(
    workdir: Path,
    port: int,
    upstream_port: int,
    *,
    auth_request: bool,
    auth_port: int | None = None,
) -> str:
    """The proxy: keep-alive to the upstream, streaming both ways, WebSocket upgrade passed on.

    With ``auth_request``, the optimistic version of a forward-auth deployment: the auth
    subrequest is answered by nginx itself after checking that the cookie is present. Without
    ``auth_port`` it is answered in the same location, so it costs a subrequest but no network
    hop. With ``auth_port`` it goes over a pooled loopback connection to a second server of the
    same nginx (``auth_server``), as it would to a real auth service: the hop, not the check.
    """
    auth = "auth_request /_lychgate_auth;" if auth_request else ""
    if auth_port is None:
        answer = """if ($cookie_lychgate = "") {
                return 401;
            }
            return 204;"""
        auth_upstream = ""
    else:
        answer = """proxy_pass http://auth_backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";"""
        auth_upstream = f"""    upstream auth_backend {{
        server {LOOPBACK}:{auth_port};
        keepalive 64;
    }}
    server {{
        listen {LOOPBACK}:{auth_port} backlog=4096;
        location / {{
            if ($cookie_lychgate = "") {{
                return 401;
            }}
            return 204;
        }}
    }}
"""
    return (
        _common(workdir)
        + f"""\
    # RFC 6455 section 4.1: pass Upgrade on; plain requests get an empty Connection header so
    # the upstream connection stays in the keep-alive pool.
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        "" "";
    }}
    upstream backend {{
        server {LOOPBACK}:{upstream_port};
        keepalive 64;
    }}
    server {{
        listen {LOOPBACK}:{port} backlog=4096;
        client_max_body_size 0;
        location / {{
            {auth}
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_request_buffering off;
            proxy_max_temp_file_size 0;
            proxy_read_timeout 300s;
            proxy_send_timeout 300s;
        }}
        location = /_lychgate_auth {{
            internal;
            {answer}
        }}
    }}
{auth_upstream}}}
"""
    )


async def _start_nginx(name: str, workdir: Path, conf: str, port: int, cookie: str) -> Target:
    nginx = find_tool("nginx")
    if nginx is None:
        raise TargetUnavailable("nginx is not installed")
    conf_path = workdir / "nginx.conf"
    await asyncio.to_thread(write_files, workdir, {"nginx.conf": conf.encode()})
    argv = [nginx, "-p", f"{workdir}/", "-c", str(conf_path), "-e", str(workdir / "error.log")]
    proc = await start_process(name, argv, workdir / "stdout.log")
    target = Target(port=port, cookie=cookie, processes=(proc,))
    try:
        status = await wait_ready(proc, port, path="/small", headers=target.headers)
        if status not in ADMITTED:
            raise RuntimeError(f"{name} answered {status} to a request with the cookie")
    except BaseException:
        await target.stop()
        raise
    return target


def _sparse_file(path: Path, size: int) -> None:
    """A file of ``size`` zero bytes that takes no disk or memory to write (a hole)."""
    with path.open("wb") as f:
        f.truncate(size)


async def start_upstream(workdir: Path) -> Target:
    """Start the nginx upstream on a free port."""
    await asyncio.to_thread(write_files, workdir, {"1mb.bin": b"x" * LARGE_SIZE})
    await asyncio.to_thread(_sparse_file, workdir / "download.bin", DOWNLOAD_SIZE)
    port = free_port()
    return await _start_nginx(
        "nginx-upstream", workdir, upstream_conf(workdir, port), port, placeholder_cookie()
    )


async def start_proxy(workdir: Path, upstream_port: int) -> Target:
    """nginx proxy_pass, one worker."""
    port = free_port()
    conf = proxy_conf(workdir, port, upstream_port, auth_request=False)
    return await _start_nginx("nginx", workdir, conf, port, placeholder_cookie())


async def start_auth_request(workdir: Path, upstream_port: int) -> Target:
    """nginx proxy_pass behind auth_request answered by nginx itself, one worker."""
    port = free_port()
    conf = proxy_conf(workdir, port, upstream_port, auth_request=True)
    return await _start_nginx("nginx-auth", workdir, conf, port, placeholder_cookie())


async def start_auth_request_hop(workdir: Path, upstream_port: int) -> Target:
    """nginx + auth_request whose subrequest crosses a loopback hop to nginx itself."""
    port, auth_port = free_port(), free_port()
    conf = proxy_conf(workdir, port, upstream_port, auth_request=True, auth_port=auth_port)
    return await _start_nginx("nginx-auth-hop", workdir, conf, port, placeholder_cookie())
