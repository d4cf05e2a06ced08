"""Bodies of the portal's session API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from lychgate.domain import Session
from lychgate.ids import session_handle


class SessionOut(BaseModel):
    """One of the user's live sessions. ``id`` is a handle, never the session's secret id."""

    id: str = Field(description="A handle for this session (not its cookie value).")
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    user_agent: str
    ip: str
    current: bool = Field(description="True for the session making this request.")

    @classmethod
    def of(cls, session: Session, *, current: bool) -> SessionOut:
        return cls(
            id=session_handle(session.id),
            created_at=session.created_at,
            last_seen_at=session.last_seen_at,
            expires_at=session.expires_at,
            user_agent=session.user_agent,
            ip=session.ip,
            current=current,
        )


class SessionsOut(BaseModel):
    sessions: list[SessionOut]


class LogoutOut(BaseModel):
    """Where the browser goes after signing out."""

    redirect: str
