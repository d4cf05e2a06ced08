"""``lychgate device``: the CLI authenticator.

Thin commands over :mod:`lychgate.device`. Every command takes ``--key FILE``; the network
commands also take ``--ca FILE``. Tests hand an in-process server to the commands through
the click context object (a :class:`~lychgate.device.client.Connector`).
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from lychgate.cli.common import err_console, out_console, print_listing, reported_errors
from lychgate.device.client import Connector
from lychgate.device.keyfile import (
    KeyFile,
    PendingKeyFile,
    default_key_path,
    load_key_file,
    reserve_key_file,
)
from lychgate.device.qrimage import link_from
from lychgate.device.runner import Enrolled, enroll_device, open_enrolled
from lychgate.device.urls import parse_enrollment_url, parse_login_url, portal_url
from lychgate.device.wire import AppEntry, LoginContext, SessionEntry, printable
from lychgate.devicesig import b64url
from lychgate.domain import LoginStatus
from lychgate.errors import ClientError, Conflict, LychgateError
from lychgate.ids import LoginRequestId

app = typer.Typer(
    help="The CLI authenticator: enroll, approve sign-ins, open apps.", no_args_is_help=True
)
sessions_app = typer.Typer(
    help="List your signed-in browsers (or revoke one).", invoke_without_command=True
)
app.add_typer(sessions_app, name="sessions")

KeyOption = Annotated[
    Path | None,
    typer.Option(
        "--key",
        help="Device key file. Default: $LYCHGATE_DEVICE_KEY, else "
        "$XDG_CONFIG_HOME/lychgate/device.json, else ~/.config/lychgate/device.json.",
        show_default=False,
    ),
]
CaOption = Annotated[
    Path | None,
    typer.Option(
        "--ca",
        help="Trust this CA certificate (PEM, from `lychgate ca export`) for the server.",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
LinkArgument = Annotated[
    str, typer.Argument(help="The sign-in link, or a PNG image of the login page's QR code.")
]


@app.command("enroll")
def enroll(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(help="The enrollment link (…/.lychgate/enroll/<code>).")],
    name: Annotated[str | None, typer.Option("--name", help="A name for this device.")] = None,
    user_name: Annotated[
        str | None,
        typer.Option(
            "--user-name",
            help="Your name, as the first admin: needed by the setup link of `lychgate init`, "
            "ignored (whatever it holds) by any other link, whose user already has a name.",
        ),
    ] = None,
    email: Annotated[
        str | None,
        typer.Option(
            "--email",
            help="Your e-mail address, as the first admin: optional with the setup link, "
            "ignored (whatever it holds) by any other link.",
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing key file.")] = False,
    key: KeyOption = None,
    ca: CaOption = None,
) -> None:
    """Enroll this computer as a device, with a new key saved 0600 in the key file."""
    with reported_errors():
        path = _key_path(key)
        link = parse_enrollment_url(url)
        # The key file's place is checked and claimed before the one-time link is spent.
        with reserve_key_file(path, overwrite=force) as pending:
            key_file = enroll_device(
                link,
                name=name or f"{socket.gethostname()} (CLI)",
                user_name=user_name,
                email=email,
                ca=ca,
                connector=_connector(ctx),
                now=datetime.now(UTC),
            )
            _save(pending, key_file)
    r = key_file.record
    out_console.print(
        Text.assemble(
            "enrolled ",
            (r.device_name, "bold"),
            f" for {printable(r.user_name)} on {r.server}; key saved to {path}",
        )
    )


@app.command("approve")
def approve(
    ctx: typer.Context,
    link: LinkArgument,
    number: Annotated[
        int | None,
        typer.Option("--number", min=10, max=99, help="The number the browser shows."),
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Skip the confirmation (never the number).")
    ] = False,
    key: KeyOption = None,
    ca: CaOption = None,
) -> None:
    """Approve a browser's sign-in: check where it comes from, then match its number."""
    with reported_errors():
        device = open_enrolled(_key_path(key), ca, _connector(ctx))
        login_id = parse_login_url(link_from(link), server=device.record.server)
        context = device.run(lambda client: client.login(login_id))
        _show(context, device)
        if context.status != LoginStatus.PENDING:
            raise Conflict(f"this sign-in request is {context.status.value}, not pending")
        if number is not None and number not in context.choices:
            raise ClientError(f"{number} is not one of the numbers offered", field="number")
    if not yes and not typer.confirm("Is this your sign-in?", default=False):
        _deny(device, login_id)
        raise typer.Exit(1)
    chosen = number if number is not None else _ask_number(context.choices)
    with reported_errors():
        device.run(lambda client: client.approve(login_id, chosen))
    out_console.print("approved: the browser is signing in")


@app.command("deny")
def deny(
    ctx: typer.Context, link: LinkArgument, key: KeyOption = None, ca: CaOption = None
) -> None:
    """Deny a browser's sign-in."""
    with reported_errors():
        device = open_enrolled(_key_path(key), ca, _connector(ctx))
        login_id = parse_login_url(link_from(link), server=device.record.server)
    _deny(device, login_id)


@app.command("apps")
def apps(
    ctx: typer.Context,
    as_json: JsonOption = False,
    key: KeyOption = None,
    ca: CaOption = None,
) -> None:
    """List the apps you may open."""
    with reported_errors():
        device = open_enrolled(_key_path(key), ca, _connector(ctx))
        entries = device.run(lambda client: client.apps())
    print_listing(
        entries,
        as_json=as_json,
        to_dict=_app_dict,
        columns=("slug", "name", "URL"),
        cells=lambda e: tuple(printable(v) for v in (e.slug, e.name, e.url)),
        empty="no apps",
        ids=("slug",),
    )


@app.command("open")
def open_(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="The app's slug (see `lychgate device apps`).")],
    key: KeyOption = None,
    ca: CaOption = None,
) -> None:
    """Open an app in the browser this device signed in most recently (its portal page
    must be open)."""
    with reported_errors():
        device = open_enrolled(_key_path(key), ca, _connector(ctx))
        delivered = device.run(lambda client: client.open_app(slug))
        if delivered is False:  # None: an older server, which cannot tell
            raise LychgateError(
                "no browser of yours is waiting on the portal: open "
                f"{portal_url(device.record.server)} in your browser, then run this again"
            )
    out_console.print(Text(f"opening {printable(slug)} in your browser"))


@sessions_app.callback()
def sessions(
    ctx: typer.Context,
    as_json: JsonOption = False,
    key: KeyOption = None,
    ca: CaOption = None,
) -> None:
    """List your signed-in browsers."""
    if ctx.invoked_subcommand is not None:
        return
    with reported_errors():
        device = open_enrolled(_key_path(key), ca, _connector(ctx))
        entries = device.run(lambda client: client.sessions())
    print_listing(
        entries,
        as_json=as_json,
        to_dict=_session_dict,
        columns=("id", "browser", "IP", "signed in (UTC)", "last seen (UTC)", "this device"),
        cells=_session_cells,
        empty="no live sessions",
        ids=("id",),
    )


def _session_cells(s: SessionEntry) -> tuple[str, ...]:
    mine = "yes" if s.this_device else ""
    cells = (s.id, s.browser, s.ip, _minute(s.created_at), _minute(s.last_seen_at), mine)
    return tuple(printable(c, 60) for c in cells)


def _app_dict(e: AppEntry) -> dict[str, object]:
    """An app for ``--json``: the server's values as they are (JSON escapes them)."""
    return {"slug": e.slug, "name": e.name, "url": e.url, "description": e.description}


def _session_dict(s: SessionEntry) -> dict[str, object]:
    """A session for ``--json``, times in ISO 8601 (None when the server gave none)."""
    return {
        "id": s.id,
        "browser": s.browser,
        "ip": s.ip,
        "created_at": _iso(s.created_at),
        "last_seen_at": _iso(s.last_seen_at),
        "expires_at": _iso(s.expires_at),
        "this_device": s.this_device,
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


@sessions_app.command("revoke")
def revoke(
    ctx: typer.Context,
    session_id: Annotated[str, typer.Argument(help="The session id (see `sessions`).")],
    key: KeyOption = None,
    ca: CaOption = None,
) -> None:
    """Sign one browser out."""
    parent = ctx.parent.params if ctx.parent is not None else {}
    with reported_errors():
        device = open_enrolled(
            _key_path(key or parent.get("key")), ca or parent.get("ca"), _connector(ctx)
        )
        device.run(lambda client: client.revoke_session(session_id))
    out_console.print(Text(f"revoked session {printable(session_id)}"))


@app.command("logout")
def logout(ctx: typer.Context, key: KeyOption = None, ca: CaOption = None) -> None:
    """Sign out every browser this device approved."""
    with reported_errors():
        device = open_enrolled(_key_path(key), ca, _connector(ctx))
        revoked = device.run(lambda client: client.logout())
    out_console.print(f"signed out {revoked} browser session(s) approved by this device")


@app.command("status")
def status(key: KeyOption = None) -> None:
    """Show this device's enrollment (never the private key)."""
    with reported_errors():
        path = _key_path(key)
        key_file = load_key_file(path)
    r = key_file.record
    table = Table.grid(padding=(0, 2))
    rows = (
        ("device", f"{r.device_name} ({r.device_id})"),
        (
            "user",
            f"{r.user_name} <{r.user_email}> ({r.user_id})"
            if r.user_email
            else f"{r.user_name} ({r.user_id})",
        ),
        ("server", r.server),
        ("enrolled", _when(r.enrolled_at)),
        ("TLS trust", r.ca_file or "system certificates"),
        ("public key", b64url(key_file.public_key_raw())),
        ("key file", str(path)),
    )
    for label, value in rows:
        table.add_row(Text(label, "bold"), Text(printable(value, 200)))
    out_console.print(table)


def _save(pending: PendingKeyFile, key_file: KeyFile) -> None:
    """Put the new key in place. The server has spent the link on it already, so a failure
    here cannot be undone: the error says where the key was kept, or, when it could not be
    written at all, names the device to revoke, whose key is lost."""
    try:
        pending.commit(key_file)
    except LychgateError as exc:
        r = key_file.record
        device_id, user_id = printable(r.device_id, 80), printable(r.user_id, 80)
        if pending.kept is not None:
            raise LychgateError(f"{exc} (this device is {device_id})") from None
        raise LychgateError(
            f"{exc}. The server enrolled this device as {device_id}, but its key is lost: "
            f"have an admin run `lychgate user revoke-device {user_id} {device_id}`, then "
            "enroll again with a new link"
        ) from None


def _show(context: LoginContext, device: Enrolled) -> None:
    now = datetime.fromtimestamp(device.connector.clock(), UTC)  # the clock we sign with
    age = int((now - context.requested_at).total_seconds())
    table = Table.grid(padding=(0, 2))
    rows = [
        ("server", device.record.server),
        ("browser", printable(context.browser)),
        ("IP", printable(context.ip, 64)),
        ("app", printable(context.app) if context.app else "(the portal)"),
        ("requested", f"{_when(context.requested_at)} ({max(age, 0)} s ago)"),
    ]
    if context.expires_at is not None:
        left = int((context.expires_at - now).total_seconds())
        rows.append(("expires", f"in {left} s" if left > 0 else "expired"))
    for label, value in rows:
        table.add_row(Text(label, "bold"), Text(value))
    out_console.print(Text("Sign-in request", "bold"))
    out_console.print(table)


def _ask_number(choices: tuple[int, ...]) -> int:
    # Asked until the answer is one of the three: a typo is not a guess. Picking the wrong one
    # of the three is, and the server then denies the request for good.
    offered = ", ".join(str(n) for n in choices)
    while True:
        answer = str(typer.prompt(f"Number shown in the browser ({offered})")).strip()
        if answer.isascii() and answer.isdigit() and int(answer) in choices:
            return int(answer)
        err_console.print(f"type one of {offered}, as shown in the browser", highlight=False)


def _deny(device: Enrolled, login_id: LoginRequestId) -> None:
    with reported_errors():
        device.run(lambda client: client.deny(login_id))
    out_console.print("denied: the browser will not be signed in")


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else ""


def _minute(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if moment else ""


def _key_path(key: Path | None) -> Path:
    # The CLI edge: the one place the device reads the environment.
    return key if key is not None else default_key_path(os.environ)


def _connector(ctx: typer.Context) -> Connector:
    return ctx.obj if isinstance(ctx.obj, Connector) else Connector()
