"""SQL for the audit log (the ``audit_log`` table): rows are only ever added, and read newest first."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from campaign.models import AuditEntry
from campaign.store.tables import audit_log, users


def insert_entry(
    conn: Connection,
    at: datetime,
    action: str,
    *,
    user_id: int | None,
    target: str | None,
    details: Mapping[str, Any],
) -> None:
    """Add one entry."""
    conn.execute(insert(audit_log).values(at=at, user_id=user_id, action=action, target=target, details=dict(details)))


def recent(
    conn: Connection, limit: int, target: str | None = None, actions: Collection[str] | None = None
) -> list[AuditEntry]:
    """The newest ``limit`` entries (of one target, and of these actions, when given), newest first, with the
    user's name."""
    stmt = (
        select(audit_log, users.c.name.label("user_name"))
        .outerjoin(users, users.c.id == audit_log.c.user_id)
        .order_by(audit_log.c.at.desc(), audit_log.c.id.desc())
        .limit(limit)
    )
    if target is not None:
        stmt = stmt.where(audit_log.c.target == target)
    if actions is not None:
        stmt = stmt.where(audit_log.c.action.in_(sorted(actions)))
    return [
        AuditEntry(
            id=row.id,
            at=row.at,
            user_id=row.user_id,
            user_name=row.user_name,
            action=row.action,
            target=row.target,
            details=row.details or {},
        )
        for row in conn.execute(stmt)
    ]
