"""The few statements whose spelling differs between SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, String, Table, any_, bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite


def upserting_insert(conn: Connection, table: Table) -> Any:
    """The connection's backend's ``INSERT``, the one that has ``on_conflict_do_nothing|update``."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def insert_ignoring_conflicts(conn: Connection, table: Table) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` for the connection's backend."""
    return upserting_insert(conn, table).on_conflict_do_nothing()


def in_keys(
    conn: Connection, column: ColumnElement[str], keys: Sequence[str]
) -> tuple[ColumnElement[bool], dict[str, Any]]:
    """``column IN keys`` with all the keys bound as one parameter, and that parameter.

    An expanding ``IN`` renders and binds one placeholder per key: for the thousands of keys an import looks up
    per batch, naming them costs more than the query. SQLite reads one JSON array (``json_each``); PostgreSQL
    one array (``= ANY``).
    """
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam("keys", type_=postgresql.ARRAY(String()))), {"keys": list(keys)}
    values = select(func.json_each(bindparam("keys")).table_valued("value").c.value)
    return column.in_(values), {"keys": json.dumps(list(keys))}
