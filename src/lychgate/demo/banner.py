"""The next-steps text ``serve --demo`` prints: where to go, and how to sign in."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from lychgate.config import Settings
from lychgate.config.settings import parse_hostport
from lychgate.demo.apps import CHAT, WHOAMI
from lychgate.demo.bootstrap import DemoStart
from lychgate.deployment.enroll import terminal_qr
from lychgate.deployment.layout import Layout
from lychgate.deployment.next_steps import enroll_lines, lychgate_command


def app_url(settings: Settings, slug: str) -> str:
    """Where a browser opens an app: the public URL (single-host) or ``<slug>.<domain>``."""
    if settings.routing == "single-host":
        return settings.public_url
    parts = urlsplit(settings.public_url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{slug}.{settings.app_domain}{port}"


def listen_mismatch(settings: Settings) -> str | None:
    """A warning when the gateway listens on another port than the public URL names, with
    both ways out, as the gateway's own warning about it names ``listen``: serve on the public
    URL's port, or make the public URL name the port served. An existing deployment's
    public_url is changed in ``lychgate.toml`` (init refuses to change it); init sets both for
    a new one."""
    host, port = parse_hostport(settings.listen)
    parts = urlsplit(settings.public_url)
    public_port = parts.port or _DEFAULT_PORTS[parts.scheme]
    if port == public_port:
        return None
    config = Layout(settings.data_dir).config_file
    shown_host = f"[{host}]" if ":" in host else host
    served = _with_port(settings.public_url, port)
    return (
        f"note: the gateway listens on {settings.listen} but public_url is "
        f"{settings.public_url}, which browsers and the demo apps use. Serve on its port "
        f'(--listen {shown_host}:{public_port}, or listen = "{shown_host}:{public_port}" in '
        f'{config}), or make public_url name this one (public_url = "{served}" in {config}; '
        f"for a new deployment, lychgate init --dir NEW_DIR --public-url {served} "
        f"--listen {settings.listen})"
    )


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _with_port(url: str, port: int) -> str:
    """``url`` on ``port`` (none written where it is the scheme's own)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if port != _DEFAULT_PORTS[parts.scheme]:
        netloc += f":{port}"
    return parts._replace(netloc=netloc).geturl()


def next_steps(
    settings: Settings,
    start: DemoStart,
    env: Mapping[str, str],
    *,
    qr: Callable[[str], str] | None = terminal_qr,
) -> str:
    """The banner: the URL, the admin setup link (with a QR, unless ``qr`` is None: serve
    draws it only on a terminal) while there is no admin, the device commands, and a scripted
    request to whoami. ``env``: the commands to run here name the deployment's directory
    unless it is the default one (:func:`lychgate_command`)."""
    url = settings.public_url
    whoami = app_url(settings, WHOAMI.slug)
    mint = lychgate_command(
        f"token mint --app {WHOAMI.slug} --user EMAIL-OR-ID", settings.data_dir, env
    )
    lines = ["", f"Lychgate demo: {WHOAMI.slug} and {CHAT.slug} behind {url}"]
    added = [app.slug for app in start.registration.added]
    if added:
        run_dir = Layout(settings.data_dir).run_dir
        lines.append(f"  registered: {', '.join(added)} (upstreams in {run_dir}/)")
    warning = listen_mismatch(settings)
    if warning:
        lines.append(f"  {warning}")
    lines.append("")
    step = 1
    if start.setup_link is not None:
        lines += _setup_step(
            step,
            start.setup_link,
            enroll_lines(start.setup_link, settings, env, admin_setup=True),
            qr,
        )
        step += 1
    lines += [
        f"{step}. Open {url} in a browser and sign in. The login page shows a link (and QR);",
        "   approve it from the enrolled terminal with:",
        "   lychgate device approve '<login url>'",
        f"   The portal then lists {WHOAMI.slug} and {CHAT.slug}"
        + (
            "."
            if settings.routing == "single-host"
            else f" ({whoami}, {app_url(settings, CHAT.slug)})."
        ),
        "",
        "From a script (no device needed):",
        f"   COOKIE=$({mint})",
        f'   curl -H "Cookie: $COOKIE" "{whoami}/?format=json"',
        "",
        "Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


def _setup_step(
    step: int, link: str, enroll: list[str], qr: Callable[[str], str] | None
) -> list[str]:
    """The banner's lines for the admin setup link: its QR code when ``qr`` draws one, and
    ``enroll``, the command that makes this terminal the device (as init prints it)."""
    if qr is None:
        drawn = ["   open it on your phone, or make this terminal the device:"]
    else:
        drawn = [
            "   scan it with your phone, or make this terminal the device:",
            "",
            qr(link).rstrip("\n"),
        ]
    return [
        f"{step}. No admin yet. Enroll the first admin's device with this one-time link:",
        *drawn,
        f"   {link}",
        *(f"   {line}" for line in enroll),
        "",
    ]
