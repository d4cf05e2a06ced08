"""Rate limits and signed device requests: pure, no sockets."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fixtures.clocks import Ticks
from lychgate.authz.ratelimit import RateLimiter
from lychgate.devicesig import DeviceAuthError, sign_request, verify_request
from lychgate.errors import RateLimited


def test_rate_limit_window_slides() -> None:
    clock = Ticks(1000.0)
    limiter = RateLimiter(limit=3, window=10, clock=clock)
    for _ in range(3):
        limiter.hit("1.2.3.4")
    with pytest.raises(RateLimited) as err:
        limiter.hit("1.2.3.4")
    assert err.value.retry_after == 10
    assert err.value.status == 429
    limiter.hit("5.6.7.8")  # other keys are independent
    clock.now += 10.01
    limiter.hit("1.2.3.4")


def test_rate_limit_keys_are_bounded() -> None:
    limiter = RateLimiter(limit=1, window=60, clock=Ticks(1000.0), max_keys=10)
    for i in range(100):
        limiter.hit(f"k{i}")
        assert limiter.tracked_keys == min(i + 1, 10)
    with pytest.raises(RateLimited):
        limiter.hit("k99")  # the newest keys are the ones kept
    limiter.hit("k0")  # evicted long ago: counts afresh
    assert limiter.tracked_keys == 10


def raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def test_signed_request_verifies() -> None:
    key = Ed25519PrivateKey.generate()
    h = sign_request(key, "dev1", "post", "/.lychgate/api/v1/device/open?x=1", b'{"slug":"a"}', 500)
    verify_request(
        raw_public(key),
        method="POST",
        path="/.lychgate/api/v1/device/open?x=1",
        body=b'{"slug":"a"}',
        timestamp=str(h.timestamp),
        signature=h.signature,
        now=530,
    )


@pytest.mark.parametrize(
    ("change", "value"),
    [
        ("method", "GET"),
        ("path", "/.lychgate/api/v1/device/logout"),
        ("body", b'{"slug":"b"}'),
        ("timestamp", "501"),
        ("signature", "AAAA"),
        ("signature", "%%%"),
        ("signature", None),
        ("timestamp", "-1"),
        ("timestamp", "1e3"),
        ("timestamp", "\u00b2"),  # a digit to str.isdigit(), which int() refuses
        ("timestamp", "5\u0660\u0660"),  # Arabic-Indic digits: int() takes them, we do not
        ("now", 561),
        ("now", 439),
        ("public_key", b"\x00" * 32),
        ("public_key", b"short"),
    ],
)
def test_signed_request_refusals(change: str, value: object) -> None:
    key = Ed25519PrivateKey.generate()
    h = sign_request(key, "dev1", "POST", "/p", b"{}", 500)
    args: dict[str, object] = {
        "public_key": raw_public(key),
        "method": "POST",
        "path": "/p",
        "body": b"{}",
        "timestamp": str(h.timestamp),
        "signature": h.signature,
        "now": 500,
    }
    args[change] = value
    with pytest.raises(DeviceAuthError):
        verify_request(**args)  # type: ignore[arg-type]
