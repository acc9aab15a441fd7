"""A delivery worker's heartbeat says when a lease it took is no longer surely its own (services.heartbeat).

A sender asks :meth:`Heartbeat.lease_held` before it puts a message on the wire: a wrong "yes" sends a message
another worker (or this one's next claim) may be sending too.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

from campaign.services.heartbeat import Heartbeat
from campaign.store import workers as worker_store
from campaign.store.engine import Database
from tests.test_delivery import base_settings, tuned


def heartbeat(db: Database, tmp_path: Path, lease_seconds: int) -> Heartbeat:
    settings = tuned(base_settings(tmp_path), lease_seconds=lease_seconds)
    heart = Heartbeat(
        db,
        settings,
        name="w",
        role=worker_store.WORKER,
        state=worker_store.ALIVE,
        lease_clock=lambda: datetime.now(UTC),
    )
    heart.start()
    return heart


def test_a_lease_is_held_while_beats_come_in_time_and_not_after_a_late_one(db: Database, tmp_path: Path) -> None:
    heart = heartbeat(db, tmp_path, lease_seconds=3)
    assert heart.interval == 1.0
    claimed = time.monotonic()
    assert heart.lease_held(claimed)
    time.sleep(0.5)
    asyncio.run(heart.beat())  # in time: well before the lease less one beat's time
    assert heart.lease_held(claimed)
    time.sleep(2.1)  # since that beat: past the lease less one beat (what another machine's clock may run ahead by)
    assert not heart.lease_held(claimed)
    asyncio.run(heart.beat())  # too late: what was claimed before is no longer surely this worker's
    assert heart.failed_beats == 0
    assert not heart.lease_held(claimed)
    assert heart.lease_held(time.monotonic())


def test_a_beat_that_waited_past_the_lease_for_the_write_lock_leaves_earlier_claims_unheld(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """A beat began in time, then waited for SQLite's write lock (another process held it) until past the lease
    less one beat's time: its renewal was written after the leases may have lapsed and other workers taken them.
    What was claimed before is no longer held (given back, never sent from here), even once later beats come in
    time; later claims are."""
    heart = heartbeat(sqlite_db, tmp_path, lease_seconds=1)
    claimed = time.monotonic()
    other = Database(sqlite_db.url.render_as_string(hide_password=False))

    async def late_beat_waiting_for_the_lock() -> None:
        with other.write():
            await asyncio.sleep(0.4)
            beat = asyncio.create_task(heart.beat())  # begins in time (0.67 s: the lease less a beat), waits
            await asyncio.sleep(0.5)
        await beat

    try:
        asyncio.run(late_beat_waiting_for_the_lock())
        assert not heart.lease_held(claimed)  # judged by its start, it would be held until 1.07 s
        asyncio.run(heart.beat())  # a beat in time, after
    finally:
        other.dispose()
    assert heart.failed_beats == 0
    assert not heart.lease_held(claimed)
    assert heart.lease_held(time.monotonic())
