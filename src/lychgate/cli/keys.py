"""``lychgate keys rotate|list``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from lychgate.cli.common import (
    DirOption,
    print_table,
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

    The new key is published first and signs 10 seconds later, once every gateway knows it,
    so no sign-in or token is refused on the way.
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
def list_(data_dir: DirOption = None) -> None:
    """List signing keys (public identifiers only)."""
    with reported_errors():
        keys = with_store(settings_for(data_dir), _list)
    at = now()
    rows = [(k.kid, f"{k.created_at:%Y-%m-%d %H:%M:%S}", _state(k, at)) for k in keys]
    print_table(("kid", "signs from", "state"), rows, ids=("kid",))


def _state(key: SigningKey, at: datetime) -> str:
    if key.created_at > at:
        return f"published, signs from {key.created_at:%H:%M:%S}"
    if key.retired_at is None:
        return "signing"
    if key.retired_at > at:
        return (
            f"signing until {key.retired_at:%H:%M:%S}, "
            f"verifies until {key.verify_until:%Y-%m-%d %H:%M}"
        )
    return f"verifies until {key.verify_until:%Y-%m-%d %H:%M}"


async def _list(store: Store) -> list[SigningKey]:
    return list(await store.signing_keys.list())
