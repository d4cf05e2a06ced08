"""``lychgate keys rotate|list``."""

from __future__ import annotations

import typer

from lychgate.cli.common import (
    DirOption,
    out_console,
    print_table,
    reported_errors,
    settings_for,
)
from lychgate.cli.common_store import now, with_store
from lychgate.deployment.keys import rotate_signing_key
from lychgate.domain import SigningKey
from lychgate.store import Store

app = typer.Typer(help="Manage token signing keys.", no_args_is_help=True)


@app.command("rotate")
def rotate(data_dir: DirOption = None) -> None:
    """Sign with a new key from now on; old keys verify until their tokens expire."""
    with reported_errors():
        settings = settings_for(data_dir)
        result = with_store(settings, lambda s: rotate_signing_key(s.signing_keys, now(), settings))
    out_console.print(f"signing with [bold]{result.new_kid}[/]", highlight=False)
    for kid in result.retired:
        out_console.print(
            f"retired {kid}: verifies until {result.verify_until:%Y-%m-%d %H:%M:%S %Z}",
            highlight=False,
        )
    if result.pruned:
        out_console.print(f"deleted {result.pruned} expired key(s)")


@app.command("list")
def list_(data_dir: DirOption = None) -> None:
    """List signing keys (public identifiers only)."""
    with reported_errors():
        keys = with_store(settings_for(data_dir), _list)
    rows = [(k.kid, f"{k.created_at:%Y-%m-%d %H:%M}", _state(k)) for k in keys]
    print_table(("kid", "created", "state"), rows, ids=("kid",))


def _state(key: SigningKey) -> str:
    if key.retired_at is None:
        return "signing"
    return f"verifies until {key.verify_until:%Y-%m-%d %H:%M}"


async def _list(store: Store) -> list[SigningKey]:
    return list(await store.signing_keys.list())
