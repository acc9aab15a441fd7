"""Writing an import's batches: one transaction each, in this process or in a writer process beside it.

Contract: :class:`BatchWriter` takes batches in file order and writes each in one transaction (contacts
merged, zones guessed from countries, list membership), in order, one at a time. With ``parallel`` the
writing happens in a separate process, so that the database's work for one batch overlaps the reading and
validation of the next: the two halves of an import cost about the same, and Python runs one thread at a
time, so two processes are what makes them overlap (a thread would wait for the reader at every statement).
At most one batch is being written while the next is read: memory stays bounded. What a batch did comes
back as a :class:`BatchOutcome`; an error in the writer is raised in the caller at its next call.
"""

from __future__ import annotations

import pickle
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from campaign.rules.contact_fields import single_zone_countries
from campaign.services.processes import process_context
from campaign.store import contacts as contact_store
from campaign.store import lists as list_store
from campaign.store import suppressions as suppression_store
from campaign.store.contacts import KEY_AT
from campaign.store.engine import Database


@dataclass(frozen=True, slots=True)
class ImportBatch:
    """The valid rows of a stretch of the file, one per address, as :func:`contact_store.merge_many` takes them.

    ``first`` holds addresses this file has not had before, ``repeats`` those an earlier batch had (their
    rows are counted as duplicates). ``zoneless`` gives the line of each first-time row without a time zone:
    those may end without one, and are flagged.
    """

    first: list[tuple[Any, ...]]
    repeats: list[tuple[Any, ...]]
    zoneless: dict[str, int]
    flag_room: int  # how many flagged rows the caller still keeps

    def __len__(self) -> int:
        return len(self.first) + len(self.repeats)


@dataclass(frozen=True, slots=True)
class FlaggedRow:
    """A contact imported without a time zone."""

    line: int
    email: str
    country: str | None


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What writing one batch did."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0
    flagged: int = 0
    suppressed: int = 0
    flags: list[FlaggedRow] = field(default_factory=list)


def write_batch(db: Database, list_id: int, batch: ImportBatch) -> BatchOutcome:
    """Write ``batch`` into the list in one transaction."""
    now = datetime.now(UTC)
    keys = [row[KEY_AT] for row in batch.first]
    with db.write() as conn:
        merged = contact_store.merge_many(conn, batch.first, now)
        # Repeats were added to the list with their first row.
        contact_store.merge_many(conn, batch.repeats, now)
        # Only a row that came without a time zone can end without one.
        zoneless = [*batch.zoneless, *(row[KEY_AT] for row in batch.repeats)]
        contact_store.fill_zones(conn, zoneless, single_zone_countries())
        flagged, examples = contact_store.without_zone(conn, list(batch.zoneless), listed=batch.flag_room > 0)
        suppressed = suppression_store.count_among(conn, keys)
        if merged.first_new_id is not None and merged.inserted == len(keys):
            list_store.add_members_from_id(conn, list_id, merged.first_new_id, now)  # all new: no key lookups
        else:
            list_store.add_members_by_key(conn, list_id, keys, now)
    stored = len(keys) - merged.inserted
    flags = sorted((FlaggedRow(batch.zoneless[key], email, country) for key, email, country in examples), key=_line)
    return BatchOutcome(
        new=merged.inserted,
        updated=merged.updated,
        unchanged=stored - merged.updated,
        flagged=flagged,
        suppressed=suppressed,
        flags=flags[: batch.flag_room],
    )


def _line(flagged: FlaggedRow) -> int:
    return flagged.line


class BatchWriter:
    """Writes batches in order, in a writer process with ``parallel``, else in the caller. A context manager."""

    def __init__(self, db: Database, list_id: int, *, parallel: bool) -> None:
        self._db = db
        self._list_id = list_id
        self._pool: ProcessPoolExecutor | None = None
        if parallel:
            # The writer opens its own connections (see process_context); it must inherit none.
            db.dispose()
            self._pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=process_context(),
                initializer=_open_database,
                initargs=(db.url.render_as_string(hide_password=False), db.busy_timeout_ms),
            )
        self._writing: Future[BatchOutcome] | None = None

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)

    def write(self, batch: ImportBatch) -> BatchOutcome | None:
        """Start writing ``batch``; returns the outcome of the batch written before it, if any."""
        if self._pool is None:
            return write_batch(self._db, self._list_id, batch)
        outcome = self.finish()
        # The pool keeps a call's arguments until its result is back. As bytes they take a fraction of the
        # rows' objects, which are freed now, while the next batch is read.
        payload = pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)
        self._writing = self._pool.submit(_write_in_child, self._list_id, payload)
        return outcome

    def finish(self) -> BatchOutcome | None:
        """Wait for the batch being written; its outcome, or None when there was none."""
        writing, self._writing = self._writing, None
        return writing.result() if writing is not None else None


_child_database: Database | None = None


def _open_database(url: str, busy_timeout_ms: int) -> None:
    global _child_database
    _child_database = Database(url, busy_timeout_ms=busy_timeout_ms)


def _write_in_child(list_id: int, payload: bytes) -> BatchOutcome:
    assert _child_database is not None
    return write_batch(_child_database, list_id, pickle.loads(payload))  # noqa: S301 - from our own process
