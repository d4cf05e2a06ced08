"""Limits validation (lychgate.gateway.http.limits)."""

from __future__ import annotations

import dataclasses

import pytest

from lychgate.errors import ConfigError
from lychgate.gateway.http import Limits


def test_defaults() -> None:
    limits = Limits()
    assert (limits.max_header_bytes, limits.max_headers) == (16 * 1024, 100)
    assert limits.max_body_bytes == 1024**3


@pytest.mark.parametrize(
    ("field", "value"),
    [("header_timeout", 0), ("max_headers", -1), ("max_body_bytes", -1), ("max_header_bytes", 100)],
)
def test_bad_values_name_the_field(field: str, value: int) -> None:
    with pytest.raises(ConfigError) as info:
        Limits(**{field: value})
    assert info.value.field == f"limits.{field}"


def test_zero_body_is_allowed_and_limits_are_frozen() -> None:
    limits = Limits(max_body_bytes=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        limits.max_body_bytes = 5  # type: ignore[misc]
