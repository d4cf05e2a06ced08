"""What ``lychgate init`` makes of its options, given the settings already in effect.

init's options (``--public-url``, ``--database-url``, ...) are for a new deployment, and init
never rewrites what an operator may have edited. So on an existing deployment an option that
differs from the setting in effect is refused (:func:`refuse_changes`), and on a new one so is
an option that an environment variable overrides (:func:`refuse_overridden`); each refusal
names the setting, where its value comes from and how to change it. :func:`options_to_write`
picks what a new lychgate.toml holds.
"""

from __future__ import annotations

import shlex
import tomllib
from collections.abc import Callable, Iterator, Mapping
from typing import Final

from lychgate.config import Settings
from lychgate.deployment.layout import Layout
from lychgate.deployment.next_steps import lychgate_command, uses_internal_ca
from lychgate.errors import ConfigError
from lychgate.store.url import backend_of, normalize_url, redact

# Options that a new lychgate.toml takes from their environment variable when not given:
# the file then holds what this init set up (the internal CA is made for these names), and
# unsetting the variable later does not move the deployment. Not database_url: a variable
# keeps a password out of files, and init must not undo that.
_WRITTEN_FROM_ENV: Final = ("public_url", "routing", "domain", "listen", "authz_listen")


def options_to_write(
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
    return shown_database_url(value) if name == "database_url" else value


def shown_option(name: str, value: str) -> str:
    """``--option VALUE`` as a printed command or a refusal gives it (:func:`_shown`)."""
    return f"--{name.replace('_', '-')} {shlex.quote(_shown(name, value))}"


def shown_database_url(raw: str) -> str:
    """A database URL as an operator writes it: without its password, and without the async
    driver we run it on (``postgresql+asyncpg://``), which no operator gave and which the
    ``psql`` they check it with would not take."""
    url = normalize_url(raw)
    return redact(url.set(drivername=backend_of(url)))


def _option_and_values(name: str, value: str, have: str, want: str) -> tuple[str, str]:
    """``--option VALUE`` and the value in effect, as a refusal prints them; when the two
    differ only in what is not printed (a password), it says so."""
    option = shown_option(name, value)
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
            f"To change it, {_how_to_change(name, current, env)} and run "
            f"`{lychgate_command('init', current.data_dir, env)}` again{_then(requested, env)}",
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
            f"{variable} (or give the option its value) and run "
            f"`{lychgate_command('init', current.data_dir, env)}` again with your options",
            field=name,
        )


def _then(requested: Settings, env: Mapping[str, str]) -> str:
    """What running init again checks where an internal CA exists: whether it must go."""
    if not uses_internal_ca(requested) or not Layout(requested.data_dir).tls_dir.exists():
        return ""
    rotate = lychgate_command("ca rotate", requested.data_dir, env)
    return f", which says if the internal CA must be replaced (`{rotate}`)"


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
