"""SQL for suppressions: addresses that must never be mailed again."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, delete, func, select

from campaign.models import SuppressionReason
from campaign.store.dialect import in_keys, insert_ignoring_conflicts
from campaign.store.tables import suppressions


def reasons_for(conn: Connection, keys: Sequence[str]) -> dict[str, str]:
    """The suppression reason of each key in ``keys`` that is suppressed."""
    if not keys:
        return {}
    condition, params = in_keys(conn, suppressions.c.email_key, keys)
    stmt = select(suppressions.c.email_key, suppressions.c.reason).where(condition)
    return {key: reason for key, reason in conn.execute(stmt, params)}  # noqa: C416 - Result has keys(): dict() would misread it


def count_among(conn: Connection, keys: Sequence[str]) -> int:
    """How many of ``keys`` are suppressed."""
    condition, params = in_keys(conn, suppressions.c.email_key, keys)
    return conn.execute(select(func.count()).where(condition), params).scalar_one()


def add(
    conn: Connection,
    email_key: str,
    reason: SuppressionReason,
    detail: str | None,
    message_id: int | None,
    now: datetime,
) -> bool:
    """Suppress an address by its key; an existing suppression is kept as it is. True when it was added."""
    # RETURNING says whether a row went in; rowcount cannot (psycopg reports -1 under the RETURNING SQLAlchemy adds).
    added = conn.execute(
        insert_ignoring_conflicts(conn, suppressions).returning(suppressions.c.id),
        {"email_key": email_key, "reason": reason.value, "detail": detail, "message_id": message_id, "created_at": now},
    ).first()
    return added is not None


def reason_for(conn: Connection, email_key: str) -> SuppressionReason | None:
    """Why the address is suppressed, or None when it is not."""
    reason = conn.execute(select(suppressions.c.reason).where(suppressions.c.email_key == email_key)).scalar()
    return None if reason is None else SuppressionReason(reason)


def lift(conn: Connection, email_key: str, reason: SuppressionReason) -> bool:
    """Remove the address's suppression if it is for ``reason`` (a re-subscribe lifts an unsubscribe, never a
    bounce, a complaint or a suppression by hand); True when one was removed."""
    stmt = delete(suppressions).where(suppressions.c.email_key == email_key, suppressions.c.reason == reason.value)
    return bool(conn.execute(stmt).rowcount)
