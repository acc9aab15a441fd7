"""SQL for suppressions: addresses that must never be mailed again."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, func, select

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
) -> None:
    """Suppress an address by its key; an existing suppression is kept as it is."""
    conn.execute(
        insert_ignoring_conflicts(conn, suppressions),
        {"email_key": email_key, "reason": reason.value, "detail": detail, "message_id": message_id, "created_at": now},
    )
