"""``lychgate token mint``."""

from __future__ import annotations

from typing import Annotated

import typer

from lychgate.cli.common import DirOption, err_console, reported_errors, settings_for
from lychgate.cli.common_store import now, with_store
from lychgate.deployment.tokens import cookie_name, mint_app_token

app = typer.Typer(help="Tokens for scripts and benchmarks.", no_args_is_help=True)


@app.command("mint")
def mint(
    app_slug: Annotated[str, typer.Option("--app", help="The app the token opens.")],
    user: Annotated[str, typer.Option("--user", help="User id or e-mail address.")],
    ttl: Annotated[
        int | None, typer.Option("--ttl", help="Seconds (default app_token_ttl).")
    ] = None,
    raw: Annotated[bool, typer.Option("--raw", help="Print only the token.")] = False,
    data_dir: DirOption = None,
) -> None:
    """Open a session for USER and print a cookie that opens APP (NAME=TOKEN)."""
    with reported_errors():
        settings = settings_for(data_dir)
        minted = with_store(
            settings,
            lambda s: mint_app_token(s, settings, user=user, app=app_slug, now=now(), ttl=ttl),
        )
    typer.echo(minted.token if raw else f"{cookie_name(settings)}={minted.token}")
    err_console.print(
        f"session {minted.handle}, expires {minted.expires_at:%Y-%m-%d %H:%M:%S %Z}",
        highlight=False,
    )
