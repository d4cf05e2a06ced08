"""A loopback TCP proxy that can simulate database outages for the PostgreSQL bus tests.

Modes: ``forward`` (normal), ``refuse`` (accept, then close at once: the server is down) and
``blackhole`` (keep sockets open, drop every byte: a peer that died without a FIN or RST).
:meth:`TcpProxy.cut_all` aborts every open connection, like a server restart.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Literal

Mode = Literal["forward", "refuse", "blackhole"]


class TcpProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target_host:target_port``."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self.mode: Mode = "forward"
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self.accepted = 0

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)

    def cut_all(self) -> None:
        """Abort every open connection (both sides)."""
        for writer in list(self._writers):
            writer.transport.abort()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self.cut_all()
        for task in list(self._handlers):
            task.cancel()
        for task in list(self._handlers):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(client_w)
        self.accepted += 1
        try:
            if self.mode == "refuse":
                return
            upstream_r, upstream_w = await asyncio.open_connection(*self._target)
            self._writers.add(upstream_w)
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._pump(client_r, upstream_w))
                    tg.create_task(self._pump(upstream_r, client_w))
            finally:
                self._writers.discard(upstream_w)
                upstream_w.transport.abort()
        finally:
            self._writers.discard(client_w)
            client_w.transport.abort()
            self._handlers.discard(task)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if self.mode == "blackhole":
                    continue
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        # One direction ended: end the other too, as a real peer's close would.
        writer.transport.abort()
