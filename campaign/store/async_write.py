"""Write transactions awaited without stalling the event loop: storage mechanics beside :mod:`.engine`.

Used by the delivery worker's claims and result commits and by its heartbeat (:mod:`campaign.services`), which
run in one event loop with many SMTP senders.

Contract: :func:`in_write` runs ``work`` in one write transaction and returns what it returns. SQLite has one
write lock; while another connection holds it, this waits by yielding to the event loop between attempts
(0.2 ms, doubling up to 2 ms), not inside SQLite, and raises :class:`~campaign.exceptions.WriteLockBusyError`
once the database's busy timeout has passed. An attempt fails before ``work`` starts, so ``work`` runs once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection

from campaign.exceptions import WriteLockBusyError
from campaign.store.engine import Database

_LOCK_POLL_FIRST, _LOCK_POLL_MAX = 0.0002, 0.002  # seconds between attempts at SQLite's write lock
_T = TypeVar("_T")


async def in_write(db: Database, work: Callable[[Connection], _T]) -> _T:
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
            if time.monotonic() >= deadline:
                raise
        await asyncio.sleep(pause)
        pause = min(2 * pause, _LOCK_POLL_MAX)
