"""``lychgate app add|update|list|disable|enable|remove``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from lychgate.cli.common import (
    DirOption,
    note,
    print_listing,
    reported_errors,
    say,
    settings_for,
)
from lychgate.cli.common_store import now, with_store
from lychgate.config import Settings
from lychgate.config.settings import MAX_BODY_BYTES, MAX_IDLE_TIMEOUT, MAX_UPSTREAM_TIMEOUT
from lychgate.deployment.apps import (
    AppSpec,
    add_app,
    check_host,
    check_host_not_portal,
    remove_app,
    set_app_enabled,
    update_app,
)
from lychgate.deployment.transport import check_app_certificate, check_app_transport
from lychgate.domain import APP_HEADER_BYTES_RANGE, APP_HEADERS_RANGE, App, app_to_dict
from lychgate.store import Store

app = typer.Typer(help="Manage the apps behind the gateway.", no_args_is_help=True)


# The options ``add`` and ``update`` share; ``add`` requires some, ``update`` none.
_NAME = typer.Option("--name", help="Display name.")
_UPSTREAM = typer.Option("--upstream", help="http://HOST:PORT, https://... or unix:/PATH")
_HOST = typer.Option("--host", help="Exact host this app answers on (subdomains).")
_POLICY = typer.Option("--policy", help="any-user or admins.")
_DESCRIPTION = typer.Option("--description")
_SLUG_HELP = "Short name; the host label in subdomains mode."
# The ranges are those of the listener's [limits] (config.settings), which these replace.
_SECONDS = f"over 0, at most {MAX_UPSTREAM_TIMEOUT:g}"
_CONNECT_TIMEOUT = typer.Option("--connect-timeout", help=f"Seconds, {_SECONDS} (default: limits).")
_READ_TIMEOUT = typer.Option("--read-timeout", help=f"Seconds between upstream reads, {_SECONDS}.")
_MAX_BODY = typer.Option(
    "--max-body", help=f"Largest request body in bytes, 0 to {MAX_BODY_BYTES} (1 PiB)."
)
_MAX_HEADER_BYTES = typer.Option(
    "--max-header-bytes",
    help="Largest request head (request line and fields) in bytes, {} to {}.".format(
        *APP_HEADER_BYTES_RANGE
    ),
)
_MAX_HEADERS = typer.Option(
    "--max-headers", help="Most header fields in a request, {} to {}.".format(*APP_HEADERS_RANGE)
)
_IDLE_TIMEOUT = typer.Option(
    "--idle-timeout",
    help="Seconds a keep-alive connection waits for the next request, over 0, at most "
    f"{MAX_IDLE_TIMEOUT:g}.",
)
# ``app update --default NAME``: the app's own limits, by the name of their option.
_OWN_LIMITS = {
    "connect-timeout": "connect_timeout",
    "read-timeout": "read_timeout",
    "max-body": "max_body_bytes",
    "max-header-bytes": "max_header_bytes",
    "max-headers": "max_headers",
    "idle-timeout": "idle_timeout",
}
_DEFAULT = typer.Option(
    "--default",
    metavar="LIMIT",
    # Help texts are Rich markup: unescaped, "[limits]" would be taken for a tag and vanish.
    help=escape(
        "Drop the app's own LIMIT, so that it follows [limits] again: "
        + ", ".join(_OWN_LIMITS)
        + ". Repeat for several."
    ),
)
_CROSS_ORIGIN_HELP = (
    "Let other origins (sibling apps, CORS callers) send POST, PUT, PATCH or DELETE; the app "
    "must then check Origin or CSRF tokens itself."
)


@app.command("add")
def add(
    name: Annotated[str, _NAME],
    upstream: Annotated[str, _UPSTREAM],
    slug_given: Annotated[
        str | None,
        typer.Argument(metavar="SLUG", help=f"{_SLUG_HELP} Or --slug SLUG.", show_default=False),
    ] = None,
    slug_option: Annotated[
        str | None, typer.Option("--slug", help=_SLUG_HELP, show_default=False)
    ] = None,
    host: Annotated[str | None, _HOST] = None,
    policy: Annotated[str, _POLICY] = "any-user",
    websockets: Annotated[
        bool, typer.Option("--websockets", help="Allow WebSocket upgrades (no other is tunnelled).")
    ] = False,
    description: Annotated[str, _DESCRIPTION] = "",
    insecure_upstream_tls: Annotated[
        bool,
        typer.Option("--insecure-upstream-tls", help="Do not verify an https upstream's cert."),
    ] = False,
    connect_timeout: Annotated[float | None, _CONNECT_TIMEOUT] = None,
    read_timeout: Annotated[float | None, _READ_TIMEOUT] = None,
    max_body: Annotated[int | None, _MAX_BODY] = None,
    max_header_bytes: Annotated[int | None, _MAX_HEADER_BYTES] = None,
    max_headers: Annotated[int | None, _MAX_HEADERS] = None,
    idle_timeout: Annotated[float | None, _IDLE_TIMEOUT] = None,
    allow_cross_origin: Annotated[
        bool, typer.Option("--allow-cross-origin", help=_CROSS_ORIGIN_HELP)
    ] = False,
    data_dir: DirOption = None,
) -> None:
    """Add an app: lychgate app add SLUG --name NAME --upstream URL."""
    slug = _one_slug(slug_given, slug_option)
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
        allow_cross_origin=allow_cross_origin,
        max_header_bytes=max_header_bytes,
        max_headers=max_headers,
        idle_timeout=idle_timeout,
    )
    with reported_errors():
        settings = settings_for(data_dir)
        check_app_host(settings, spec.host)
        added = with_store(settings, lambda store: add_app(store, spec, now(), settings=settings))
    say("added [bold]{}[/] -> {}", added.slug, added.upstream)
    warn_unused_host(settings, spec.host)


def _one_slug(given: str | None, option: str | None) -> str:
    """The slug, given as ``app update`` takes it (first, bare) or with ``--slug``: either
    way, but once; naming two different ones is refused rather than one picked."""
    if given is not None and option is not None and given != option:
        note("two slugs: {} and --slug {}; give one", given, option)
        raise typer.Exit(2)
    slug = given if given is not None else option
    if slug is None:
        note("give the app's slug: lychgate app add SLUG --name NAME --upstream URL")
        raise typer.Exit(2)
    return slug


@app.command("update")
def update(
    slug: Annotated[str, typer.Argument(help="The app's slug (it cannot change).")],
    name: Annotated[str | None, _NAME] = None,
    upstream: Annotated[str | None, _UPSTREAM] = None,
    host: Annotated[str | None, _HOST] = None,
    policy: Annotated[str | None, _POLICY] = None,
    websockets: Annotated[
        bool | None,
        typer.Option("--websockets/--no-websockets", help="Allow WebSocket upgrades (or not)."),
    ] = None,
    allow_cross_origin: Annotated[
        bool | None,
        typer.Option("--allow-cross-origin/--no-cross-origin", help=_CROSS_ORIGIN_HELP),
    ] = None,
    description: Annotated[str | None, _DESCRIPTION] = None,
    insecure_upstream_tls: Annotated[
        bool | None,
        typer.Option(
            "--insecure-upstream-tls/--verify-upstream-tls",
            help="Do not verify (or verify again) an https upstream's certificate.",
        ),
    ] = None,
    connect_timeout: Annotated[float | None, _CONNECT_TIMEOUT] = None,
    read_timeout: Annotated[float | None, _READ_TIMEOUT] = None,
    max_body: Annotated[int | None, _MAX_BODY] = None,
    max_header_bytes: Annotated[int | None, _MAX_HEADER_BYTES] = None,
    max_headers: Annotated[int | None, _MAX_HEADERS] = None,
    idle_timeout: Annotated[float | None, _IDLE_TIMEOUT] = None,
    default: Annotated[list[str] | None, _DEFAULT] = None,
    data_dir: DirOption = None,
) -> None:
    """Change an app's settings; running gateways pick the change up within seconds."""
    given = {
        "name": name,
        "upstream": upstream,
        "host": host,
        "policy": policy,
        "websockets": websockets,
        "allow_cross_origin": allow_cross_origin,
        "description": description,
        "verify_tls": None if insecure_upstream_tls is None else not insecure_upstream_tls,
        "connect_timeout": connect_timeout,
        "read_timeout": read_timeout,
        "max_body_bytes": max_body,
        "max_header_bytes": max_header_bytes,
        "max_headers": max_headers,
        "idle_timeout": idle_timeout,
    }
    changes: dict[str, object] = {f: value for f, value in given.items() if value is not None}
    for name in default or ():
        field = _OWN_LIMITS.get(name.removeprefix("--"))
        if field is None:
            note("--default: no limit {!r}; one of: {}", name, ", ".join(_OWN_LIMITS))
            raise typer.Exit(2)
        if field in changes:
            note("--default {}: the same limit is given a value too", name)
            raise typer.Exit(2)
        changes[field] = None  # no own limit: the listener's applies
    if not changes:
        note("nothing to change: give at least one option (see --help)")
        raise typer.Exit(2)
    with reported_errors():
        settings = settings_for(data_dir)
        check_app_host(settings, host)
        updated = with_store(
            settings, lambda store: update_app(store, slug, changes, now(), settings=settings)
        )
    say("updated [bold]{}[/]: {}", updated.slug, ", ".join(sorted(changes)))
    warn_unused_host(settings, host)


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
        columns=("slug", "name", "upstream", "host", "policy", "websockets", "cross-origin"),
        cells=lambda a: (
            a.slug,
            a.name if a.enabled else f"{a.name} (disabled)",
            a.upstream,
            _host_shown(settings, a),
            a.policy.value,
            "yes" if a.websockets else "no",
            "yes" if a.allow_cross_origin else "no",
        ),
        empty="no apps yet: lychgate app add --slug ... --name ... --upstream ...",
        ids=("slug",),
    )


def _host_shown(settings: Settings, app: App) -> str:
    """The host an app answers on, for the table: its own, or in subdomains mode the default
    ``<slug>.<domain>``; none in single-host mode, where every app is on the public URL."""
    if app.host:
        return app.host
    return f"{app.slug}.{settings.app_domain}" if settings.routing == "subdomains" else ""


@app.command("disable")
def disable(
    slug: Annotated[str, typer.Argument(help="The app's slug.")],
    data_dir: DirOption = None,
) -> None:
    """Take an app offline and keep its settings and host; undo with `lychgate app enable`.

    Gateways refuse its requests and close its open WebSockets and streams within a second.
    """
    with reported_errors():
        settings = settings_for(data_dir)
        disabled, changed = with_store(
            settings, lambda store: set_app_enabled(store, slug, False, now())
        )
    if not changed:
        say("app [bold]{}[/] is already disabled", disabled.slug)
        return
    say(
        "disabled app [bold]{}[/]: gateways refuse it and close its open WebSockets and "
        "streams within a second",
        disabled.slug,
    )


@app.command("enable")
def enable(
    slug: Annotated[str, typer.Argument(help="The app's slug.")],
    data_dir: DirOption = None,
) -> None:
    """Put a disabled app back online, as it was (its host must still be free)."""
    with reported_errors():
        settings = settings_for(data_dir)
        enabled, changed = with_store(
            settings,
            lambda store: set_app_enabled(
                store,
                slug,
                True,
                now(),
                settings=settings,
                check=lambda app: check_app_host(settings, app.host),
            ),
        )
    if not changed:
        say("app [bold]{}[/] is already enabled", enabled.slug)
        return
    say("enabled app [bold]{}[/]", enabled.slug)


@app.command("remove")
def remove(
    slug: Annotated[str, typer.Argument(help="The app's slug.")],
    data_dir: DirOption = None,
) -> None:
    """Remove an app."""
    with reported_errors():
        settings = settings_for(data_dir)
        removed = with_store(settings, lambda store: remove_app(store, slug, now()))
    say("removed [bold]{}[/]", removed.slug)


def check_app_host(settings: Settings, host: str | None) -> None:
    """An app's own host must be one the deployment can serve: over plain HTTP only as
    ``<name>.localhost``, and on the internal CA only where its certificate reaches.

    What is wrong with the host itself is said first (a port, the portal's host): "would be
    served over plain HTTP" was said of both, which sent the operator the wrong way. In
    single-host mode a host is never served (:func:`warn_unused_host`), so it is checked only
    as a name; subdomains mode checks it again at each start, should the mode change."""
    if not host or settings.routing != "subdomains":
        return
    check_host_not_portal(host, settings)
    check_host(host)
    check_app_transport(settings, host)
    check_app_certificate(settings, host)


def warn_unused_host(settings: Settings, host: str | None) -> None:
    """A ``--host`` in single-host mode is kept but has no effect: say so, rather than refuse
    it (scripts that pass it for both modes keep working)."""
    if host and settings.routing != "subdomains":
        note(
            "note: --host is used only in subdomains mode (routing); this deployment is "
            "single-host, where every app is served on the public URL, so it has no effect"
        )


async def _list(store: Store) -> list[App]:
    return list(await store.apps.list())


def _as_dict(a: App) -> dict[str, object]:
    fields = app_to_dict(a)
    del fields["id"]
    return fields
