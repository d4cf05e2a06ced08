"""A unix upstream whose path is too long for a socket address is never connected to.

uvloop cuts such a path to its first 108 bytes and connects there: a socket listening at that
shorter path got the user's requests, with their identity assertions.
"""

from __future__ import annotations

import pytest

from lychgate.gateway.http.pool import UpstreamError, UpstreamPool, unverified_client_context
from lychgate.gateway.types import Upstream
from lychgate.unix_sockets import MAX_SOCKET_PATH_BYTES, socket_path_problem


def test_the_bound_is_what_the_kernel_takes_with_its_nul() -> None:
    assert socket_path_problem("/" + "x" * (MAX_SOCKET_PATH_BYTES - 1)) is None
    problem = socket_path_problem("/" + "x" * MAX_SOCKET_PATH_BYTES)
    assert problem is not None
    assert f"is {MAX_SOCKET_PATH_BYTES + 1} bytes long" in problem


async def test_the_pool_refuses_before_connecting() -> None:
    # Without the check this was a connect failure ("No such file or directory", from the cut
    # path), or, with a socket listening there, a connection to it. No socket is bound here:
    # CPython and uvloop refuse to bind 108 bytes, though uvloop connects to them.
    path = "/tmp/" + "d" * 110 + "/s.sock"
    pool = UpstreamPool(ssl_context=unverified_client_context())
    try:
        with pytest.raises(UpstreamError) as info:
            await pool.connect(Upstream(f"unix:{path}"))
    finally:
        pool.close()
    assert info.value.kind == "bad_url"
    assert f"at most {MAX_SOCKET_PATH_BYTES}" in str(info.value)
