"""A process's heartbeat: its row in the ``workers`` registry and, for a delivery worker, its leases, renewed.

Contract:

* :meth:`Heartbeat.start` adds the process's row (taking over the row of an ended process of the same name, its
  leases handed to a name nobody renews; refusing one still beating); :meth:`Heartbeat.keep_beating` (a task of
  its own) renews it every ``delivery.heartbeat_seconds`` (at least three times per lease:
  :attr:`DeliverySettings.beat_seconds`), each beat one step (see :func:`campaign.store.workers.beat`): the row's
  heartbeat, state and counts, and, given leases, every lease the worker still holds extended by
  ``delivery.lease_seconds``. A message another worker
  took meanwhile (this one stopped past its lease) is not renewed, and its result is not recorded
  (:mod:`campaign.services.dispatch_results`).
* A beat that fails (the database restarting, SQLite's write lock held past its busy timeout) is logged and tried
  again at the next: a worker does not stop for it. If beats keep failing its leases expire and other workers take
  its messages; this one then records nothing for them.
* About once a lease, a beat also marks ``gone`` the rows of processes whose heartbeat is older than a lease (they
  died; their leases have expired, so their messages are due again already), forgets rows stopped or gone a
  day ago, and forgets the per-domain rate-limit buckets idle for an hour or more
  (:func:`campaign.services.rate_limits.forget_idle_domains`: one bounded statement).
* :meth:`Heartbeat.lease_held` says whether the lease of a message claimed at a given instant is surely still this
  worker's: a lease's time has not passed since the claim or the last successful beat, on this machine's
  monotonic clock (which runs on while the process is stopped), and no lease lapsed since the claim (a beat that
  came too late renews only what no other worker took meanwhile). A sender asks before it puts a message on the
  wire, so a worker stopped past its lease gives back what it had not begun instead of sending what another
  worker may be sending.
* :meth:`Heartbeat.finish` marks the row ``stopped`` as the process ends.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from campaign.config import Settings
from campaign.exceptions import CampaignError
from campaign.services.rate_limits import forget_idle_domains
from campaign.services.workers import judged_state
from campaign.store import workers as worker_store
from campaign.store.async_write import in_write
from campaign.store.engine import Database
from campaign.store.workers import Counts

log = logging.getLogger(__name__)


class WorkerNameTakenError(CampaignError, ValueError):
    """A process of the registry's name is still running (its heartbeat is fresh): two may not share a name, which
    is also the owner of the leases they hold."""


FORGET_AFTER = timedelta(days=1)
"""Rows of processes stopped or gone longer than this are deleted."""
_RATE_WINDOW_SECONDS = 10.0


def utc_now() -> datetime:
    """The real clock: registry rows are on it whatever clock a worker decides its outbox by."""
    return datetime.now(UTC)


def process_name() -> tuple[str, int]:
    """This machine's host name and this process's id, as the registry shows them."""
    return socket.gethostname(), os.getpid()


class RateMeter:
    """Messages a second over the last ten seconds or so, from a running total sampled at each beat."""

    def __init__(self, window: float = _RATE_WINDOW_SECONDS) -> None:
        """``window``: seconds of samples the rate is computed over."""
        self.window = window
        self._samples: deque[tuple[float, int]] = deque()

    def rate(self, at: float, total: int) -> float:
        """The rate after adding the sample (``at``: monotonic seconds, ``total``: messages so far)."""
        self._samples.append((at, total))
        while len(self._samples) > 2 and at - self._samples[1][0] >= self.window:
            self._samples.popleft()
        first_at, first_total = self._samples[0]
        return (total - first_total) / (at - first_at) if at > first_at else 0.0


class Heartbeat:
    """The registry row of one process, kept alive; see the module doc."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        name: str,
        role: str,
        state: str,
        counts: Callable[[], Counts] | None = None,
        lease_clock: Callable[[], datetime] | None = None,
    ) -> None:
        """``counts`` says what the process did so far (a delivery worker); with ``lease_clock`` (the clock its
        leases are on) each beat renews the leases ``name`` holds too."""
        self.db = db
        self.name = name
        self.role = role
        self.state = state
        self.counts = counts
        self.lease_clock = lease_clock
        self.settings = settings
        self.lease_seconds = settings.delivery.lease_seconds
        self.interval = settings.delivery.beat_seconds
        self.beats = 0
        self.failed_beats = 0
        self.renewed_at = time.monotonic()  # when the last successful beat (or the start) began
        self.lapsed_at = float("-inf")  # when the last beat that may have come after the leases lapsed wrote
        self._meter = RateMeter()

    def start(self) -> None:
        """Add this process's row (it starts). A row of the same name (``--name`` given again) is taken over when
        its process ended (stopped, or no heartbeat for a lease: a supervisor restarting ``campaign worker
        --name w1`` after a crash), its leases handed to a name nobody renews; a row still beating is a
        :class:`WorkerNameTakenError`."""
        host, pid = process_name()
        self.renewed_at = time.monotonic()
        now = utc_now()
        try:
            self._register(host, pid, now)
        except IntegrityError:  # another process of this name registered between our look and our insert
            raise WorkerNameTakenError(
                f"a process named {self.name!r} started at the same moment: give each process its own --name"
            ) from None

    def _register(self, host: str, pid: int, now: datetime) -> None:
        with self.db.write() as conn:
            found = worker_store.find(conn, self.name)
            if found is not None:
                if judged_state(found, now, self.lease_seconds) in worker_store.RUNNING:
                    ago = max(0, round((now - found.heartbeat_at).total_seconds()))
                    raise WorkerNameTakenError(
                        f"a process named {self.name!r} is running (pid {found.pid} on {found.host}, its heartbeat "
                        f"{ago} s ago): give another --name, or stop that one first"
                    )
                # Never the name itself, whatever its length (a lease owner holds 100 characters).
                retired = f"{self.name[:60]} (pid {found.pid}, ended)"
                if handed := worker_store.retire(conn, self.name, retired):
                    log.warning(
                        "%s: %d message(s) its earlier process was sending go back to the queue when their lease ends",
                        self.name,
                        handed,
                    )
            worker_store.register(conn, name=self.name, role=self.role, host=host, pid=pid, state=self.state, now=now)

    async def keep_beating(self) -> None:
        """Beat every :attr:`interval` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            await self.beat()

    async def beat(self) -> int:
        """One beat now (see the module doc); returns how many leases it renewed (0 if it failed)."""
        counts = self._counts()
        sweep = self.beats % max(1, round(self.lease_seconds / self.interval)) == 0
        self.beats += 1
        began = time.monotonic()
        try:
            renewed = await in_write(self.db, lambda conn: self._beat(conn, counts, sweep))
        except (CampaignError, SQLAlchemyError, OSError) as exc:
            self.failed_beats += 1
            log.warning("heartbeat of %s failed (tried again in %.1f s): %s", self.name, self.interval, exc)
            return 0
        # The renewal took effect when its write did, after any wait for SQLite's write lock (another process
        # holding it): whether the leases may have lapsed first is judged by when the write returned, with the
        # margin lease_held allows for another machine's clock running ahead.
        wrote = time.monotonic()
        if wrote >= self.renewed_at + self.lease_seconds - self.interval:
            self.lapsed_at = wrote
            log.warning(
                "%s beat late (its leases may have lapsed): what it claimed before is no longer surely its own",
                self.name,
            )
        self.renewed_at = began
        return renewed

    def lease_held(self, claimed_at: float) -> bool:
        """Whether the lease of a message claimed at ``claimed_at`` (monotonic) is surely still this worker's (see
        the module doc)."""
        # Its lease was set by the claim, then renewed by each beat since; a beat's time short of a lease's end
        # (what another machine's clock may run ahead by, at most, for the lease to mean anything) counts as past.
        renewed = max(self.renewed_at, claimed_at)
        return claimed_at > self.lapsed_at and time.monotonic() < renewed + self.lease_seconds - self.interval

    def _beat(self, conn: Connection, counts: Counts | None, sweep: bool) -> int:
        now = utc_now()
        lease_until = lease_now = None
        if self.lease_clock is not None:
            lease_now = self.lease_clock()
            lease_until = lease_now + timedelta(seconds=self.lease_seconds)
        renewed = worker_store.beat(
            conn, self.name, state=self.state, now=now, counts=counts, lease_until=lease_until, lease_now=lease_now
        )
        if sweep:
            stale_before = now - timedelta(seconds=self.lease_seconds)
            if gone := worker_store.mark_gone(conn, stale_before=stale_before, forget_before=now - FORGET_AFTER):
                log.warning("%d process(es) stopped beating for a lease's time: marked gone", gone)
            forget_idle_domains(conn, self.settings, now.timestamp())
        return renewed

    def _counts(self) -> Counts | None:
        if self.counts is None:
            return None
        counts = self.counts()
        rate = self._meter.rate(time.monotonic(), counts.sent)
        return Counts(counts.claimed, counts.sent, counts.failed, counts.lost, rate)

    def set_state(self, state: str) -> None:
        """Record a new state at once (a scheduler that takes the lead); later beats keep it."""
        self.state = state
        with self.db.write() as conn:
            if state == worker_store.LEADER:
                worker_store.take_lead(conn, self.name, utc_now())
            else:
                worker_store.set_state(conn, self.name, state, utc_now())

    def finish(self) -> None:
        """Mark the row ``stopped`` (the process ends); an error doing so is logged, not raised."""
        self.state = worker_store.STOPPED
        counts = self._counts()
        try:
            with self.db.write() as conn:
                worker_store.beat(conn, self.name, state=self.state, now=utc_now(), counts=counts, in_hand=0)
        except (CampaignError, SQLAlchemyError, OSError) as exc:
            log.warning("could not mark %s stopped: %s", self.name, exc)
