"""The ``lychgate.toml`` that ``lychgate init`` writes for a new deployment: the options it
was given, and the most useful other settings as comments, to uncomment and edit."""

from __future__ import annotations

from typing import Final


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
    return "\n".join([*lines, *_OTHER_SETTINGS, ""])


# The other settings an operator reaches for, as comments to uncomment: each shows the default
# (or, where there is none, an example) and says in a few words what it does, as README's
# Configuration table does at length. Every one, uncommented alone (tls_cert with tls_key),
# is a valid value, and all at once still parse: tests/config/test_template_examples.py.
_OTHER_SETTINGS: Final = (
    "",
    "# HTTPS. Default: an https public_url is served with a certificate from the internal CA.",
    '# tls_cert = "/etc/lychgate/fullchain.pem"  # your own certificate and key, set together',
    "#                                              (with an https public_url);",
    '# tls_key = "/etc/lychgate/privkey.pem"     # renewed files are read without a restart',
    '# http_redirect_listen = "0.0.0.0:80"  # default: off; plain HTTP redirecting to https',
    "# hsts_max_age = 31536000     # seconds of HSTS on https (a year; at most two; 0: none)",
    "# allow_insecure_http = false  # true: plain http on a public host, behind a TLS proxy only",
    "",
    "# Lifetimes, in seconds (a session or token at most 34560000: 400 days).",
    "# session_ttl = 43200",
    "# session_idle_ttl = 7200",
    "# app_token_ttl = 3600        # at most session_ttl",
    "# login_request_ttl = 120     # a sign-in waits this long for its approval (1 to 600)",
    "# feed_max_stale = 300        # gateways deny once authz is silent this long (15 to 86400)",
    "",
    "# Networks.",
    '# trusted_proxies = []        # e.g. ["10.0.0.0/8"]: trust their X-Forwarded-*',
    "# proxy_protocol = false      # true: behind a TCP load balancer of trusted_proxies",
    '# authz_trusted_gateways = ["127.0.0.0/8", "::1/128"]  # authz on TCP: its gateways',
    "",
    "# Operation.",
    "# workers = 1                 # gateway processes sharing the port (1 to 64)",
    "# access_log = false          # true: a JSON line on stdout per response",
    '# log_level = "info"          # "debug", "info", "warning" or "error"',
    '# metrics_listen = "127.0.0.1:9090"  # default: off; Prometheus /metrics (worker k: port + k)',
    "",
    "# Limits of the gateway's listener; an app's own (lychgate app update) override them.",
    "# [limits]",
    "# max_body_bytes = 1073741824",
    "# max_header_bytes = 16384     # request line and fields (431 beyond)",
    "# max_headers = 100",
    "# header_timeout = 10.0       # the whole head, against slowloris (408)",
    "# idle_timeout = 60.0         # keep-alive wait between requests",
    "# tunnel_idle_timeout = 3600.0  # a WebSocket silent both ways this long is closed",
    "# max_connections_per_client = 1024  # per worker and address (0: no cap)",
    "# upstream_connect_timeout = 5.0",
    "# upstream_read_timeout = 60.0  # the longest silence while an app answers (504)",
)
