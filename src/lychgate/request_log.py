"""Which request a log line is about: the request's id on the lines logged while serving it.

authz runs each request in a task of its own (uvicorn's), and :class:`~lychgate.authz.
request_id.RequestIdScope` sets :data:`CURRENT` to the ``X-Request-Id`` the gateway sent with
it. :class:`RequestNote`, on the handler of the long-running commands' stderr
(:func:`lychgate.cli.logs.setup_logging`), ends each line logged in that task with
`` (request <id>)``: the same words the gateway's own error lines use, so one search finds a
request's lines in both processes, and the id a user quotes from an error page leads to them.
The id's field and shape are here too, for every process that reads one: the gateway
(:mod:`lychgate.gateway.http.request_ids`), authz and the device CLI, which loads no server.

Only a task's own context is set, never reset: the log line of an exception that leaves the
app (uvicorn's ``Exception in ASGI application``) is written after the middleware returns, in
the same task, and must still name the request. A task ends with its request, and the tasks
it starts copy the id, as work done for that request.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Final

#: The field's lower-cased name, as the gateway writes it (upstream, its own answers) and reads
#: it (a trusted proxy's; authz's from the gateway; the device CLI's from an answer).
ID_FIELD: Final = "x-request-id"

_KEPT: Final = re.compile(r"[A-Za-z0-9._~:@/+=-]{1,128}")


def kept_id(value: str) -> bool:
    """Whether ``value`` has the shape of a request id that may be passed on, logged and shown:
    1 to 128 characters of ``[A-Za-z0-9._~:@/+=-]`` (the gateway's own, a UUID, nginx's
    ``$request_id``), nothing a log line, a page or a terminal would read as more than text."""
    return _KEPT.fullmatch(value) is not None


def one_id(given: Sequence[str]) -> str:
    """The request id that the values ``given`` of ``X-Request-Id`` name: the one value, if
    there is exactly one and :func:`kept_id` takes it; else ``""`` (two name nothing)."""
    return given[0] if len(given) == 1 and kept_id(given[0]) else ""


#: The id of the request the current task serves; empty outside one.
CURRENT: Final[ContextVar[str]] = ContextVar("lychgate_request_id", default="")

#: The record attribute :class:`RequestNote` sets, for a format string.
NOTE_FIELD: Final = "request_note"


def note(rid: str) -> str:
    """What a log line about request ``rid`` ends with (nothing for no id)."""
    return f" (request {rid})" if rid else ""


class RequestNote(logging.Filter):
    """Sets ``request_note`` on every record: :func:`note` of the current request's id."""

    def filter(self, record: logging.LogRecord) -> bool:
        setattr(record, NOTE_FIELD, note(CURRENT.get()))
        return True
