"""``lychgate keys rotate|list``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from lychgate.cli.common import (
    DirOption,
    print_listing,
    reported_errors,
    say,
    settings_for,
)
from lychgate.cli.common_store import now, with_store
from lychgate.deployment.keys import rotate_signing_key
from lychgate.domain import SigningKey
from lychgate.store import Store

app = typer.Typer(help="Manage token signing keys.", no_args_is_help=True)


@app.command("rotate")
def rotate(
    compromised: Annotated[
        bool,
        typer.Option(
            "--compromised",
            help="The old keys leaked: stop trusting them at once (everyone signs in again).",
        ),
    ] = False,
    data_dir: DirOption = None,
) -> None:
    """Sign with a new key; old keys verify until their tokens expire.

    The new key is published first, and signs 10 seconds later, once every gateway knows it.

    So no sign-in or token is refused on the way.
    """
    with reported_errors():
        settings = settings_for(data_dir)
        result = with_store(
            settings,
            lambda s: rotate_signing_key(s.signing_keys, now(), settings, compromised=compromised),
        )
    say("new key [bold]{}[/]: signs from {:%H:%M:%S %Z}", result.new_kid, result.signs_from)
    for kid in result.retired:
        if compromised:
            say("dropped {}: every token it signed is refused from now", kid)
        else:
            say(
                "retired {}: signs until {:%H:%M:%S %Z}, verifies until {:%Y-%m-%d %H:%M:%S %Z}",
                kid,
                result.signs_from,
                result.verify_until,
            )
    if result.pruned and not compromised:
        say("deleted {} expired key(s)", result.pruned)


@app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    data_dir: DirOption = None,
) -> None:
    """List signing keys (public identifiers only)."""
    with reported_errors():
        keys = with_store(settings_for(data_dir), _list)
    at = now()
    print_listing(
        keys,
        as_json=as_json,
        to_dict=lambda k: _as_dict(k, at),
        columns=("kid", "signs from", "state"),
        cells=lambda k: (k.kid, f"{k.created_at:%Y-%m-%d %H:%M:%S}", _state(k, at)),
        empty="no signing keys: lychgate keys rotate",
        ids=("kid",),
    )


def _state(key: SigningKey, at: datetime) -> str:
    """What the key does at ``at``, as the keyring decides (:class:`lychgate.tokens.Keyring`):
    a key signs from ``created_at`` until ``retired_at``. A key rotated away before it began
    to sign (two rotations within the publishing head start) signs only until the next one,
    or never: "signs from" alone would promise more than it will do."""
    if key.created_at > at:
        return f"published, {_future_signing(key)}"
    if key.retired_at is None:
        return "signing"
    if key.retired_at > at:
        return (
            f"signing until {key.retired_at:%H:%M:%S}, "
            f"verifies until {key.verify_until:%Y-%m-%d %H:%M}"
        )
    return f"verifies until {key.verify_until:%Y-%m-%d %H:%M}"


def _future_signing(key: SigningKey) -> str:
    """When a key not signing yet will sign, if ever."""
    if key.retired_at is None:
        return f"signs from {key.created_at:%H:%M:%S}"
    verifies = f"verifies until {key.verify_until:%Y-%m-%d %H:%M}"
    if key.retired_at <= key.created_at:
        return f"rotated away before it signs, {verifies}"
    return f"signs from {key.created_at:%H:%M:%S} until {key.retired_at:%H:%M:%S}, {verifies}"


def _as_dict(key: SigningKey, at: datetime) -> dict[str, object]:
    """A key's public facts for ``--json``: its times, and the state the table shows."""
    return {
        "kid": key.kid,
        "signs_from": key.created_at.isoformat(),
        "signs_until": key.retired_at.isoformat() if key.retired_at else None,
        "verifies_until": key.verify_until.isoformat() if key.verify_until else None,
        "state": _state(key, at),
    }


async def _list(store: Store) -> list[SigningKey]:
    return list(await store.signing_keys.list())
