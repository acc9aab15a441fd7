"""The database handle: one engine, read and write transactions, the same on SQLite and PostgreSQL.

Contract: every store function takes a :class:`sqlalchemy.Connection` opened by :meth:`Database.read`
or :meth:`Database.write`. A write transaction on SQLite starts with ``BEGIN IMMEDIATE``: under WAL a
deferred transaction that reads and then writes fails with SQLITE_BUSY when another writer got in between,
and the busy timeout cannot save it; taking the write lock up front makes writers queue instead.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import OperationalError

from campaign.exceptions import StorageError, WriteLockBusyError

_IMMEDIATE = "campaign_sqlite_immediate"
_NO_WAIT = "campaign_sqlite_no_wait"


class Database:
    """A connection pool to one database, with :meth:`read` and :meth:`write` transactions."""

    def __init__(self, url: str, *, busy_timeout_ms: int = 10_000, mmap_bytes: int = 0, echo: bool = False) -> None:
        """``mmap_bytes``: on SQLite, how much of the file connections read through a memory map (0: none).
        Reading so is cheaper, most of all when another process's commits keep invalidating the page cache,
        but every page read stays mapped: worth it for the delivery worker, not for a big import."""
        self.url = make_url(url)
        self.busy_timeout_ms = busy_timeout_ms
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        if self.is_sqlite and self.url.database not in (None, "", ":memory:"):
            Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(self.url, echo=echo)
        if self.is_sqlite:
            _configure_sqlite(self.engine, busy_timeout_ms, mmap_bytes)

    def variant(self, *, mmap_bytes: int) -> Database:
        """Another pool to the same database, with other connection settings (dispose of it when done)."""
        return Database(
            self.url.render_as_string(hide_password=False), busy_timeout_ms=self.busy_timeout_ms, mmap_bytes=mmap_bytes
        )

    @property
    def in_memory(self) -> bool:
        """An SQLite database that lives in this process only."""
        return self.is_sqlite and self.url.database in (None, "", ":memory:")

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.url.get_backend_name()

    def describe(self) -> str:
        """The URL without its password, for messages."""
        return self.url.render_as_string(hide_password=True)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A transaction for reading (a consistent snapshot); committed at the end."""
        with self._connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self, *, wait: bool = True) -> Iterator[Connection]:
        """A transaction for writing, committed at the end or rolled back on error.

        ``wait=False``: on SQLite, raise :class:`WriteLockBusyError` at once, before anything is done, when
        another connection holds the write lock, instead of waiting up to the busy timeout (a caller with an
        event loop then waits by yielding to it: see :mod:`campaign.services.dispatch`).
        """
        with self._connect() as conn:
            conn.execution_options(**{_IMMEDIATE: True, _NO_WAIT: not wait})
            with conn.begin():
                yield conn

    @contextmanager
    def _connect(self) -> Iterator[Connection]:
        try:
            conn = self.engine.connect()
        except OperationalError as exc:
            raise StorageError(f"cannot connect to {self.describe()}: {exc.orig}") from exc
        with conn:
            yield conn

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def _configure_sqlite(engine: Engine, busy_timeout_ms: int, mmap_bytes: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        # With WAL, NORMAL is durable against application crashes; only a power cut can lose the last commits.
        cursor.execute("PRAGMA synchronous = NORMAL")
        # 32 MB of page cache (the default is 2 MB): batch imports and claims touch the big indexes all over.
        cursor.execute("PRAGMA cache_size = -32000")
        if mmap_bytes:
            cursor.execute(f"PRAGMA mmap_size = {int(mmap_bytes)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        options = conn.get_execution_options()
        if not options.get(_IMMEDIATE, False):
            conn.exec_driver_sql("BEGIN")
        elif options.get(_NO_WAIT, False):
            # Straight on the driver's connection: three statements through SQLAlchemy cost more than the
            # transaction they begin, and a sender may try several times while another holds the lock.
            raw = conn.connection.driver_connection
            assert raw is not None
            raw.execute("PRAGMA busy_timeout = 0")
            try:
                raw.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc):
                    raise WriteLockBusyError(f"{engine.url.database} is being written by another connection") from exc
                raise
            finally:
                raw.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
