"""``lychgate token mint``."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from lychgate.cli.common import DirOption, note, reported_errors, settings_for
from lychgate.cli.common_store import now, with_store
from lychgate.config.settings import MAX_TTL
from lychgate.deployment.tokens import Minted, cookie_name, mint_app_token

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
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON: the cookie, token, session and expiry.")
    ] = False,
    data_dir: DirOption = None,
) -> None:
    """Open a session for USER and print a cookie that opens APP (NAME=TOKEN).

    Refused for a user the app's policy refuses (admins): the gateway would refuse the token.

    Refused for a --ttl outside 1 to session_ttl: such a token would not work, or not last.
    """
    if raw and as_json:
        note("give --raw or --json, not both")
        raise typer.Exit(2)
    with reported_errors():
        settings = settings_for(data_dir)
        minted = with_store(
            settings,
            lambda s: mint_app_token(s, settings, user=user, app=app_slug, now=now(), ttl=ttl),
        )
    if as_json:
        typer.echo(json.dumps(_as_dict(minted, cookie_name(settings)), indent=2))
        return
    typer.echo(minted.token if raw else f"{cookie_name(settings)}={minted.token}")
    note("session {}, expires {:%Y-%m-%d %H:%M:%S %Z}", minted.handle, minted.expires_at)


def _as_dict(minted: Minted, cookie: str) -> dict[str, object]:
    """Everything a script needs in one answer: the session and expiry also go to stderr
    otherwise, where a script would have to parse them out of a sentence."""
    return {
        "cookie_name": cookie,
        "token": minted.token,
        "cookie": f"{cookie}={minted.token}",
        "session": minted.handle,
        "expires_at": minted.expires_at.isoformat(),
    }
