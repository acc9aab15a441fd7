"""The audit log: who did what, to what, when.

Every staff action is recorded: logins (and failed attempts), logouts and user changes now (by
:mod:`campaign.services.users` and :mod:`campaign.services.sessions`, in the transaction of the change itself, so
a change is never without its entry), and the staff's actions on campaigns as the web pages gain them
(:func:`record`). ``user_id`` None means the command line (the machine's operator) or a visitor not logged in.
Entries are only ever added.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Any

from campaign.models import AuditAction, AuditEntry
from campaign.store import audit as audit_store
from campaign.store.engine import Database


def record(
    db: Database,
    action: AuditAction,
    *,
    user_id: int | None,
    target: str | None = None,
    details: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> None:
    """Add an entry in a transaction of its own (a change made in a transaction writes its entry in that one,
    through :func:`campaign.store.audit.insert_entry`)."""
    with db.write() as conn:
        audit_store.insert_entry(
            conn, now or datetime.now(UTC), action.value, user_id=user_id, target=target, details=details or {}
        )


def recent_actions(
    db: Database, limit: int = 50, target: str | None = None, actions: Collection[AuditAction] | None = None
) -> list[AuditEntry]:
    """The newest ``limit`` entries, of one ``target`` (a campaign's name...) and of these ``actions`` when given
    (a page about one kind of thing shows its own actions: another kind's target may share the name), newest
    first."""
    with db.read() as conn:
        return audit_store.recent(conn, limit, target, None if actions is None else [a.value for a in actions])
