"""``whoami``: a demo upstream that shows who the gateway says is calling, and checks it.

Every request (any path, GET or HEAD) gets a page listing the identity and forwarding headers
the gateway sent, and the claims of ``X-Lychgate-Assertion`` once they verify (see
:mod:`lychgate.demo.verify`). ``?format=json`` gives the same as JSON. An assertion that is
missing or fails a check is reported as ``assertion invalid: <reason>``; the JSON view then
answers 401 (503 when the JWKS cannot be fetched), the HTML page 200 with the error shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Final

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from lychgate.demo.verify import AssertionVerifier, JwksUnavailable
from lychgate.errors import TokenError
from lychgate.tokens import IdentityAssertion

ASSERTION_HEADER: Final = "x-lychgate-assertion"
#: What the page shows besides the claims. Only the assertion is proof of anything.
SHOWN_HEADERS: Final = (
    "x-lychgate-user",
    "x-lychgate-email",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "host",
    "x-request-id",
)
_NO_STORE: Final = {"cache-control": "no-store"}


@dataclass(frozen=True, slots=True)
class Outcome:
    """The verified claims, or why there are none."""

    claims: IdentityAssertion | None
    error: str = ""  # "assertion invalid: <reason>"
    detail: str = ""
    status: int = 200


async def check_request(verifier: AssertionVerifier, request: Request) -> Outcome:
    """Verify the request's assertion; never raises for a bad or missing one."""
    token = request.headers.get(ASSERTION_HEADER)
    if not token:
        detail = "no X-Lychgate-Assertion header: is this app reached through the gateway?"
        return Outcome(None, "assertion invalid: missing", detail, 401)
    try:
        return Outcome(await verifier.verify(token))
    except TokenError as exc:
        return Outcome(None, f"assertion invalid: {exc.reason}", str(exc), 401)
    except JwksUnavailable as exc:
        return Outcome(None, "assertion not checked: JWKS unavailable", str(exc), 503)


def claims_dict(claims: IdentityAssertion) -> dict[str, object]:
    """The claims as JSON-friendly values (times in RFC 3339)."""
    return {
        "iss": claims.iss,
        "aud": claims.aud,
        "sub": claims.sub,
        "name": claims.name,
        "email": claims.email,
        "groups": list(claims.groups),
        "adm": claims.adm,
        "iat": claims.iat.isoformat(),
        "exp": claims.exp.isoformat(),
    }


def create_whoami(verifier: AssertionVerifier) -> Starlette:
    """The whoami ASGI app. ``verifier`` carries this app's audience (its slug)."""

    async def whoami(request: Request) -> Response:
        outcome = await check_request(verifier, request)
        headers = {name: request.headers.get(name) for name in SHOWN_HEADERS}
        if request.query_params.get("format") == "json":
            body: dict[str, object] = {
                "verified": outcome.claims is not None,
                "method": request.method,
                "path": request.url.path,
                "headers": headers,
            }
            if outcome.claims is not None:
                body["claims"] = claims_dict(outcome.claims)
            else:
                body["error"] = outcome.error
                body["detail"] = outcome.detail
            return JSONResponse(body, status_code=outcome.status, headers=_NO_STORE)
        page = render_page(request.method, request.url.path, headers, outcome)
        return HTMLResponse(page, headers=_NO_STORE)

    return Starlette(routes=[Route("/{path:path}", whoami, methods=["GET", "HEAD"])])


def render_page(method: str, path: str, headers: dict[str, str | None], outcome: Outcome) -> str:
    """The HTML view. Every value is escaped: headers and claims are attacker-influenced."""
    if outcome.claims is not None:
        rows = _rows(
            {
                k: ", ".join(v) if isinstance(v, list) else v
                for k, v in claims_dict(outcome.claims).items()
            }
        )
        verdict = f'<p class="ok">Assertion verified.</p><table>{rows}</table>'
    else:
        error, detail = escape(outcome.error), escape(outcome.detail)
        verdict = f'<p class="bad">{error}</p><p class="detail">{detail}</p>'
    return _PAGE.format(
        request=escape(f"{method} {path}"),
        verdict=verdict,
        headers=_rows(dict(headers)),
    )


def _rows(values: dict[str, object]) -> str:
    cells = []
    for name, value in values.items():
        shown = "<i>absent</i>" if value is None else escape(str(value))
        cells.append(f"<tr><th>{escape(name)}</th><td>{shown}</td></tr>")
    return "".join(cells)


_PAGE: Final = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>whoami</title>
<style>
body {{ font: 15px/1.5 system-ui, sans-serif; margin: 2rem auto; max-width: 46rem;
       padding: 0 1rem; }}
table {{ border-collapse: collapse; width: 100%; margin-bottom: 1.5rem; }}
th, td {{ text-align: left; padding: .3rem .6rem; border-bottom: 1px solid #ddd; }}
th {{ width: 12rem; font-weight: 600; }} td {{ font-family: ui-monospace, monospace; }}
.ok {{ color: #176c2c; font-weight: 600; }} .bad {{ color: #b00020; font-weight: 600; }}
.detail {{ color: #555; }}
</style></head>
<body>
<h1>whoami</h1>
<p><code>{request}</code> &middot; <a href="?format=json">JSON</a></p>
<h2>Identity assertion</h2>
{verdict}
<h2>Headers from the gateway</h2>
<table>{headers}</table>
</body></html>
"""
