"""The database handle: one engine, read and write transactions, the same on SQLite and PostgreSQL.

Contract: every store function takes a :class:`sqlalchemy.Connection` opened by :meth:`Database.read`
or :meth:`Database.write`. A write transaction on SQLite starts with ``BEGIN IMMEDIATE``: under WAL a
deferred transaction that reads and then writes fails with SQLITE_BUSY when another writer got in between,
and the busy timeout cannot save it; taking the write lock up front makes writers queue instead.

A handle never creates a SQLite file: connections open an existing file only (``mode=rw``), so a command
run against a mistyped path or before ``campaign init`` leaves nothing behind; :meth:`Database.create`
(called by init) makes the file and its directory. A URL that cannot work (an unknown kind of database,
a file that is not a database, a server that does not answer) is a one-line :class:`StorageError`
beginning with ``database.url:``, the setting to fix.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from campaign.exceptions import StorageError, WriteLockBusyError

_IMMEDIATE = "campaign_sqlite_immediate"
_NO_WAIT = "campaign_sqlite_no_wait"
SETTING = "database.url"
_KINDS = "use sqlite:/// or postgresql+psycopg://"
_TOGETHER_WAIT_MS = 250
"""How long :meth:`Database.read_together` waits for the write lock before reading on one connection."""


class Database:
    """A connection pool to one database, with :meth:`read` and :meth:`write` transactions."""

    def __init__(self, url: str, *, busy_timeout_ms: int = 10_000, mmap_bytes: int = 0, echo: bool = False) -> None:
        """``mmap_bytes``: on SQLite, how much of the file connections read through a memory map (0: none).
        Reading so is cheaper, most of all when another process's commits keep invalidating the page cache,
        but every page read stays mapped: worth it for the delivery worker, not for a big import."""
        try:
            self.url = make_url(url)
        except ArgumentError:
            raise StorageError(f"{SETTING}: {url!r} is not a database URL ({_KINDS})") from None
        self.busy_timeout_ms = busy_timeout_ms
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        try:
            self.engine: Engine = create_engine(self.url, echo=echo)
        except NoSuchModuleError:
            raise StorageError(f"{SETTING}: unknown database kind {self.url.drivername!r} ({_KINDS})") from None
        except ImportError as exc:
            raise StorageError(
                f"{SETTING}: {self.describe()} needs the Python module {exc.name!r}, which is not installed ({_KINDS})"
            ) from None
        if self.is_sqlite:
            _configure_sqlite(self.engine, busy_timeout_ms, mmap_bytes)
            if self.file is not None and "uri" not in self.url.query:
                _open_existing_only(self.engine, self.file)

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
    def file(self) -> Path | None:
        """The SQLite database file, absolute, symlinks and ``..`` resolved; None for an in-memory or server
        database. One file has one name here: the service's lock beside it (scheduler/lock.py) must be one
        lock however the URL spells the path."""
        if not self.is_sqlite or self.in_memory:
            return None
        return Path(str(self.url.database)).resolve()

    def create(self) -> None:
        """Create the SQLite file (empty) and its directory if they do not exist; nothing for other databases.

        Only ``campaign init`` calls this: every other connection opens an existing file only. The file is made
        readable by its owner only (0600), as exports of personal data are: it holds every contact, and SQLite
        gives its journal files (``-wal``, ``-shm``) the database file's permissions.
        """
        path = self.file
        if path is None or path.is_file():
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with suppress(FileExistsError):  # made meanwhile by another init: as it is
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            sqlite3.connect(f"{path.as_uri()}?mode=rwc", uri=True).close()
        except (OSError, sqlite3.Error) as exc:
            reason = _not_a_directory(path) or getattr(exc, "strerror", None) or str(exc)
            raise StorageError(f"{SETTING}: cannot create {self.describe()}: {reason}") from None

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
    def read_together(self) -> Iterator[tuple[Connection, Connection | None]]:
        """A read transaction (as :meth:`read`) and, on a SQLite file, a second one on another connection that
        sees the very same snapshot, for work run beside the first in another thread (SQLite counts in the
        calling process, one statement on one core: two connections use two). None instead of the second
        elsewhere (PostgreSQL, an in-memory database): then do that work on the first.

        Under WAL a read transaction's snapshot is taken at its first read. Both first reads happen while a
        third connection holds the write lock (``BEGIN IMMEDIATE``, released at once after them), so no commit
        can fall between them: they see the same commits. Writers wait the few hundred microseconds that takes.
        A reader does not wait long for a writer, though: when another connection holds the write lock longer
        than :data:`_TOGETHER_WAIT_MS` (a long import), there is no second connection (None).
        """
        if not self.is_sqlite or self.in_memory:
            with self.read() as conn:
                yield conn, None
            return
        with self._connect() as first, first.begin(), self._connect() as second, second.begin():
            with self._connect() as lock:
                raw = lock.connection.driver_connection
                assert raw is not None
                raw.execute(f"PRAGMA busy_timeout = {_TOGETHER_WAIT_MS}")
                try:
                    raw.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc):
                        raise
                    together = False
                else:
                    for conn in (first, second):
                        conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar()  # the snapshot is taken
                    raw.execute("ROLLBACK")
                    together = True
                finally:
                    raw.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            yield first, second if together else None

    @contextmanager
    def write(self, *, wait: bool = True, foreign_keys: bool = True) -> Iterator[Connection]:
        """A transaction for writing, committed at the end or rolled back on error.

        ``wait=False``: on SQLite, raise :class:`WriteLockBusyError` at once, before anything is done, when
        another connection holds the write lock, instead of waiting up to the busy timeout (a caller with an
        event loop then waits by yielding to it: see :mod:`campaign.store.async_write`).

        ``foreign_keys=False``: on SQLite, the transaction's statements do not check foreign keys, for a caller
        that writes only references it read in this very transaction (they exist until it commits): each check is
        a lookup in the referenced table's index, four a click the tracking recorder writes with its registration
        (2.4 µs of ~12 in SQLite, a batch of 5,000 timed on this machine class). The connection checks them again
        afterwards. Elsewhere (PostgreSQL) no effect.
        """
        with self._connect() as conn:
            conn.execution_options(**{_IMMEDIATE: True, _NO_WAIT: not wait})
            # A pragma SQLite ignores inside a transaction: set on the driver's connection before it begins (a
            # statement through SQLAlchemy would begin one) and after it ends.
            raw = conn.connection.driver_connection if not foreign_keys and self.is_sqlite else None
            if raw is not None:
                raw.execute("PRAGMA foreign_keys = OFF")
            try:
                with conn.begin():
                    yield conn
            finally:
                if raw is not None:
                    raw.execute("PRAGMA foreign_keys = ON")

    @contextmanager
    def _connect(self) -> Iterator[Connection]:
        try:
            conn = self.engine.connect()
        except DBAPIError as exc:
            raise self._open_error(exc.orig) from exc
        except sqlite3.Error as exc:  # raised by the PRAGMAs of a new connection (see _configure_sqlite)
            raise self._open_error(exc) from exc
        with conn:
            yield conn

    def _open_error(self, exc: BaseException | None) -> StorageError:
        """A one-line error for a connection that could not be opened, saying what to fix."""
        # A driver's message may span lines (psycopg adds a hint on a second one).
        detail = " ".join(str(exc).split())
        path = self.file
        if path is None:
            return StorageError(f"{SETTING}: cannot connect to {self.describe()}: {detail}")
        if isinstance(exc, sqlite3.DatabaseError) and "not a database" in detail:
            return StorageError(f"{SETTING}: {self.describe()} is not a SQLite database")
        if (blocked := _not_a_directory(path)) is not None:
            return StorageError(f"{SETTING}: {self.describe()}: {blocked}")
        if not path.exists():
            return StorageError(f"{SETTING}: {self.describe()} does not exist: run `campaign init`")
        return StorageError(f"{SETTING}: cannot open {self.describe()}: {detail}")

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def _not_a_directory(path: Path) -> str | None:
    """Why ``path`` cannot be made or opened when one of its parents is a file, else None."""
    for parent in path.parents:
        if parent.exists():
            return None if parent.is_dir() else f"{parent} is not a directory"
    return None


def _open_existing_only(engine: Engine, path: Path) -> None:
    """Open ``path`` read-write without creating it (SQLite's ``mode=rw``): only init creates a database."""
    uri = f"{path.as_uri()}?mode=rw"

    @event.listens_for(engine, "do_connect")
    def _on_do_connect(_dialect: Any, _record: Any, cargs: list[Any], cparams: dict[str, Any]) -> None:
        # The dialect connects with these arguments after this listener returns.
        cargs[:] = [uri]
        cparams["uri"] = True


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
