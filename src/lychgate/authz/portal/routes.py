"""Routes of the portal slice: the portal page, opening apps, and the session API."""

from __future__ import annotations

from fastapi import APIRouter

from lychgate.authz.portal import api, page

router = APIRouter()
router.include_router(page.router)
router.include_router(api.router)
