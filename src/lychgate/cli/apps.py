"""``lychgate app add|list|remove``."""

from __future__ import annotations

from typing import Annotated

import typer

from lychgate.cli.common import (
    DirOption,
    out_console,
    print_listing,
    reported_errors,
    settings_for,
)
from lychgate.cli.common_store import now, with_store
from lychgate.deployment.apps import AppSpec, add_app, remove_app
from lychgate.domain import App, app_to_dict
from lychgate.store import Store

app = typer.Typer(help="Manage the apps behind the gateway.", no_args_is_help=True)


@app.command("add")
def add(
    slug: Annotated[
        str, typer.Option("--slug", help="Short name; the host label in subdomains mode.")
    ],
    name: Annotated[str, typer.Option("--name", help="Display name.")],
    upstream: Annotated[
        str, typer.Option("--upstream", help="http://HOST:PORT, https://... or unix:/PATH")
    ],
    host: Annotated[
        str | None, typer.Option("--host", help="Exact host this app answers on (subdomains).")
    ] = None,
    policy: Annotated[str, typer.Option("--policy", help="any-user or admins.")] = "any-user",
    websockets: Annotated[
        bool, typer.Option("--websockets", help="Allow WebSocket and other upgrades.")
    ] = False,
    description: Annotated[str, typer.Option("--description")] = "",
    insecure_upstream_tls: Annotated[
        bool,
        typer.Option("--insecure-upstream-tls", help="Do not verify an https upstream's cert."),
    ] = False,
    connect_timeout: Annotated[
        float | None, typer.Option("--connect-timeout", help="Seconds (default: limits).")
    ] = None,
    read_timeout: Annotated[
        float | None, typer.Option("--read-timeout", help="Seconds between upstream reads.")
    ] = None,
    max_body: Annotated[
        int | None, typer.Option("--max-body", help="Largest request body in bytes.")
    ] = None,
    data_dir: DirOption = None,
) -> None:
    """Add an app."""
    spec = AppSpec(
        slug=slug,
        name=name,
        upstream=upstream,
        host=host,
        policy=policy,
        websockets=websockets,
        description=description,
        verify_tls=not insecure_upstream_tls,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        max_body_bytes=max_body,
    )
    with reported_errors():
        settings = settings_for(data_dir)
        added = with_store(settings, lambda store: add_app(store, spec, now()))
    out_console.print(f"added [bold]{added.slug}[/] -> {added.upstream}", highlight=False)


@app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    data_dir: DirOption = None,
) -> None:
    """List the apps."""
    with reported_errors():
        settings = settings_for(data_dir)
        apps = with_store(settings, _list)
    print_listing(
        apps,
        as_json=as_json,
        to_dict=_as_dict,
        columns=("slug", "name", "upstream", "host", "policy", "websockets"),
        cells=lambda a: (
            a.slug,
            a.name,
            a.upstream,
            a.host or "",
            a.policy.value,
            "yes" if a.websockets else "no",
        ),
        empty="no apps yet: lychgate app add --slug ... --name ... --upstream ...",
    )


@app.command("remove")
def remove(
    slug: Annotated[str, typer.Argument(help="The app's slug.")],
    data_dir: DirOption = None,
) -> None:
    """Remove an app."""
    with reported_errors():
        settings = settings_for(data_dir)
        removed = with_store(settings, lambda store: remove_app(store, slug, now()))
    out_console.print(f"removed [bold]{removed.slug}[/]", highlight=False)


async def _list(store: Store) -> list[App]:
    return list(await store.apps.list())


def _as_dict(a: App) -> dict[str, object]:
    fields = app_to_dict(a)
    del fields["id"]
    return fields
