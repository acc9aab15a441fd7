"""Which ``campaign serve`` fires the waves: exactly one leader per database, standbys ready to take over.

Contract:

* On PostgreSQL the leader is the process holding a session-level advisory lock (``pg_try_advisory_lock``) whose
  key is derived from a fixed name (:data:`LOCK_NAME`), on a connection of its own held for the life of the
  process. The server releases the lock when that connection ends, however the process ends (``kill -9``, a
  machine lost), so a standby, which tries again every ``delivery.heartbeat_seconds``, takes the lead within
  a few seconds. The leader checks its connection as often; if it is lost (the lock with it), the process stops
  with an error rather than fire waves without the lock (a supervisor restarts it, as a standby).
* On SQLite the election is the service's file lock (:mod:`scheduler.lock`): a second ``campaign serve`` on the
  same file refuses to start, so the one running leads from the start.
* Either way the process has a row in the ``workers`` registry (role ``scheduler``, state ``leader`` or
  ``standby``), renewed by its heartbeat: ``campaign status`` names the leader from it. Taking the lead marks any
  other row still saying ``leader`` gone.
* Leading is not what makes a wave fire once: the wave's compare-and-set does that
  (:func:`campaign.services.scheduling.fire_due`). The leader spares the database the standbys' ticks.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from campaign.config import Settings
from campaign.exceptions import CampaignError
from campaign.services.heartbeat import Heartbeat
from campaign.store import workers as worker_store
from campaign.store.engine import Database
from campaign.store.workers import LEADER, SCHEDULER, STANDBY

log = logging.getLogger(__name__)

LOCK_NAME = "campaign.scheduler.leader"
"""The advisory lock's name; its key is :func:`lock_key` of it."""


class LeadershipLostError(CampaignError):
    """The connection holding the leader's lock was lost: this process may no longer fire waves."""


class LeaderElsewhereError(CampaignError):
    """Another ``campaign serve`` leads on this database (``serve --once`` does not wait for it)."""


def lock_key(name: str = LOCK_NAME) -> int:
    """The signed 64-bit advisory-lock key of ``name``: the same in every process, on every machine."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class Leadership:
    """This process's candidacy (see the module doc); a companion of the scheduler service: :meth:`serve` runs
    until :meth:`request_stop`, and raises :class:`LeadershipLostError` if the lead is lost."""

    def __init__(self, db: Database, settings: Settings, name: str) -> None:
        """``name``: this process's registry name (its role is ``scheduler``)."""
        self.db = db
        self.name = name
        self.elected_by_lock = not db.is_sqlite  # SQLite: the service's file lock elected it already
        self.heartbeat = Heartbeat(db, settings, name=name, role=SCHEDULER, state=STANDBY)
        self.poll_seconds = settings.delivery.beat_seconds
        # Called in the event loop when a standby takes the lead (the service then ticks at once).
        self.on_lead: Callable[[], None] = lambda: None
        self.leading = False
        self._conn: Connection | None = None
        self._released = False
        self._stop = asyncio.Event()

    # -- the election --------------------------------------------------------------------------------------

    def try_lead(self) -> bool:
        """Take the lead if no one holds it (never waits); whether this process leads now."""
        if self.leading:
            return True
        if self.elected_by_lock:
            if self._conn is None:
                # A connection of its own, outside the pool's turnover, in autocommit: the lock is the session's.
                self._conn = self.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            if not worker_store.try_advisory_lock(self._conn, lock_key()):
                return False
        self.leading = True
        self.heartbeat.set_state(LEADER)
        log.info("leading: this process fires the waves (%s)", self.name)
        return True

    def check(self) -> None:
        """Raise :class:`LeadershipLostError` if the leader's lock connection is gone (its lock with it)."""
        if self._conn is None or not self.leading:
            return
        try:
            worker_store.ping(self._conn)
        except SQLAlchemyError as exc:
            self.leading = False
            raise LeadershipLostError(
                f"lost the connection holding the scheduler's leader lock ({' '.join(str(exc).split())})"
            ) from None

    def release(self) -> None:
        """Give the lock back and close its connection (the process ends); the row says ``stopped``. Once: a
        second call does nothing."""
        if self._released:
            return
        self._released = True
        if self._conn is not None:
            try:
                if self.leading:
                    worker_store.advisory_unlock(self._conn, lock_key())
                self._conn.invalidate()  # closed, never back in the pool: no session keeps the lock
            except SQLAlchemyError:
                pass  # the connection is gone already, and the lock with it
            self._conn.close()
            self._conn = None
        self.leading = False
        self.heartbeat.finish()

    # -- as a companion of the scheduler service -----------------------------------------------------------

    def start(self, *, wait: bool = True) -> None:
        """Register this process (a standby) and try once to lead; ``wait=False``: it will not stand by (``serve
        --once``), so it says nothing when another leads."""
        self.heartbeat.start()
        self.try_lead()
        if not self.leading and wait:
            log.info("standing by: another `campaign serve` leads; trying every %.1f s", self.poll_seconds)

    async def serve(self) -> None:
        """Beat, and try to lead (a standby) or check the lock (the leader), every poll, until asked to stop."""
        try:
            while not self._stop.is_set():
                try:
                    async with asyncio.timeout(self.poll_seconds):
                        await self._stop.wait()
                except TimeoutError:
                    pass
                if self._stop.is_set():
                    break
                await self.heartbeat.beat()
                if self.leading:
                    await asyncio.to_thread(self.check)
                else:
                    await asyncio.to_thread(self._try_quietly)
                    if self.leading:
                        self.on_lead()  # in the event loop, not the thread: it wakes the service's ticker
        finally:
            await asyncio.to_thread(self.release)

    def _try_quietly(self) -> None:
        try:
            self.try_lead()
        except (CampaignError, SQLAlchemyError) as exc:
            log.warning("could not try to lead (tried again in %.1f s): %s", self.poll_seconds, exc)
            if self._conn is not None:
                self._conn.invalidate()
                self._conn.close()
                self._conn = None

    def request_stop(self, *, at_once: bool = False) -> None:
        """Stop :meth:`serve` (which gives the lock back)."""
        self._stop.set()

    def refuse_unless_leading(self) -> None:
        """For ``serve --once``: raise :class:`LeaderElsewhereError` unless this process took the lead."""
        if not self.leading:
            raise LeaderElsewhereError(
                f"another `campaign serve` leads on {self.db.describe()} and fires the waves; "
                "`campaign workers` shows it"
            )
