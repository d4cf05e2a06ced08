"""``lychgate user list|add|enroll-link|disable|enable``."""

from __future__ import annotations

from typing import Annotated

import typer

from lychgate.cli.common import (
    DirOption,
    is_tty,
    out_console,
    print_listing,
    reported_errors,
    settings_for,
)
from lychgate.cli.common_store import now, with_store
from lychgate.config import Settings
from lychgate.deployment.enroll import find_user, issue_enrollment_link, terminal_qr
from lychgate.deployment.users import add_user, disable_user, enable_user
from lychgate.domain import User
from lychgate.ids import SessionId
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
    print_listing(
        users,
        as_json=as_json,
        to_dict=_as_dict,
        columns=("id", "name", "email", "admin", "disabled", "external id"),
        cells=lambda u: (
            u.id,
            u.name,
            u.email or "",
            "yes" if u.is_admin else "",
            "yes" if u.disabled else "",
            u.external_id or "",
        ),
        empty="no users yet",
    )


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Display name.")],
    email: Annotated[str | None, typer.Option("--email", help="E-mail address.")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="Give the admin flag.")] = False,
    data_dir: DirOption = None,
) -> None:
    """Add a user and print a one-time link that enrolls their device."""
    with reported_errors():
        settings = settings_for(data_dir)
        user, url = with_store(settings, lambda store: _add(store, settings, name, email, admin))
    out_console.print(f"added user [bold]{user.name}[/] ({user.id})", highlight=False)
    print_enrollment_link(url)


@app.command("enroll-link")
def enroll_link(
    who: Annotated[str, typer.Argument(help="The user's e-mail address, id or name.")],
    data_dir: DirOption = None,
) -> None:
    """Print a fresh one-time link that enrolls a device for an existing user."""
    with reported_errors():
        settings = settings_for(data_dir)
        user, url = with_store(settings, lambda store: _link(store, settings, who))
    out_console.print(f"user [bold]{user.name}[/] ({user.id})", highlight=False)
    print_enrollment_link(url)


@app.command("disable")
def disable(
    who: Annotated[str, typer.Argument(help="The user's e-mail address, id or name.")],
    data_dir: DirOption = None,
) -> None:
    """Cut a user off: refuse their sign-ins and devices, and end every session of theirs.

    Gateways refuse the user's cookies and close their WebSockets within seconds.

    The last admin cannot be disabled. Undo with `lychgate user enable`.
    """
    with reported_errors():
        user, ended = with_store(settings_for(data_dir), lambda store: _disable(store, who))
    out_console.print(
        f"disabled user [bold]{user.name}[/] ({user.id}); {len(ended)} session(s) ended",
        highlight=False,
    )


@app.command("enable")
def enable(
    who: Annotated[str, typer.Argument(help="The user's e-mail address, id or name.")],
    data_dir: DirOption = None,
) -> None:
    """Let a disabled user sign in again (with their devices; old sessions stay ended)."""
    with reported_errors():
        user = with_store(settings_for(data_dir), lambda store: _enable(store, who))
    out_console.print(f"enabled user [bold]{user.name}[/] ({user.id})", highlight=False)


def print_enrollment_link(url: str, *, what: str = "Enrollment link") -> None:
    """The link on a line of its own (never wrapped), then a QR code when on a terminal."""
    typer.echo(f"{what} (one use, valid 24 hours). On the device to enroll, run:")
    typer.echo(f"  lychgate device enroll {url}")
    if is_tty():
        typer.echo(terminal_qr(url), nl=False)


async def _add(
    store: Store, settings: Settings, name: str, email: str | None, admin: bool
) -> tuple[User, str]:
    at = now()
    user = await add_user(store, name=name, email=email, is_admin=admin, now=at)
    return user, await issue_enrollment_link(store, settings, user.id, at)


async def _link(store: Store, settings: Settings, who: str) -> tuple[User, str]:
    user = await find_user(store, who)
    return user, await issue_enrollment_link(store, settings, user.id, now())


async def _disable(store: Store, who: str) -> tuple[User, list[SessionId]]:
    user = await find_user(store, who)
    return user, await disable_user(store, user, now())


async def _enable(store: Store, who: str) -> User:
    user = await find_user(store, who)
    await enable_user(store, user, now())
    return user


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
