"""Routes of the enroll slice."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
