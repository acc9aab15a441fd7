"""SQL for suppressions: addresses that must never be mailed again."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, select

from campaign.store.tables import suppressions


def reasons_for(conn: Connection, keys: Sequence[str]) -> dict[str, str]:
    """The suppression reason of each key in ``keys`` that is suppressed."""
    if not keys:
        return {}
    stmt = select(suppressions.c.email_key, suppressions.c.reason).where(suppressions.c.email_key.in_(keys))
    return {key: reason for key, reason in conn.execute(stmt)}  # noqa: C416 - Result has keys(): dict() would misread it
