"""Public authz routes that need no session: JWKS and health."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, PlainTextResponse

from lychgate.authz.context import AuthzContext
from lychgate.authz.internal import context
from lychgate.errors import ConfigError
from lychgate.tokens import Keyring

router = APIRouter()


@router.get("/.lychgate/jwks.json", summary="Public keys for app tokens and identity assertions")
async def jwks(ctx: Annotated[AuthzContext, Depends(context)]) -> JSONResponse:
    """Apps verify ``X-Lychgate-Assertion`` with these keys (ES256, by ``kid``).

    With no signing key that verifies now, the set would be incomplete: answer 503 (fail
    closed, SECURITY.md item 9) rather than a set that caches would keep for five minutes.
    """
    now = ctx.clock()
    keyring = Keyring(await ctx.store.signing_keys.list(), now)
    if not keyring.verification_keys:
        raise ConfigError("no signing key to publish", field="signing_keys")
    keys: list[dict[str, Any]] = list(keyring.jwks()["keys"])
    assertion = Keyring([ctx.secrets.assertion_key], now).jwks()["keys"]
    keys.extend(assertion)
    return JSONResponse({"keys": keys}, headers={"cache-control": "public, max-age=300"})


@router.get("/.lychgate/authz/healthz", include_in_schema=False)
async def healthz(ctx: Annotated[AuthzContext, Depends(context)]) -> PlainTextResponse:
    try:
        await ctx.store.ping()
    except Exception:
        return PlainTextResponse("unavailable\n", status_code=503)
    return PlainTextResponse("ok\n")
