"""Write transactions awaited without stalling the event loop: storage mechanics beside :mod:`.engine`.

Used by the delivery worker's claims and result commits and by its heartbeat (:mod:`campaign.services`), which
run in one event loop with many SMTP senders.

Contract: :func:`in_write` runs ``work`` in one write transaction and returns what it returns. SQLite has one
write lock; while another connection holds it, this waits by yielding to the event loop between attempts
(0.2 ms, doubling up to 2 ms), not inside SQLite, and raises :class:`~campaign.exceptions.WriteLockBusyError`
once the database's busy timeout has passed. An attempt fails before ``work`` starts, so ``work`` runs once.
:func:`in_write_patiently` does not give up on the lock while its caller goes on (``give_up``: the run stopping):
it logs a warning every 10 s of waiting and waits on, for the delivery worker's claims and commits, whose failure
would stop the worker (and with it ``campaign serve``, its web service included) while another process merely
holds the lock long (a large import, a wave of a million fired, a backup taking the lock).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection

from campaign.exceptions import WriteLockBusyError
from campaign.store.engine import Database

log = logging.getLogger(__name__)

_LOCK_POLL_FIRST, _LOCK_POLL_MAX = 0.0002, 0.002  # seconds between attempts at SQLite's write lock
_WARN_EVERY = 10.0  # seconds between two warnings of one wait for the lock
_T = TypeVar("_T")


async def in_write(db: Database, work: Callable[[Connection], _T], give_up: Callable[[], bool] | None = None) -> _T:
    """``work`` in a write transaction, for which the caller waits without stalling.

    SQLite has one write lock; while another sender process holds it, SQLite's own wait sleeps 1 to 100 ms
    at a time inside the call, and every connection of this process stalls with it (measured: 8% of a
    two-process run). Here an attempt fails at once, before ``work`` starts, and the event loop runs on
    until the next one.
    """
    deadline = time.monotonic() + db.busy_timeout_ms / 1000
    pause = _LOCK_POLL_FIRST
    while True:
        try:
            with db.write(wait=False) as conn:
                return work(conn)
        except WriteLockBusyError:
            if time.monotonic() >= deadline or (give_up is not None and give_up()):
                raise
        await asyncio.sleep(pause)
        pause = min(2 * pause, _LOCK_POLL_MAX)


async def in_write_patiently(
    db: Database, work: Callable[[Connection], _T], what: str, give_up: Callable[[], bool] | None = None
) -> _T:
    """As :func:`in_write`, waiting for the write lock as long as another connection holds it, unless
    ``give_up()`` says to stop (the run is stopping: then :class:`WriteLockBusyError` at once, as :func:`in_write`
    raises it). A warning naming ``what`` waits (``"record delivery results"``) is logged every
    :data:`_WARN_EVERY` seconds of waiting, never an error; between attempts the event loop runs (with a busy
    timeout of 0, an attempt fails at once: without a pause this spun, and logged thousands of lines a second)."""
    began = time.monotonic()
    last_warned: float | None = None
    while True:
        try:
            return await in_write(db, work, give_up)
        except WriteLockBusyError:
            if give_up is not None and give_up():
                raise
            now = time.monotonic()
            if last_warned is None or now - last_warned >= _WARN_EVERY:
                last_warned = now
                log.warning(
                    "another connection has held the database's write lock for %.0f s: still waiting to %s",
                    now - began,
                    what,
                )
        await asyncio.sleep(_LOCK_POLL_MAX)
