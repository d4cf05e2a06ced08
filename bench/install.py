"""Install the Debian tools the harness drives (nginx, caddy, wrk) when they are missing.

Installing Debian's nginx also starts its stock service on port 80. We run our own nginx
processes from our own config files, so right after installing a package we stop and disable
the service it started. A service that was already installed before this run is left alone:
it may be somebody's real web server.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

# binary name -> Debian package that ships it
TOOLS: Mapping[str, str] = {"nginx": "nginx", "caddy": "caddy", "wrk": "wrk"}
# Packages whose maintainer scripts start a system service we do not want running.
SERVICES: tuple[str, ...] = ("nginx", "caddy")
# Root's PATH has these, but a sudo'd or minimal environment may not.
_SBIN_DIRS = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")


def find_tool(name: str) -> str | None:
    """Return the absolute path of an installed tool, or None."""
    found = shutil.which(name)
    if found:
        return found
    for d in _SBIN_DIRS:
        candidate = Path(d) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def missing_packages(tools: Mapping[str, str] = TOOLS) -> list[str]:
    """Debian packages to install so that every tool in ``tools`` is on this machine."""
    return sorted({pkg for binary, pkg in tools.items() if find_tool(binary) is None})


def _run(argv: list[str], env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        env=dict(env) if env is not None else None,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def _stop_service(name: str) -> None:
    """Stop and disable a system service that a package just started (systemd or sysvinit)."""
    if Path("/run/systemd/system").is_dir():
        _run(["systemctl", "disable", "--now", name])
        return
    if Path(f"/etc/init.d/{name}").exists():
        _run([f"/etc/init.d/{name}", "stop"])
        _run(["update-rc.d", name, "disable"])


def ensure_installed(tools: Mapping[str, str] = TOOLS) -> list[str]:
    """Install missing packages with apt-get; return the packages installed.

    Raises RuntimeError with apt's own message when the install fails or a tool is still
    missing afterwards.
    """
    missing = missing_packages(tools)
    if not missing:
        return []
    if os.geteuid() != 0:
        raise RuntimeError(f"missing {', '.join(missing)}; run as root or apt-get install them")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    update = _run(["apt-get", "update", "-q"], env)
    if update.returncode != 0:
        raise RuntimeError(f"apt-get update failed: {update.stderr.strip()[-500:]}")
    install = _run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], env)
    if install.returncode != 0:
        raise RuntimeError(f"apt-get install failed: {install.stderr.strip()[-500:]}")
    for pkg in missing:
        if pkg in SERVICES:
            _stop_service(pkg)
    still = missing_packages(tools)
    if still:
        raise RuntimeError(f"still missing after apt-get install: {', '.join(still)}")
    return missing


def tool_versions() -> dict[str, str]:
    """Versions of the installed tools, for the report header ("?" when unknown)."""
    versions = {}
    for tool, flag in (("nginx", "-v"), ("caddy", "version"), ("wrk", "-v")):
        path = find_tool(tool)
        if path is None:
            versions[tool] = "missing"
            continue
        out = _run([path, flag])
        text = (out.stdout + out.stderr).strip()
        match = re.search(r"\d+\.\d+(?:\.\d+)?", text)
        versions[tool] = match.group(0) if match else "?"
    return versions
