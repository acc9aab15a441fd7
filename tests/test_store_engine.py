"""The database handle: SQLite settings, write locking, and UTC timestamps on both backends."""

from __future__ import annotations

import stat
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select, text, update

from campaign.exceptions import StorageError, WriteLockBusyError
from campaign.services.database import init_database
from campaign.store.engine import Database
from campaign.store.tables import lists


# SQLite only: SQLite's connection settings (PRAGMAs).
def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(sqlite_db: Database) -> None:
    with sqlite_db.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10_000


def test_a_write_may_skip_foreign_key_checks_for_its_own_transaction_only(sqlite_db: Database) -> None:
    with sqlite_db.write() as conn:
        conn.execute(text("CREATE TABLE parent (id INTEGER PRIMARY KEY)"))
        conn.execute(text("CREATE TABLE child (parent_id INTEGER REFERENCES parent (id))"))
    with sqlite_db.write(foreign_keys=False) as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 0
        conn.execute(text("INSERT INTO child VALUES (7)"))  # taken: not checked
    with pytest.raises(RuntimeError), sqlite_db.write(foreign_keys=False) as conn:
        raise RuntimeError("rolled back")
    # The pooled connection checks them again, after a commit and after a rollback alike.
    with pytest.raises(Exception, match="FOREIGN KEY"), sqlite_db.write() as conn:
        conn.execute(text("INSERT INTO child VALUES (8)"))
    with sqlite_db.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM child").scalar() == 1


def test_sqlite_database_and_directory_are_created_only_on_request(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'deep' / 'er' / 'x.db'}")
    with pytest.raises(StorageError, match="does not exist: run `campaign init`"), db.write():
        pass
    assert not (tmp_path / "deep").exists()
    db.create()
    with db.write() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    assert (tmp_path / "deep" / "er" / "x.db").exists()
    db.create()  # an existing database is left as it is
    with db.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 0
    db.dispose()


# SQLite only: SQLite's WAL write lock, taken up front by BEGIN IMMEDIATE.
def test_concurrent_read_then_write_transactions_queue_instead_of_failing(sqlite_db: Database) -> None:
    """Under WAL, two deferred read-then-write transactions deadlock into SQLITE_BUSY; BEGIN IMMEDIATE queues them."""
    now = datetime.now(UTC)
    with sqlite_db.write() as conn:
        conn.execute(insert(lists).values(name="counter", created_at=now))
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def increment() -> None:
        try:
            barrier.wait()
            for _ in range(10):
                with sqlite_db.write() as conn:
                    name = conn.execute(select(lists.c.name)).scalar_one()
                    time.sleep(0.002)  # widen the read-to-write window
                    conn.execute(update(lists).values(name=name + "+"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=increment) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with sqlite_db.read() as conn:
        assert conn.execute(select(lists.c.name)).scalar_one() == "counter" + "+" * 40


# SQLite only: write(wait=False) concerns SQLite's one write lock (PostgreSQL has none to wait for).
def test_a_write_that_must_not_wait_fails_at_once_while_another_holds_the_lock(sqlite_db: Database) -> None:
    now = datetime.now(UTC)
    with sqlite_db.write() as holder:
        holder.execute(insert(lists).values(name="held", created_at=now))
        started = time.monotonic()
        with pytest.raises(WriteLockBusyError), sqlite_db.write(wait=False) as conn:
            conn.execute(insert(lists).values(name="never", created_at=now))
        assert time.monotonic() - started < 1  # not the 10 s busy timeout
    with sqlite_db.write(wait=False) as conn:  # free again
        conn.execute(insert(lists).values(name="after", created_at=now))
        # The connection's busy timeout is back for everything else it does.
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10_000
    with sqlite_db.read() as conn:
        assert set(conn.scalars(select(lists.c.name))) == {"held", "after"}


def test_timestamps_come_back_aware_in_utc_and_naive_ones_are_refused(db: Database) -> None:
    manila = timezone(timedelta(hours=8))
    local = datetime(2020, 6, 26, 19, 30, 15, 123456, tzinfo=manila)
    with db.write() as conn:
        conn.execute(insert(lists).values(name="a", created_at=local))
    with db.read() as conn:
        stored = conn.execute(select(lists.c.created_at)).scalar_one()
    assert stored == local
    assert stored.tzinfo is not None
    assert stored.utcoffset() == timedelta(0)
    assert stored.hour == 11
    with pytest.raises(Exception, match="naive datetime"), db.write() as conn:
        conn.execute(insert(lists).values(name="b", created_at=datetime(2020, 1, 1)))


def test_timestamp_order_is_time_order(db: Database) -> None:
    base = datetime(2026, 3, 29, 0, 59, 59, 999999, tzinfo=UTC)
    instants = [base + timedelta(microseconds=n * 7919) for n in range(50)]
    with db.write() as conn:
        conn.execute(insert(lists), [{"name": f"l{n}", "created_at": t} for n, t in enumerate(reversed(instants))])
    with db.read() as conn:
        got = list(
            conn.scalars(select(lists.c.created_at).where(lists.c.created_at > instants[9]).order_by("created_at"))
        )
    assert got == instants[10:]


def test_unreachable_server_is_a_storage_error() -> None:
    db = Database("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(StorageError, match="cannot connect"), db.read():
        pass


# SQLite only: a memory map is a SQLite file's setting.
def test_a_variant_pool_reads_through_a_memory_map_and_the_original_does_not(sqlite_db: Database) -> None:
    mapped = sqlite_db.variant(mmap_bytes=1 << 20)
    try:
        with mapped.read() as conn:
            assert conn.exec_driver_sql("PRAGMA mmap_size").scalar() == 1 << 20
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        with sqlite_db.read() as conn:
            assert conn.exec_driver_sql("PRAGMA mmap_size").scalar() == 0
        # The same database: what one pool writes, the other reads.
        with sqlite_db.write() as conn:
            conn.execute(insert(lists).values(name="seen by both", created_at=datetime.now(UTC)))
        with mapped.read() as conn:
            assert conn.scalar(select(lists.c.name)) == "seen by both"
    finally:
        mapped.dispose()


# SQLite only: the second connection exists on a SQLite file only (elsewhere read_together gives one).
def test_reads_together_see_one_snapshot_while_a_writer_keeps_committing(sqlite_db: Database) -> None:
    """The two connections of read_together see the same commits, however close a writer's next commit falls
    (without the write lock held around their first reads, some of the 60 tries saw two states: checked), and
    keep seeing them while later commits land."""
    stop = threading.Event()

    def keep_writing() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            with sqlite_db.write() as conn:
                conn.execute(insert(lists).values(name=f"l{n}", created_at=datetime.now(UTC)))
            time.sleep(0.0005)  # as a real writer, not holding the lock every moment

    writer = threading.Thread(target=keep_writing)
    writer.start()
    seen: list[int] = []
    try:
        for _ in range(60):
            with sqlite_db.read_together() as (first, second):
                assert second is not None
                counts = [c.scalar(select(func.count()).select_from(lists)) for c in (first, second)]
                assert counts[0] == counts[1]
                time.sleep(0.003)  # commits land meanwhile: neither connection sees them
                assert [c.scalar(select(func.count()).select_from(lists)) for c in (first, second)] == counts
                seen.append(counts[0] or 0)
    finally:
        stop.set()
        writer.join()
    assert len(set(seen)) > 10  # the writer did commit between the reads


def test_reads_together_do_not_wait_for_a_writer_holding_the_lock(sqlite_db: Database) -> None:
    with sqlite_db.write() as holder:
        holder.execute(insert(lists).values(name="not yet", created_at=datetime.now(UTC)))
        started = time.monotonic()
        with sqlite_db.read_together() as (first, second):
            assert second is None
            assert first.scalar(select(func.count()).select_from(lists)) == 0
        assert time.monotonic() - started < 2  # a quarter of a second, not the 10 s busy timeout
    with sqlite_db.read_together() as (first, second):
        assert second is not None  # free again


def test_reads_together_on_an_in_memory_database_use_one_connection() -> None:
    db = Database("sqlite://")
    try:
        with db.read_together() as (first, second):
            assert second is None
            assert first.exec_driver_sql("SELECT 1").scalar() == 1
    finally:
        db.dispose()


def test_a_new_sqlite_file_and_its_journals_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    # A new user's review: the database (every contact) was created 0644, readable by anyone on the machine.
    db = Database(f"sqlite:///{tmp_path / 'data' / 'c.db'}")
    try:
        init_database(db)
        with db.write() as conn:  # the WAL journal and its index exist while connections are open
            conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS probe (x)")
            made = sorted(p.name for p in (tmp_path / "data").iterdir())
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "data").iterdir()}
    finally:
        db.dispose()
    assert made == ["c.db", "c.db-shm", "c.db-wal"]
    assert modes == dict.fromkeys(made, 0o600)
