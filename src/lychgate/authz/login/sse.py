"""Server-sent events: the wire format and an unbuffered streaming response.

Frames follow the HTML Standard, section 9.2 ("Server-sent events"): ``event:`` and ``data:``
lines ended by a blank line; a line starting with ``:`` is a comment, which we send as a
heartbeat so that an idle stream keeps flowing through proxies and a vanished client is noticed
(the next write fails). ``retry:`` sets the client's reconnection delay.

Nothing between us and the browser may buffer a stream: the response says ``no-store`` and
``X-Accel-Buffering: no`` (nginx, when one sits in front), and authz has no middleware that
collects bodies.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Final

from fastapi.responses import StreamingResponse

MEDIA_TYPE: Final = "text/event-stream"
HEADERS: Final = {"cache-control": "no-store", "x-accel-buffering": "no"}
RETRY_MS: Final = 3000
HEARTBEAT: Final = 15.0


def frame(data: Mapping[str, object], *, event: str | None = None) -> str:
    """One event; ``data`` as compact JSON on a single line (JSON escapes any newline)."""
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=True)
    head = "" if event is None else f"event: {event}\n"
    return f"{head}data: {body}\n\n"


def comment(text: str = "") -> str:
    return f": {text}\n\n"


def retry(milliseconds: int = RETRY_MS) -> str:
    return f"retry: {milliseconds}\n\n"


def event_stream(frames: AsyncIterator[str]) -> StreamingResponse:
    """A streaming ``text/event-stream`` response over ``frames``."""
    return StreamingResponse(frames, media_type=MEDIA_TYPE, headers=HEADERS)


#: For the OpenAPI document: what an SSE route answers.
OPENAPI_STREAM: Final[dict[int | str, dict[str, object]]] = {
    200: {
        "description": "A stream of server-sent events (text/event-stream).",
        "content": {MEDIA_TYPE: {"schema": {"type": "string"}}},
    }
}
