"""``lychgate user``: list, add, enroll-link, cancel-links, disable, enable, update, devices and
revoke-device."""

from __future__ import annotations

import shlex
from typing import Annotated

import typer

from lychgate.cli.common import (
    DirOption,
    environment,
    is_tty,
    note,
    print_listing,
    reported_errors,
    say,
    settings_for,
)
from lychgate.cli.common_store import now, with_store
from lychgate.config import Settings
from lychgate.deployment.devices import devices_of, revoke_device
from lychgate.deployment.enroll import (
    find_user,
    issue_enrollment_link,
    terminal_qr,
    users_named,
)
from lychgate.deployment.next_steps import enroll_lines, lychgate_command
from lychgate.deployment.users import (
    add_user,
    all_users,
    cancel_links,
    disable_user,
    enable_user,
    set_admin,
)
from lychgate.domain import Device, User
from lychgate.errors import Conflict
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
        ids=("id",),
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
        user, url, namesakes = with_store(
            settings, lambda store: _add(store, settings, name, email, admin)
        )
    say("added user [bold]{}[/] ({})", user.name, user.id)
    if namesakes:
        note(
            "note: {} users are now named {!r}: commands that take a user need this one's "
            "e-mail or id ({})",
            namesakes + 1,
            user.name,
            user.id,
        )
    print_enrollment_link(url, settings)


@app.command("enroll-link")
def enroll_link(
    who: Annotated[str, typer.Argument(help="The user's e-mail address, id or name.")],
    data_dir: DirOption = None,
) -> None:
    """Print a fresh one-time link that enrolls a device for an existing user."""
    with reported_errors():
        settings = settings_for(data_dir)
        user, url = with_store(settings, lambda store: _link(store, settings, who))
    say("user [bold]{}[/] ({})", user.name, user.id)
    print_enrollment_link(url, settings)


@app.command("cancel-links")
def cancel_links_(
    who: Annotated[str, typer.Argument(help="The user's e-mail address, id or name.")],
    data_dir: DirOption = None,
) -> None:
    """Cancel every enrollment link of a user not used yet (sent to the wrong place, or lost).

    Devices already enrolled stay; `lychgate user enroll-link` prints a new link.
    """
    with reported_errors():
        user, cancelled = with_store(settings_for(data_dir), lambda store: _cancel(store, who))
    say("user [bold]{}[/] ({}): {} enrollment link(s) cancelled", user.name, user.id, cancelled)


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
    if user.disabled:  # as found: nothing to switch, only a sweep (none left, as a rule)
        ending = f"; {len(ended)} session(s) ended" if ended else ""
        say("user [bold]{}[/] ({}) is already disabled{}", user.name, user.id, ending)
        return
    say("disabled user [bold]{}[/] ({}); {} session(s) ended", user.name, user.id, len(ended))


@app.command("enable")
def enable(
    who: Annotated[str, typer.Argument(help="The user's e-mail address, id or name.")],
    data_dir: DirOption = None,
) -> None:
    """Let a disabled user sign in again (with their devices; old sessions stay ended)."""
    with reported_errors():
        user, changed = with_store(settings_for(data_dir), lambda store: _enable(store, who))
    if not changed:
        say("user [bold]{}[/] ({}) is already enabled", user.name, user.id)
        return
    say("enabled user [bold]{}[/] ({})", user.name, user.id)


@app.command("update")
def update(
    who: Annotated[str, typer.Argument(help="The user's e-mail address, id or name.")],
    admin: Annotated[
        bool | None,
        typer.Option("--admin/--no-admin", help="Give or take away the admin flag."),
    ] = None,
    data_dir: DirOption = None,
) -> None:
    """Change a user: make them an admin, or no longer one.

    Taking the flag away ends their sessions (their tokens say admin); they sign in again.

    The last admin keeps it.
    """
    if admin is None:
        note("nothing to change: give --admin or --no-admin (see --help)")
        raise typer.Exit(2)
    with reported_errors():
        user, ended = with_store(
            settings_for(data_dir), lambda store: _set_admin(store, who, admin)
        )
    role = "an admin" if admin else "not an admin"
    ending = f"; {len(ended)} session(s) ended" if ended else ""
    say("user [bold]{}[/] ({}) is {}{}", user.name, user.id, role, ending)


@app.command("devices")
def devices(
    who: Annotated[str, typer.Argument(help="The user's e-mail address, id or name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    data_dir: DirOption = None,
) -> None:
    """List a user's devices (key files and passkeys), revoked ones too."""
    with reported_errors():
        found = with_store(settings_for(data_dir), lambda store: _devices(store, who))
    print_listing(
        found,
        as_json=as_json,
        to_dict=_device_dict,
        columns=("id", "name", "kind", "enrolled", "last used", "revoked"),
        cells=lambda d: (
            d.id,
            d.name,
            d.kind,
            f"{d.created_at:%Y-%m-%d %H:%M}",
            f"{d.last_used_at:%Y-%m-%d %H:%M}" if d.last_used_at else "",
            "yes" if d.revoked else "",
        ),
        empty="no devices",
        ids=("id",),
    )


@app.command("revoke-device")
def revoke_device_(
    who: Annotated[str, typer.Argument(help="The user's e-mail address, id or name.")],
    device: Annotated[
        str,
        typer.Argument(help="The device's id, or its name if no other of the user's has it."),
    ],
    data_dir: DirOption = None,
) -> None:
    """Cut off one device (lost or stolen) and sign out the browsers it approved.

    The user keeps their other devices; enroll a new one with `lychgate user enroll-link`.
    """
    with reported_errors():
        settings = settings_for(data_dir)
        listing = lychgate_command(
            f"user devices {shlex.quote(who)}", settings.data_dir, environment()
        )
        revoked, ended = with_store(
            settings, lambda store: _revoke_device(store, who, device, listing)
        )
    say(
        "revoked device [bold]{}[/] ({}); {} session(s) ended", revoked.name, revoked.id, len(ended)
    )


def print_enrollment_link(url: str, settings: Settings, *, admin_setup: bool = False) -> None:
    """The command to run on the device, on a line of its own (never wrapped), then a QR code
    when on a terminal. The command must work as printed (:func:`enroll_lines`)."""
    what = "Admin setup link" if admin_setup else "Enrollment link"
    typer.echo(f"{what} (one use, valid 24 hours). On the device to enroll, run:")
    for line in enroll_lines(url, settings, environment(), admin_setup=admin_setup):
        typer.echo(f"  {line}")
    if is_tty():
        typer.echo(terminal_qr(url), nl=False)


async def _add(
    store: Store, settings: Settings, name: str, email: str | None, admin: bool
) -> tuple[User, str, int]:
    """The new user, their enrollment link, and how many others have the same name."""
    at = now()
    user = await add_user(store, name=name, email=email, is_admin=admin, now=at)
    namesakes = len(await users_named(store, user.name)) - 1
    return user, await issue_enrollment_link(store, settings, user.id, at), namesakes


async def _link(store: Store, settings: Settings, who: str) -> tuple[User, str]:
    user = await find_user(store, who)
    return user, await issue_enrollment_link(store, settings, user.id, now())


async def _cancel(store: Store, who: str) -> tuple[User, int]:
    user = await find_user(store, who)
    return user, await cancel_links(store, user, now())


async def _disable(store: Store, who: str) -> tuple[User, list[SessionId]]:
    """The user as found (``disabled`` set when they already were) and the sessions ended.

    An already disabled user is still swept (:func:`disable_user`), harmlessly."""
    user = await find_user(store, who)
    return user, await disable_user(store, user, now())


async def _devices(store: Store, who: str) -> list[Device]:
    return await devices_of(store, await find_user(store, who))


async def _revoke_device(
    store: Store, who: str, device: str, listing: str
) -> tuple[Device, list[SessionId]]:
    user = await find_user(store, who)
    devices = await devices_of(store, user)
    return await revoke_device(store, user, _device_id(user, devices, device, listing), now())


def _device_id(user: User, devices: list[Device], device: str, listing: str) -> str:
    """The id of ``user``'s device named by ``device``: its id, or its name, as ``user
    devices`` lists them both and a name is what people remember. A name that more than one
    of their devices has is refused, unless only one of those is not revoked yet, pointing
    to ``listing``, the command that lists their ids."""
    if any(d.id == device for d in devices):
        return device
    named = [d for d in devices if d.name == device]
    if len(named) > 1:
        named = [d for d in named if not d.revoked] or named
    if len(named) > 1:
        raise Conflict(
            f"{len(named)} devices of {user.name} are named {device!r}; give the id of "
            f"the one to revoke ({listing})",
            field="device",
        )
    return named[0].id if named else device  # none: revoke_device says it is not theirs


def _device_dict(d: Device) -> dict[str, object]:
    return {
        "id": d.id,
        "name": d.name,
        "kind": d.kind,
        "created_at": d.created_at.isoformat(),
        "last_used_at": d.last_used_at.isoformat() if d.last_used_at else None,
        "revoked": d.revoked,
    }


async def _set_admin(store: Store, who: str, admin: bool) -> tuple[User, list[SessionId]]:
    user = await find_user(store, who)
    ended = await set_admin(store, user, admin, now())
    return await store.users.get(user.id), ended


async def _enable(store: Store, who: str) -> tuple[User, bool]:
    """The user, and whether they were disabled (else nothing changed)."""
    user = await find_user(store, who)
    return user, await enable_user(store, user, now())


async def _list(store: Store) -> list[User]:
    return await all_users(store)  # store.users.list() alone stopped at 1,000, silently


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
