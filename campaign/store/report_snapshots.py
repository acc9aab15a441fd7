"""SQL for kept reports (the ``report_snapshots`` table): one row per key, replaced whole, read by key.

The bodies are opaque text here: :mod:`campaign.services.report_snapshots` says what they hold and reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, select

from campaign.store.dialect import upserting_insert
from campaign.store.tables import report_snapshots


@dataclass(frozen=True, slots=True)
class StoredSnapshot:
    """One kept report: the shape of its body (its JSON's version), when its counting began, and the body."""

    shape: str
    computed_at: datetime
    body: str


def find(conn: Connection, key: str) -> StoredSnapshot | None:
    """The snapshot kept under ``key``, or None."""
    t = report_snapshots
    row = conn.execute(select(t.c.shape, t.c.computed_at, t.c.body).where(t.c.key == key)).first()
    return None if row is None else StoredSnapshot(row.shape, row.computed_at, row.body)


def put(conn: Connection, key: str, snapshot: StoredSnapshot) -> None:
    """Keep ``snapshot`` under ``key``, in place of the one kept there before: one upsert, so two servers
    keeping the same view at once leave one row (the later), never a conflict."""
    values = {"shape": snapshot.shape, "computed_at": snapshot.computed_at, "body": snapshot.body}
    stmt = upserting_insert(conn, report_snapshots).values(key=key, **values)
    conn.execute(stmt.on_conflict_do_update(index_elements=[report_snapshots.c.key], set_=values))


def forget_older(conn: Connection, before: datetime) -> int:
    """Delete the snapshots counted before ``before`` (views nobody opened for long); how many."""
    return conn.execute(delete(report_snapshots).where(report_snapshots.c.computed_at < before)).rowcount or 0


def forget_all(conn: Connection) -> None:
    """Delete every snapshot (after an action that changes what they count)."""
    conn.execute(delete(report_snapshots))
