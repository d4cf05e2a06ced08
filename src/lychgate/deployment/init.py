"""``lychgate init``: create or complete a deployment, never destroying what exists.

Two halves, because one is blocking file work and the other talks to the store:

1. :func:`prepare_files` (synchronous; call it outside an event loop): the directory, a
   commented ``lychgate.toml``, ``secrets.json`` and, for https deployments without their own
   certificate, the internal CA and a server certificate.
2. :func:`prepare_store` (async): migrations, the check that secrets.json is the one the
   database records (:func:`check_secrets_fingerprint`), and a signing key if there is none.

Running init again is safe: every step creates only what is missing, and an option that
would change an existing deployment's settings is refused, saying how to change it. So is
running it on a second node of a cluster by mistake: it refuses to make new secrets for a
database that already holds a deployment (:func:`refuse_new_secrets`). A second node is added
by copying secrets.json and lychgate.toml from a node that works and running init there, with
the same options (``--database-url`` included) or none.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from lychgate.config import Settings, load_settings
from lychgate.config.paths import resolve_data_dir
from lychgate.deployment.config_file import config_template
from lychgate.deployment.keys import ensure_signing_key
from lychgate.deployment.layout import Layout
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
from lychgate.store.url import normalize_url, redact
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
    (:func:`refuse_changes`), because init never rewrites what an operator may have edited.
    Without secrets.json, the database must hold no deployment (:func:`refuse_new_secrets`)
    unless ``new_secrets`` says that deployment's secrets are lost.
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
        refuse_new_secrets(requested)
    config_created = _make_directory_and_config(layout, _to_write(asked, requested, env))
    settings = load_settings(root, env)
    check_deployable(settings)
    with _file_errors(root):
        _, secrets_created = ensure_secrets(layout.secrets_file, now)
        _create_private_sqlite_file(settings)
    tls = None
    names = internal_ca_names(settings)
    if names is not None:
        check_internal_ca(layout.tls_dir, names, now)
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


# Options that a new lychgate.toml takes from their environment variable when not given:
# the file then holds what this init set up (the internal CA is made for these names), and
# unsetting the variable later does not move the deployment. Not database_url: a variable
# keeps a password out of files, and init must not undo that.
_WRITTEN_FROM_ENV: Final = ("public_url", "routing", "domain", "listen", "authz_listen")


def _to_write(
    asked: Mapping[str, str | None], requested: Settings, env: Mapping[str, str]
) -> dict[str, str | None]:
    """The options for a new lychgate.toml: those given, and the value in effect of each
    that a ``LYCHGATE_<NAME>`` variable sets (``LYCHGATE_PUBLIC_URL=...`` wrote the default
    ``http://localhost:8080`` while init printed, and made a certificate for, the variable's)."""
    values = dict(asked)
    for name in _WRITTEN_FROM_ENV:
        if values[name] is None and _env_name(name, env) is not None:
            value = getattr(requested, name)
            values[name] = None if value is None else str(value)
    return values


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


def refuse_new_secrets(settings: Settings) -> None:
    """Refuse to make secrets.json for a database that already holds a deployment.

    Every node of a deployment must share one secrets.json: an authz replica with secrets of
    its own serves other assertion and feed keys, and identity assertions then fail with
    ``unknown_kid`` depending on the replica, with nothing in any log. The database holding
    users or signing keys means that ``init`` ran elsewhere (or this node's file was lost).
    Blocking (it runs its own event loop): call it outside one, as :func:`prepare_files`.
    """
    held = asyncio.run(holdings(settings.effective_database_url.reveal()))
    if not held.is_deployment:
        return
    layout = Layout(settings.data_dir)
    raise ConfigError(
        f"the database {held.url} already holds a deployment ({held.users} users, "
        f"{held.signing_keys} signing keys), but {layout.secrets_file} does not exist; "
        "every node of a deployment must share one secrets.json. To add this node, copy "
        f"secrets.json and lychgate.toml from an existing node into {layout.root} (keep "
        "secrets.json mode 0600) and run `lychgate init` again. If this deployment's "
        "secrets.json is lost everywhere, run `lychgate init --new-secrets`, copy the new "
        "file to every node and restart every authz and gateway",
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


def _database(settings: Settings) -> str:
    """The database in effect, normalized: ``postgres://`` and ``postgresql://`` name the
    same one. It may hold a password: show it only through :func:`_shown`."""
    url = normalize_url(settings.effective_database_url.reveal())
    return url.render_as_string(hide_password=False)


# How ``refuse_changes`` reads each option's value in effect (the domain as the apps get it).
_IN_EFFECT: dict[str, Callable[[Settings], str]] = {
    "public_url": lambda s: s.public_url,
    "routing": lambda s: s.routing,
    "domain": lambda s: s.app_domain,
    "database_url": _database,
    "listen": lambda s: s.listen,
    "authz_listen": lambda s: s.effective_authz_listen,
}


def _shown(name: str, value: str) -> str:
    """An option's value as a refusal may print it: a database URL without its password."""
    return redact(normalize_url(value)) if name == "database_url" else value


def _option_and_values(name: str, value: str, have: str, want: str) -> tuple[str, str]:
    """``--option VALUE`` and the value in effect, as a refusal prints them; when the two
    differ only in what is not printed (a password), it says so."""
    option = f"--{name.replace('_', '-')} {_shown(name, value)}"
    shown_have = repr(_shown(name, have))
    if _shown(name, have) == _shown(name, want):
        shown_have += " with another password"
    return option, shown_have


def _differences(
    current: Settings, requested: Settings, asked: Mapping[str, str | None]
) -> Iterator[tuple[str, str, str]]:
    """The options given whose value differs from the one in effect (``current``):
    ``(name, "--option VALUE", the value in effect)``, as a refusal prints them."""
    for name, value in asked.items():
        if value is None:
            continue
        have, want = _IN_EFFECT[name](current), _IN_EFFECT[name](requested)
        if have != want:
            yield name, *_option_and_values(name, value, have, want)


def refuse_changes(
    current: Settings, requested: Settings, asked: Mapping[str, str | None], env: Mapping[str, str]
) -> None:
    """Refuse an init option that differs from the existing deployment's setting, naming the
    setting, its value, where it comes from and how to change it.

    Silently keeping the old value misled operators (the printed Public URL was the old one);
    rewriting lychgate.toml would lose their edits, and a new host needs a new internal CA.
    An option equal to the value in effect is fine: init stays idempotent.
    """
    for name, option, shown_have in _differences(current, requested, asked):
        raise ConfigError(
            f"{option}: this deployment's {name} is {shown_have} "
            f"({_where(name, current, env)}); init does not change an existing deployment. "
            f"To change it, {_how_to_change(name, current, env)} and run `lychgate init` "
            f"again{_then(requested)}",
            field=name,
        )


def refuse_overridden(
    current: Settings, requested: Settings, asked: Mapping[str, str | None], env: Mapping[str, str]
) -> None:
    """For a new deployment, refuse an init option that an environment variable overrides.

    init writes the option into the new lychgate.toml, but ``LYCHGATE_<NAME>`` takes
    precedence over that file, this run included: with ``--database-url`` the deployment
    would be made in the variable's database, while lychgate.toml names another.
    ``current``: the settings without the options (the environment and the defaults).
    """
    for name, option, shown_have in _differences(current, requested, asked):
        variable = _env_name(name, env)
        if variable is None:
            continue
        raise ConfigError(
            f"{option}: the environment variable {variable} sets {name} to {shown_have}, and "
            "it takes precedence over lychgate.toml, where init would write the option. Unset "
            f"{variable} (or give the option its value) and run `lychgate init` again",
            field=name,
        )


def _then(requested: Settings) -> str:
    """What running init again checks where an internal CA exists: whether it must go."""
    if internal_ca_names(requested) is None or not Layout(requested.data_dir).tls_dir.exists():
        return ""
    return ", which says if the internal CA must be replaced (`lychgate ca rotate`)"


def _env_name(name: str, env: Mapping[str, str]) -> str | None:
    """The environment variable that sets ``name``, if one does (names match in any case)."""
    wanted = f"LYCHGATE_{name.upper()}"
    return next((key for key in env if key.upper() == wanted), None)


def _where(name: str, current: Settings, env: Mapping[str, str]) -> str:
    variable = _env_name(name, env)
    if variable is not None:
        return f"from the environment variable {variable}"
    if name in _read_config_keys(current):
        return f"from {Layout(current.data_dir).config_file}"
    return "the default"


def _how_to_change(name: str, current: Settings, env: Mapping[str, str]) -> str:
    variable = _env_name(name, env)
    if variable is not None:
        return f"change the environment variable {variable}"
    return f"edit {name} in {Layout(current.data_dir).config_file}"


def _read_config_keys(current: Settings) -> set[str]:
    with Layout(current.data_dir).config_file.open("rb") as f:
        return set(tomllib.load(f))


def check_internal_ca(tls_dir: Path, names: Sequence[str], now: datetime) -> None:
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
    if refused:
        raise ConfigError(
            f"the internal CA may not certify {', '.join(refused)}: it is name-constrained to "
            "the host names it was made for, before public_url, routing or domain changed. "
            f"Run `lychgate ca rotate --dir {tls_dir.parent}` to make a new one, then give "
            "your devices the new CA (lychgate ca export)",
            field="tls_dir",
        )
    if ca.not_valid_after_utc - now < RENEW_BEFORE:
        raise ConfigError(
            f"the internal CA expires on {ca.not_valid_after_utc:%Y-%m-%d}. Run `lychgate ca "
            f"rotate --dir {tls_dir.parent}` to make a new one, then give your devices the "
            "new CA (lychgate ca export)",
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
