"""SQL for the installation id (see :class:`campaign.store.tables.InstallationRow`)."""

from __future__ import annotations

from sqlalchemy import Connection, select

from campaign.store.tables import installation


def ids(conn: Connection) -> list[str]:
    """Every installation id the database holds: one, unless someone edited the table by hand."""
    return list(conn.scalars(select(installation.c.id)))
