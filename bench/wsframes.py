"""Just enough RFC 6455 for a WebSocket load generator and echo server.

The ``websockets`` package costs a coroutine and several awaits per message; with 1,000
connections on two cores, client and echo server then cap the rate before any proxy does, and
every proxy measures the same. These callback-driven protocols do one parse and one write per
message, so the proxy in the middle is what the numbers show.

Scope: binary and text messages, fragmented or not, ping, pong and close; no extensions.
"""

from __future__ import annotations

import base64
import secrets
import struct
from dataclasses import dataclass

from lychgate.gateway.http.wsframes import accept_for

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA


class FrameError(Exception):
    """The peer sent bytes that are not a WebSocket frame we accept."""


@dataclass(frozen=True, slots=True)
class Message:
    """A complete message (fragments joined) or a control frame."""

    opcode: int
    payload: bytes


def new_key() -> str:
    """A fresh Sec-WebSocket-Key: 16 random bytes, base64 (section 4.1)."""
    return base64.b64encode(secrets.token_bytes(16)).decode()


def apply_mask(data: bytes, mask: bytes) -> bytes:
    """XOR ``data`` with the 4-byte ``mask`` repeated (section 5.3); its own inverse."""
    n = len(data)
    if n == 0:
        return data
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


def encode_frame(opcode: int, payload: bytes, *, masked: bool) -> bytes:
    """One final frame. Clients must mask with a fresh unpredictable key (section 5.3);
    servers must not mask (section 5.1)."""
    n = len(payload)
    head = bytearray([0x80 | opcode])
    mask_bit = 0x80 if masked else 0
    if n < 126:
        head.append(mask_bit | n)
    elif n < 1 << 16:
        head.append(mask_bit | 126)
        head += struct.pack("!H", n)
    else:
        head.append(mask_bit | 127)
        head += struct.pack("!Q", n)
    if not masked:
        return bytes(head) + payload
    mask = secrets.token_bytes(4)
    return bytes(head) + mask + apply_mask(payload, mask)


class FrameReader:
    """Incremental frame parser: feed bytes, get complete messages back.

    ``expect_masked`` is True on the server side: every client frame must be masked, and no
    server frame may be (section 5.1).
    """

    def __init__(self, *, expect_masked: bool, max_size: int = 1 << 20) -> None:
        self._buf = bytearray()
        self._expect_masked = expect_masked
        self._max_size = max_size
        self._fragments: list[bytes] = []
        self._fragment_opcode = 0

    def feed(self, data: bytes) -> list[Message]:
        """Add ``data``; return every message completed by it."""
        self._buf += data
        out: list[Message] = []
        while (frame := self._next_frame()) is not None:
            fin, opcode, payload = frame
            if opcode >= OP_CLOSE:  # control frames are never fragmented (section 5.5)
                out.append(Message(opcode, payload))
            elif opcode == OP_CONTINUATION:
                if not self._fragments:
                    raise FrameError("continuation without a first fragment")
                self._fragments.append(payload)
                if fin:
                    out.append(Message(self._fragment_opcode, b"".join(self._fragments)))
                    self._fragments = []
            elif fin:
                out.append(Message(opcode, payload))
            else:
                self._fragment_opcode = opcode
                self._fragments = [payload]
        return out

    def _next_frame(self) -> tuple[bool, int, bytes] | None:
        buf = self._buf
        if len(buf) < 2:
            return None
        b0, b1 = buf[0], buf[1]
        if b0 & 0x70:
            raise FrameError("reserved bits set without an extension")
        masked = bool(b1 & 0x80)
        if masked != self._expect_masked:
            raise FrameError("masking does not match the sender's role")
        n = b1 & 0x7F
        pos = 2
        if n == 126:
            if len(buf) < 4:
                return None
            n = struct.unpack_from("!H", buf, 2)[0]
            pos = 4
        elif n == 127:
            if len(buf) < 10:
                return None
            n = struct.unpack_from("!Q", buf, 2)[0]
            pos = 10
        if n > self._max_size:
            raise FrameError(f"frame of {n} bytes is over the limit")
        mask = b""
        if masked:
            mask = bytes(buf[pos : pos + 4])
            pos += 4
        if len(buf) < pos + n:
            return None
        payload = bytes(buf[pos : pos + n])
        del buf[: pos + n]
        if masked:
            payload = apply_mask(payload, mask)
        return bool(b0 & 0x80), b0 & 0x0F, payload


class HandshakeError(Exception):
    """The opening handshake (RFC 6455 section 4) was refused or malformed."""


def _header_map(head: bytes) -> tuple[str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    fields: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip().lower()] = value.strip()
    return lines[0], fields


def upgrade_key(head: bytes) -> str | None:
    """Sec-WebSocket-Key of a request head (without the blank line) that asks for a
    WebSocket upgrade (section 4.2.1), or None for any other request."""
    _, fields = _header_map(head)
    connection = {t.strip().lower() for t in fields.get("connection", "").split(",")}
    if fields.get("upgrade", "").lower() != "websocket" or "upgrade" not in connection:
        return None
    if fields.get("sec-websocket-version") != "13":
        return None
    return fields.get("sec-websocket-key") or None


def upgrade_request(host: str, path: str, key: str, headers: dict[str, str]) -> bytes:
    """A client's opening handshake (section 4.1) with extra ``headers`` (the cookie)."""
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def upgrade_response(key: str) -> bytes:
    """The server's 101 answer to a request carrying ``key`` (section 4.2.2)."""
    return (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_for(key)}\r\n\r\n"
    ).encode("latin-1")


def check_upgrade_response(head: bytes, key: str) -> None:
    """Raise HandshakeError unless ``head`` is a 101 with the right accept value
    (section 4.1, client requirements 1 to 4)."""
    status_line, fields = _header_map(head)
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or parts[1] != "101":
        raise HandshakeError(f"answered {status_line!r}")
    if fields.get("sec-websocket-accept") != accept_for(key):
        raise HandshakeError("wrong Sec-WebSocket-Accept")
