"""A store that breaks at one chosen step, and the app over it (SECURITY.md item 9).

:class:`FlakyStore` is a copy of the test's real :class:`~lychgate.store.Store` (the same
engine, so the same rows) in which one repository method can be made to raise from a chosen
moment on; every other call goes to the real repository. Tests set up state through
``ctx.store`` (the real store) and talk to the ``authz`` fixture of this module, an app whose
context holds the flaky copy. Importing ``authz`` into a test module overrides conftest's, so
the ``client`` and ``browser`` fixtures talk to it too.

The errors raised carry the data directory and the socket path in their message, so a test
can check that neither reaches a response.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any, NoReturn

import pytest
from fastapi import FastAPI
from sqlalchemy import Table, func, select

from lychgate.authz.app import create_app
from lychgate.authz.context import AuthzContext
from lychgate.store import Store


class _Failing:
    """A repository whose ``method`` raises what ``error()`` makes; the rest is the real one."""

    def __init__(self, inner: object, method: str, error: Callable[[], Exception]) -> None:
        self._inner = inner
        self._method = method
        self._error = error

    def __getattr__(self, name: str) -> Any:
        if name != self._method:
            return getattr(self._inner, name)

        async def fail(*args: object, **kwargs: object) -> NoReturn:
            raise self._error()

        return fail


class _UnreachableEngine:
    """An engine whose every connection attempt raises what ``error()`` makes."""

    def __init__(self, error: Callable[[], Exception]) -> None:
        self._error = error

    def connect(self) -> NoReturn:
        raise self._error()


class FlakyStore:
    """A copy of ``real`` whose repositories can be broken one method at a time."""

    def __init__(self, real: Store) -> None:
        self.real = real
        self.store = copy.copy(real)

    def fail(self, repository: str, method: str, error: Callable[[], Exception]) -> None:
        """From now on ``store.<repository>.<method>(...)`` raises ``error()``."""
        setattr(self.store, repository, _Failing(getattr(self.real, repository), method, error))

    def fail_connections(self, error: Callable[[], Exception]) -> None:
        """From now on every new connection of the copy (``store.ping()``'s) raises
        ``error()``; the repositories, which hold the real engine, are untouched."""
        setattr(self.store, "engine", _UnreachableEngine(error))  # noqa: B010 (typed AsyncEngine)


def leaky_message(ctx: AuthzContext) -> str:
    """An error message full of what must never reach a client."""
    return (
        f"database error (OperationalError) at {ctx.settings.data_dir}/lychgate.db, "
        f"via {ctx.settings.effective_authz_listen}"
    )


def assert_leaks_nothing(ctx: AuthzContext, body: str) -> None:
    """No traceback, source path, data directory or socket path in ``body``."""
    for secret in (
        "Traceback",
        ".py",
        "lychgate/",
        "OperationalError",
        str(ctx.settings.data_dir),
        ctx.settings.effective_authz_listen,
        "authz.sock",
    ):
        assert secret not in body, f"{secret!r} leaked: {body[:300]!r}"


async def count_rows(store: Store, table: Table) -> int:
    async with store.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


@pytest.fixture
def flaky(store: Store) -> FlakyStore:
    return FlakyStore(store)


@pytest.fixture
async def authz(ctx: AuthzContext, flaky: FlakyStore) -> AsyncIterator[FastAPI]:
    """authz over the flaky copy of the store (nothing broken until a test says so)."""
    app = create_app(replace(ctx, store=flaky.store), poll_interval=0.05)
    async with app.router.lifespan_context(app):
        yield app
