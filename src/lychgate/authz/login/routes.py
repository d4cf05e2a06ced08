"""Routes of the login slice."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
