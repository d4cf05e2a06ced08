"""``lychgate init``: create or complete a deployment, never destroying what exists.

Two halves, because one is blocking file work and the other talks to the store:

1. :func:`prepare_files` (synchronous; call it outside an event loop): the directory, a
   commented ``lychgate.toml``, ``secrets.json`` and, for https deployments without their own
   certificate, the internal CA and a server certificate.
2. :func:`prepare_store` (async): migrations, the check that secrets.json is the one the
   database records (:func:`check_secrets_fingerprint`), and a signing key if there is none.

Running init again is safe: every step creates only what is missing, and an option that
would change an existing deployment's settings is refused, saying how to change it
(:mod:`lychgate.deployment.init_options`). So is running it on a second node of a cluster by
mistake: it refuses to make new secrets for a database that already holds a deployment
(:func:`refuse_new_secrets`). A second node is added by copying secrets.json and lychgate.toml
from a node that works and running init there, with the same options (``--database-url``
included) or none.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from lychgate.config import Settings, load_settings
from lychgate.config.paths import resolve_data_dir
from lychgate.deployment.config_file import config_template
from lychgate.deployment.init_options import (
    options_to_write,
    refuse_changes,
    refuse_overridden,
    shown_database_url,
    shown_option,
)
from lychgate.deployment.keys import ensure_signing_key
from lychgate.deployment.layout import Layout
from lychgate.deployment.next_steps import lychgate_command
from lychgate.deployment.secrets import (
    DeploymentSecrets,
    ensure_secrets,
    load_secrets,
    secrets_fingerprint,
)
from lychgate.deployment.transport import check_transport, internal_ca_names
from lychgate.errors import ConfigError
from lychgate.files import DIR_MODE, PRIVATE_MODE, restrict_mode, write_atomic
from lychgate.ids import KeyId
from lychgate.store import Store, open_store
from lychgate.store.probe import holdings
from lychgate.store.url import normalize_url
from lychgate.tls.constraints import not_permitted
from lychgate.tls.files import RENEW_BEFORE, TlsPaths, ensure_tls_material, load_ca

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FilesReport:
    settings: Settings
    config_created: bool
    secrets_created: bool
    tls: TlsPaths | None
    # New secrets that ``--new-secrets`` asked for: the database's record of the deployment's
    # secrets is to be replaced with theirs (:func:`prepare_store`).
    secrets_replaced: bool = False


def prepare_files(
    data_dir: Path | None,
    env: Mapping[str, str],
    *,
    public_url: str | None = None,
    routing: str | None = None,
    domain: str | None = None,
    database_url: str | None = None,
    listen: str | None = None,
    authz_listen: str | None = None,
    now: datetime,
    new_secrets: bool = False,
) -> FilesReport:
    """Create what is missing in the deployment directory and return its settings.

    The options are for a new deployment: on an existing one they must match its settings
    (:func:`~lychgate.deployment.init_options.refuse_changes`), because init never rewrites
    what an operator may have edited. Without secrets.json, the database must hold no
    deployment (:func:`refuse_new_secrets`) unless ``new_secrets`` says that deployment's
    secrets are lost.
    """
    root = resolve_data_dir(data_dir, env)
    layout = Layout(root)
    asked = {
        "public_url": public_url,
        "routing": routing,
        "domain": domain,
        "database_url": database_url,
        "listen": listen,
        "authz_listen": authz_listen,
    }
    # Validate the requested values before writing anything (the directory included), so a
    # typo leaves nothing behind.
    requested = load_settings(root, env, **asked)
    check_deployable(requested)
    if layout.config_file.exists():
        refuse_changes(load_settings(root, env), requested, asked, env)
    else:
        refuse_overridden(load_settings(root, env), requested, asked, env)
    if not new_secrets and not layout.secrets_file.exists():
        refuse_new_secrets(requested, asked, env)
    config_created = _make_directory_and_config(layout, options_to_write(asked, requested, env))
    settings = load_settings(root, env)
    check_deployable(settings)
    with _file_errors(root):
        _, secrets_created = ensure_secrets(layout.secrets_file, now)
        _create_private_sqlite_file(settings)
    tls = None
    names = internal_ca_names(settings)
    if names is not None:
        check_internal_ca(layout.tls_dir, names, now, env)
        tls = ensure_tls_material(layout.tls_dir, names, now=now)
    return FilesReport(
        settings, config_created, secrets_created, tls, new_secrets and secrets_created
    )


def _make_directory_and_config(layout: Layout, options: Mapping[str, str | None]) -> bool:
    """Make the data directory and, if it has none, a lychgate.toml holding ``options``;
    returns whether the file was made."""
    config_created = False
    with _file_errors(layout.root):
        layout.root.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        # A directory made beforehand (mkdir, at the umask's 0755) holds the secrets too: only
        # its owner may enter it. The config is private as well: database_url may hold a
        # password.
        _narrow(layout.root, DIR_MODE)
        if not layout.config_file.exists():
            text = config_template(**options)
            write_atomic(layout.config_file, text.encode(), mode=PRIVATE_MODE, overwrite=False)
            config_created = True
        _narrow(layout.config_file, PRIVATE_MODE)
    return config_created


@contextmanager
def _file_errors(root: Path) -> Iterator[None]:
    """A data directory that cannot be made or written (``/proc/x``, ``/sys/...``, a
    read-only mount) as one ConfigError naming the path, not a traceback."""
    try:
        yield
    except OSError as exc:
        why = exc.strerror or str(exc)
        if exc.filename is not None and str(exc.filename) != str(root):
            why = f"{exc.filename}: {why}"
        raise ConfigError(
            f"cannot create the deployment in {root} ({why}): give --dir a directory this "
            "user may create and write",
            field="data_dir",
        ) from None


def _narrow(path: Path, mode: int) -> None:
    """:func:`restrict_mode`, for what this user owns: a config that an operator's tooling owns
    (root, 0640) or mounts read-only (a ConfigMap) is theirs to keep as it is; say so."""
    try:
        if path.stat().st_uid == os.geteuid():
            restrict_mode(path, mode)
            return
    except OSError as exc:
        log.warning("could not narrow %s to %o: %s", path, mode, exc.strerror or exc)
        return
    current = path.stat().st_mode & 0o777
    if current & ~mode:
        log.warning("%s is mode %o and not this user's: leaving it as it is", path, current)


def refuse_new_secrets(
    settings: Settings, asked: Mapping[str, str | None], env: Mapping[str, str]
) -> None:
    """Refuse to make secrets.json for a database that already holds a deployment.

    Every node of a deployment must share one secrets.json: an authz replica with secrets of
    its own serves other assertion and feed keys, and identity assertions then fail with
    ``unknown_kid`` depending on the replica, with nothing in any log. The database holding
    users or signing keys means that ``init`` ran elsewhere (or this node's file was lost).
    The refusal gives both ways on as whole commands (``asked``: init's options, which the
    second way needs again, as nothing was written). Blocking (it runs its own event loop):
    call it outside one, as :func:`prepare_files`.
    """
    raw_url = settings.effective_database_url.reveal()
    held = asyncio.run(holdings(raw_url))
    if not held.is_deployment:
        return
    layout = Layout(settings.data_dir)
    again = lychgate_command("init", layout.root, env)
    options = "".join(
        f" {shown_option(name, value)}" for name, value in asked.items() if value is not None
    )
    anew = lychgate_command(f"init --new-secrets{options}", layout.root, env)
    raise ConfigError(
        f"the database {shown_database_url(raw_url)} already holds a deployment "
        f"({held.users} users, {held.signing_keys} signing keys), but {layout.secrets_file} "
        "does not exist; every node of a deployment must share one secrets.json. To add this "
        f"node, copy secrets.json and lychgate.toml from an existing node into {layout.root} "
        f"(keep secrets.json mode 0600) and run `{again}`. If this deployment's secrets.json "
        f"is lost everywhere, run `{anew}`, copy the new file to every node and restart every "
        "authz and gateway",
        field="secrets",
    )


def check_deployable(settings: Settings) -> None:
    """Everything about ``settings`` that would stop init halfway: the database URL's form
    (:func:`~lychgate.store.url.normalize_url`; settings take any string), the transport, and
    the host names an internal CA must certify (:func:`~lychgate.tls.hosts.hostnames_for`
    refuses an app domain such as ``com``)."""
    normalize_url(settings.effective_database_url.reveal())
    check_transport(settings)
    internal_ca_names(settings)


def check_internal_ca(
    tls_dir: Path, names: Sequence[str], now: datetime, env: Mapping[str, str]
) -> None:
    """Refuse, naming ``lychgate ca rotate``, an internal CA that cannot serve ``names``.

    :func:`~lychgate.tls.files.ensure_tls_material` refuses the same CAs, but tells the
    operator to move its files away by hand; ``ca rotate`` does that safely (it keeps the old
    files, renamed) and is the documented way. A missing or half-made CA is left to
    ``ensure_tls_material``, which makes or explains it.
    """
    paths = TlsPaths.in_dir(tls_dir)
    if not (paths.ca_cert.exists() and paths.ca_key.exists()):
        return
    ca = load_ca(tls_dir).certificate
    refused = not_permitted(ca, names)
    rotate = lychgate_command("ca rotate", tls_dir.parent, env)
    export = lychgate_command("ca export", tls_dir.parent, env)
    if refused:
        raise ConfigError(
            f"the internal CA may not certify {', '.join(refused)}: it is name-constrained to "
            "the host names it was made for, before public_url, routing or domain changed. "
            f"Run `{rotate}` to make a new one, then give your devices the new CA ({export})",
            field="tls_dir",
        )
    if ca.not_valid_after_utc - now < RENEW_BEFORE:
        raise ConfigError(
            f"the internal CA expires on {ca.not_valid_after_utc:%Y-%m-%d}. Run `{rotate}` "
            f"to make a new one, then give your devices the new CA ({export})",
            field="tls_dir",
        )


async def prepare_store(
    settings: Settings, now: datetime, *, replace_secrets: bool = False
) -> KeyId | None:
    """Migrate the store, check (or record) the fingerprint of secrets.json, and create the
    first signing key. Returns a new kid, if any.

    ``replace_secrets``: secrets.json was just made anew by ``--new-secrets``
    (:attr:`FilesReport.secrets_replaced`), so its fingerprint replaces the recorded one.
    """
    secrets_file = Layout(settings.data_dir).secrets_file
    secrets = await asyncio.to_thread(load_secrets, secrets_file)
    async with await open_store(settings.effective_database_url.reveal()) as store:
        await check_secrets_fingerprint(store, secrets, secrets_file, replace=replace_secrets)
        return await ensure_signing_key(store.signing_keys, now)


async def check_secrets_fingerprint(
    store: Store, secrets: DeploymentSecrets, secrets_file: Path, *, replace: bool = False
) -> bool:
    """Refuse secrets that differ from the deployment's; returns whether it recorded them.

    The database records a one-way fingerprint of the deployment's secrets
    (:func:`~lychgate.deployment.secrets.secrets_fingerprint`). None recorded yet (a new or an
    older deployment): record these, unless another node recorded its own at the same moment,
    which then stands. Recorded and equal: go on. Recorded and different: a ConfigError naming
    ``secrets_file``, since a node with other secrets serves other assertion and feed keys,
    and apps see ``unknown_kid`` depending on the replica. ``replace``: these are new secrets
    (``lychgate init --new-secrets``), so they replace the recorded ones.
    """
    mine = secrets_fingerprint(secrets)
    if replace:
        await store.deployment.replace_secrets_fingerprint(mine)
        return True
    recorded = await store.deployment.secrets_fingerprint()
    if recorded is None:
        recorded = await store.deployment.record_secrets_fingerprint(mine)
        if recorded == mine:
            return True
    if recorded == mine:
        return False
    raise ConfigError(
        f"{secrets_file} is not this deployment's secrets.json: the database {store.url} "
        "records other secrets, those of the deployment's other nodes, and with this file "
        "this node would serve other keys (apps would see unknown_kid depending on the "
        f"node). Copy secrets.json from a node that works into {secrets_file.parent} (keep "
        "it mode 0600) and start this node again. If `lychgate init --new-secrets` replaced "
        "the deployment's secrets, the new file is on the node where it ran: copy it from "
        "there to every node",
        field="secrets",
    )


def _create_private_sqlite_file(settings: Settings) -> None:
    """The SQLite file holds signing keys: create it 0600 (its -wal/-shm inherit the mode)."""
    url = settings.effective_database_url.reveal()
    for prefix in ("sqlite:///", "sqlite+aiosqlite:///"):
        if url.startswith(prefix):
            path = Path(url.removeprefix(prefix))
            if path.name and not path.exists():
                path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE))
            elif path.exists():
                restrict_mode(path, PRIVATE_MODE)
