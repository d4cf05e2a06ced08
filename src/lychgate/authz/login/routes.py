"""Routes of the login slice: the login page and the browser's login API."""

from __future__ import annotations

from fastapi import APIRouter

from lychgate.authz.login import api, page

router = APIRouter()
router.include_router(page.router)
router.include_router(api.router)
