"""The few statements whose spelling differs between SQLite and PostgreSQL."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnElement,
    Connection,
    Integer,
    String,
    Subquery,
    Table,
    Text,
    any_,
    bindparam,
    cast,
    extract,
    func,
    literal_column,
    select,
    type_coerce,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine

from campaign.store.tables import UTCDateTime

_UNIXEPOCH = sqlite3.sqlite_version_info >= (3, 38)


def sqlite_driver(conn: Connection) -> sqlite3.Connection:
    """The driver's own connection under a SQLite ``conn``, in its transaction: for the tracking recorder's
    statements, whose rows it binds in C (``executemany`` of lists, which SQLAlchemy's ``exec_driver_sql`` does
    not take) and whose results it reads without SQLAlchemy's row objects."""
    driver = conn.connection.driver_connection
    assert isinstance(driver, sqlite3.Connection)
    return driver


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


def json_rows(dialect_name: str, parameter: str, columns: Sequence[tuple[str, TypeEngine[Any]]]) -> Subquery:
    """The rows of a JSON array of arrays bound as ``parameter``, as a subquery ``r`` with these columns.

    Many rows then travel as one parameter of one statement: for small batches on the hot path, binding
    and processing each row's parameters costs more than the statement itself.
    """
    value: ColumnElement[Any]
    if dialect_name == "postgresql":
        value = func.json_array_elements(cast(bindparam(parameter, type_=Text()), JSON())).column_valued("value")
        fields = [
            cast(value.op("->>")(literal_column(str(i))), type_).label(name) for i, (name, type_) in enumerate(columns)
        ]
    else:
        value = func.json_each(bindparam(parameter)).table_valued("value").c.value
        fields = [
            type_coerce(func.json_extract(value, f"$[{i}]"), type_).label(name)
            for i, (name, type_) in enumerate(columns)
        ]
    return select(*fields).subquery("r")


_SQLITE_INSTANT = "%04d-%02d-%02d %02d:%02d:%02d.%06d"  # SQLAlchemy's SQLite text of an instant


def json_instants(dialect: Dialect) -> Callable[[datetime | None], Any]:
    """How an instant goes into a :func:`json_rows` parameter: as the backend stores a ``UTCDateTime`` (naive UTC
    text on SQLite; ISO 8601 with its offset, which PostgreSQL casts), since the ``SELECT`` of the rows copies
    values with no type processing on the way."""
    to_db = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    if dialect.name == "sqlite":
        to_utc = UTCDateTime().process_bind_param

        # SQLAlchemy's SQLite text, "YYYY-MM-DD HH:MM:SS.ffffff", which its processor formats from a dict of the
        # fields: isoformat writes the same in 0.8 µs instead of 2.4 (the tracking recorder stores one a hit).
        def stored_on_sqlite(instant: datetime | None) -> Any:
            if instant is not None and instant.tzinfo is UTC:  # the usual case, a clock's instant: no conversion
                # Its fields formatted (0.7 µs; isoformat of an aware instant 1.0, and a naive copy 0.9 more).
                i = instant
                return _SQLITE_INSTANT % (i.year, i.month, i.day, i.hour, i.minute, i.second, i.microsecond)
            utc = to_utc(instant, dialect)
            return None if utc is None else utc.isoformat(" ", "microseconds")

        return stored_on_sqlite

    def stored(instant: datetime | None) -> Any:
        if instant is None:
            return None
        value = to_db(instant) if to_db else instant
        return value.isoformat() if isinstance(value, datetime) else value

    return stored


def epoch_seconds(dialect_name: str, instant: ColumnElement[Any]) -> ColumnElement[int]:
    """Whole seconds since 1970-01-01 UTC of a stored instant (fractions dropped): what time buckets and
    durations are computed from, in the database. SQLite stores naive UTC text: ``unixepoch()`` (SQLite 3.38+)
    reads it three times faster than ``strftime('%s')``, which older libraries have (a report reads several per
    tracked message); PostgreSQL's epoch of a ``timestamptz`` does not depend on the session's zone."""
    if dialect_name == "postgresql":
        return cast(func.floor(extract("epoch", instant)), BigInteger())
    if _UNIXEPOCH:
        return type_coerce(func.unixepoch(instant), Integer())
    return cast(func.strftime("%s", instant), Integer())


def sqlite_positional_sql(stmt: Any, order: Sequence[str]) -> str:
    """The SQL of ``stmt`` (whose parameters are plain named ``bindparam``\\ s) for the SQLite driver, with
    positional parameters in ``order`` (checked: the caller builds its tuples in that order), to be run with
    ``exec_driver_sql``: for ``executemany`` of ready tuples, bound in C with no type processing by SQLAlchemy.
    Values must be as SQLite stores them (:func:`json_instants` for instants)."""
    compiled = stmt.compile(dialect=sqlite.dialect(paramstyle="qmark"))
    if list(compiled.positiontup or ()) != list(order):
        raise ValueError(f"parameters in the order {compiled.positiontup}, not {list(order)}")
    return str(compiled)
