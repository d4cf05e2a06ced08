"""``lychgate token mint``."""

from __future__ import annotations

from typing import Annotated

import typer

from lychgate.cli.common import DirOption, note, reported_errors, settings_for
from lychgate.cli.common_store import now, with_store
from lychgate.config.settings import MAX_TTL
from lychgate.deployment.tokens import cookie_name, mint_app_token

app = typer.Typer(help="Tokens for scripts and benchmarks.", no_args_is_help=True)


@app.command("mint")
def mint(
    app_slug: Annotated[str, typer.Option("--app", help="The app the token opens.")],
    user: Annotated[
        str, typer.Option("--user", help="The user's e-mail address, id or (unique) name.")
    ],
    ttl: Annotated[
        int | None,
        typer.Option(
            "--ttl",
            help=f"Seconds, from 1 to session_ttl (itself at most {MAX_TTL}, 400 days; "
            "default app_token_ttl).",
        ),
    ] = None,
    raw: Annotated[bool, typer.Option("--raw", help="Print only the token.")] = False,
    data_dir: DirOption = None,
) -> None:
    """Open a session for USER and print a cookie that opens APP (NAME=TOKEN).

    Refused for a user the app's policy refuses (admins), and for a --ttl outside 1 to
    session_ttl: the gateway would refuse such a token, or it would not last as asked.
    """
    with reported_errors():
        settings = settings_for(data_dir)
        minted = with_store(
            settings,
            lambda s: mint_app_token(s, settings, user=user, app=app_slug, now=now(), ttl=ttl),
        )
    typer.echo(minted.token if raw else f"{cookie_name(settings)}={minted.token}")
    note("session {}, expires {:%Y-%m-%d %H:%M:%S %Z}", minted.handle, minted.expires_at)
