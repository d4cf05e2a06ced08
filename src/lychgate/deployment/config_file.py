"""The ``lychgate.toml`` that ``lychgate init`` writes for a new deployment: the options it
was given, and the most useful other settings as comments, to uncomment and edit."""

from __future__ import annotations


def _routing_line(routing: str) -> str:
    """``routing = "..."`` with a comment naming the other mode (the one not chosen)."""
    other = "single-host" if routing == "subdomains" else "subdomains"
    return f'routing = "{routing}"  # or "{other}"'


def _toml_string(value: str) -> str:
    """``value`` as a TOML basic string: a password may hold any character (TOML 1.0,
    "String": quotation mark, backslash and control characters other than tab are escaped)."""
    return '"' + "".join(_toml_char(c) for c in value) + '"'


def _toml_char(c: str) -> str:
    if c in '"\\':
        return "\\" + c
    if c < " " or c == "\x7f":
        return f"\\u{ord(c):04X}"
    return c


def config_template(
    *,
    public_url: str | None,
    routing: str | None,
    domain: str | None,
    database_url: str | None = None,
    listen: str | None = None,
    authz_listen: str | None = None,
) -> str:
    """A commented lychgate.toml naming the most useful settings: the ones given set, the
    others as comments showing their defaults."""
    lines = [
        "# Lychgate settings. LYCHGATE_<NAME> environment variables override these;",
        "# nested keys use a double underscore, e.g. LYCHGATE_LIMITS__MAX_BODY_BYTES.",
        "",
        f"public_url = {_toml_string(public_url or 'http://localhost:8080')}",
        _routing_line(routing or "single-host"),
    ]
    if domain:
        lines.append(f"domain = {_toml_string(domain)}")
    lines.append(f"listen = {_toml_string(listen)}" if listen else '# listen = "127.0.0.1:8080"')
    if authz_listen:
        lines.append(f"authz_listen = {_toml_string(authz_listen)}")
    else:
        lines.append('# authz_listen = "10.0.0.5:8081"  # default: a unix socket in run/')
    if database_url:
        lines.append(f"database_url = {_toml_string(database_url)}")
    else:
        lines.append('# database_url = "postgresql://lychgate@db/lychgate"  # default: SQLite here')
    lines += [
        "# session_ttl = 43200        # seconds",
        "# session_idle_ttl = 7200",
        "# app_token_ttl = 3600",
        "# feed_max_stale = 300       # gateways deny once authz's feed is silent this long",
        '# trusted_proxies = []       # e.g. ["10.0.0.0/8"]: trust their X-Forwarded-*',
        '# authz_trusted_gateways = ["127.0.0.0/8", "::1/128"]  # authz on TCP: its gateways',
        "# access_log = false",
        '# metrics_listen = "127.0.0.1:9090"',
        "",
        "# [limits]",
        "# max_body_bytes = 1073741824",
        "# header_timeout = 10.0",
        "# tunnel_idle_timeout = 3600.0  # a WebSocket silent both ways this long is closed",
        "",
    ]
    return "\n".join(lines)
