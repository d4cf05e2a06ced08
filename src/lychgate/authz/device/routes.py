"""Routes of the device slice."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
