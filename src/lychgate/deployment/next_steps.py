"""The steps to take next that init, serve, its demo banner and ``user add`` print: each must
work as printed, on a deployment in any directory (with ``--dir`` where it is not the default
one) and on any transport (with ``--ca`` where devices must be given the internal CA).

Kept apart from the server code: the CLI imports it without loading authz or the gateway.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from lychgate.config import Settings
from lychgate.config.paths import DATA_DIR_ENV, resolve_data_dir
from lychgate.errors import ConfigError

CA_FILE: Final = "lychgate-ca.pem"  # what the printed commands call `lychgate ca export`'s output
_ADMIN_NAME: Final = '"Your Name"'  # a placeholder that works as printed, in any shell


def lychgate_command(words: str, data_dir: Path, env: Mapping[str, str]) -> str:
    """``lychgate WORDS``, as a step to run next on this server: with ``--dir`` where
    ``data_dir`` is not the directory a command uses without one, since a step printed
    without it ran on another deployment, or on none (``lychgate ca export`` after
    ``init --dir data-tls``). ``LYCHGATE_DATA_DIR`` does not make a directory the default:
    it is often set for one command only (``LYCHGATE_DATA_DIR=D lychgate serve``)."""
    usual = {key: value for key, value in env.items() if key != DATA_DIR_ENV}
    try:
        default = resolve_data_dir(None, usual)
    except ConfigError:  # no usable default directory: then every step needs --dir
        default = None
    if data_dir == default:
        return f"lychgate {words}"
    return f"lychgate {words} --dir {shlex.quote(str(data_dir))}"


def enroll_lines(
    url: str, settings: Settings, env: Mapping[str, str], *, admin_setup: bool = False
) -> list[str]:
    """The command that enrolls a device with the link ``url``, then a note on each value in
    it that is not the link: the admin's name, and the CA file (and how to get it)."""
    lines = [enroll_command(url, settings, admin_setup=admin_setup)]
    if admin_setup:
        lines.append(f"(with your own name for {_ADMIN_NAME}; add --email ADDRESS if you like)")
    if uses_internal_ca(settings):
        lines.append(f"({CA_FILE}: from `{ca_export_command(settings, env)}` on this server)")
    return lines


def enroll_command(url: str, settings: Settings, *, admin_setup: bool = False) -> str:
    """``lychgate device enroll URL`` with what the link needs: authz refuses an admin setup
    link without the new admin's name (``--user-name``), and a device trusts an internal CA
    only when given it (``--ca``; without, CERTIFICATE_VERIFY_FAILED)."""
    words = ["lychgate device enroll", shlex.quote(url)]
    if admin_setup:
        words.append(f"--user-name {_ADMIN_NAME}")
    if uses_internal_ca(settings):
        words.append(f"--ca {CA_FILE}")
    return " ".join(words)


def ca_export_command(settings: Settings, env: Mapping[str, str]) -> str:
    """The command that writes the CA file that :func:`enroll_command` names."""
    return f"{lychgate_command('ca export', settings.data_dir, env)} > {CA_FILE}"


def uses_internal_ca(settings: Settings) -> bool:
    """Whether browsers and devices must be given the internal CA to trust this server."""
    return settings.is_https and settings.tls_cert is None
