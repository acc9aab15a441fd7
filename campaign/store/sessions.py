"""SQL for staff login sessions (the ``sessions`` table), keyed by the hash of the cookie's token (the service
hashes; this module never sees a token)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, insert, select, update

from campaign.models import Role
from campaign.store.tables import sessions, users


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A session and the user it belongs to, as stored."""

    id: str
    user_id: int
    user_name: str
    role: Role
    user_disabled: bool
    csrf_secret: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    timezone: str | None = None


def insert_session(
    conn: Connection,
    session_id: str,
    user_id: int,
    csrf_secret: str,
    now: datetime,
    expires_at: datetime,
    timezone: str | None = None,
) -> None:
    """Store a new session, begun ``now`` and ending at ``expires_at`` at the latest, its pages' times shown in
    ``timezone`` (None: UTC)."""
    conn.execute(
        insert(sessions).values(
            id=session_id,
            user_id=user_id,
            csrf_secret=csrf_secret,
            created_at=now,
            last_seen_at=now,
            expires_at=expires_at,
            timezone=timezone,
        )
    )


def find(conn: Connection, session_id: str) -> SessionRecord | None:
    """The session with this id, with its user."""
    stmt = (
        select(sessions, users.c.name, users.c.role, users.c.disabled_at)
        .join(users, users.c.id == sessions.c.user_id)
        .where(sessions.c.id == session_id)
    )
    row = conn.execute(stmt).first()
    if row is None:
        return None
    return SessionRecord(
        id=row.id,
        user_id=row.user_id,
        user_name=row.name,
        role=Role(row.role),
        user_disabled=row.disabled_at is not None,
        csrf_secret=row.csrf_secret,
        created_at=row.created_at,
        last_seen_at=row.last_seen_at,
        expires_at=row.expires_at,
        timezone=row.timezone,
    )


def touch(conn: Connection, session_id: str, now: datetime) -> None:
    """Record a use of the session at ``now`` (its idle time starts again)."""
    conn.execute(update(sessions).where(sessions.c.id == session_id).values(last_seen_at=now))


def delete_session(conn: Connection, session_id: str) -> bool:
    """End one session; True when it existed."""
    return bool(conn.execute(delete(sessions).where(sessions.c.id == session_id)).rowcount)


def delete_for_user(conn: Connection, user_id: int) -> int:
    """End every session of a user; how many there were."""
    return conn.execute(delete(sessions).where(sessions.c.user_id == user_id)).rowcount


def delete_expired(conn: Connection, idle_since: datetime, now: datetime) -> int:
    """Delete the sessions past their absolute end, or unused since ``idle_since``; how many."""
    stmt = delete(sessions).where((sessions.c.expires_at <= now) | (sessions.c.last_seen_at <= idle_since))
    return conn.execute(stmt).rowcount
