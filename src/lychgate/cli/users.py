"""``lychgate user list|add``."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from lychgate.cli.common import DirOption, out_console, reported_errors, settings_for
from lychgate.cli.common_store import now, with_store
from lychgate.deployment.users import add_user
from lychgate.domain import User
from lychgate.store import Store

app = typer.Typer(help="Manage users.", no_args_is_help=True)


@app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    data_dir: DirOption = None,
) -> None:
    """List users."""
    with reported_errors():
        users = with_store(settings_for(data_dir), _list)
    if as_json:
        typer.echo(json.dumps([_as_dict(u) for u in users], indent=2))
        return
    if not users:
        out_console.print("no users yet")
        return
    table = Table("id", "name", "email", "admin", "disabled", "external id")
    for u in users:
        table.add_row(
            u.id,
            u.name,
            u.email or "",
            "yes" if u.is_admin else "",
            "yes" if u.disabled else "",
            u.external_id or "",
        )
    out_console.print(table)


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Display name.")],
    email: Annotated[str | None, typer.Option("--email", help="E-mail address.")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="Give the admin flag.")] = False,
    data_dir: DirOption = None,
) -> None:
    """Add a user."""
    with reported_errors():
        user = with_store(
            settings_for(data_dir),
            lambda store: add_user(store, name=name, email=email, is_admin=admin, now=now()),
        )
    out_console.print(f"added user [bold]{user.name}[/] ({user.id})", highlight=False)


async def _list(store: Store) -> list[User]:
    return list(await store.users.list())


def _as_dict(u: User) -> dict[str, object]:
    return {
        "id": u.id,
        "name": u.name,
        "email": u.email,
        "is_admin": u.is_admin,
        "disabled": u.disabled,
        "external_id": u.external_id,
        "created_at": u.created_at.isoformat(),
    }
