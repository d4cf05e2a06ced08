"""Waiting for a condition in gateway tests: the one polling helper.

Tests wait for what they need to see, never for a guessed time: the timeout only guards
against a hang, so it is generous (a loaded, shared machine can stall the loop for a while)
and it is never an assertion about speed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

PATIENCE = 10.0  # seconds: a hang guard, not a bound on how fast anything must be


async def eventually(
    check: Callable[[], object], timeout: float = PATIENCE, what: str = "condition"
) -> None:
    """Wait until ``check()`` is true; fail if it is still false after ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            while not check():
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"{what} not met within {timeout} s") from None


async def steady(
    value: Callable[[], float],
    *,
    slack: float = 0,
    iterations: int = 200,
    timeout: float = PATIENCE,
    what: str = "steady state",
) -> None:
    """Wait until ``value()`` has grown by no more than ``slack`` over ``iterations`` event-loop
    iterations in a row: what it counts has stopped moving (a buffer filled and stayed full).

    Counted in loop iterations, not seconds: everything a loopback test runs (client, gateway,
    upstream) shares this loop, so on a slow machine the wait takes longer but means the same.
    """
    try:
        async with asyncio.timeout(timeout):
            base, still = value(), 0
            while still < iterations:
                await asyncio.sleep(0)
                now = value()
                if now - base > slack:
                    base, still = now, 0
                else:
                    still += 1
    except TimeoutError:
        raise AssertionError(f"{what} not reached within {timeout} s") from None
