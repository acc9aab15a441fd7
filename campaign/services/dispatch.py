"""The delivery worker: claim due messages under a lease, render, send over SMTP, record the result.

Guarantees:

* A message becomes ``sent`` only after the server's 250. On SQLite each sender records its result durably
  before it takes the next message (results are committed in groups, so this costs one transaction per
  group, not per message): if the process dies at any moment, at most one message per SMTP connection was
  sent but not recorded, so duplicates are bounded by the configured concurrency. On PostgreSQL a sender goes
  on while its result waits up to ``delivery.group_commit_ms`` for the group's commit, at most
  ``delivery.group_commit_max`` results waiting: duplicates after a crash are bounded by the concurrency plus
  that (see :mod:`~campaign.services.dispatch_results`). Everything else it held is simply leased, and sent by
  the next worker once the lease expires: nothing is lost. A run never holds two jobs of one message: a claim
  that finds again one of its own (its lease lapsed while it waited in the queue, a heartbeat late on a loaded
  machine) leaves it to the job that has it, which sends it, or gives it back if its lease is no longer surely
  held.
* 4xx replies, dropped connections and timeouts defer the message with exponential backoff; it expires when
  its lifetime ends or the event has started. 5xx at RCPT bounces it and suppresses the address; 5xx at
  DATA fails it. A template error for one contact fails that message and never blocks the rest.
* When most recent attempts of a campaign fail (server down, credentials broken) the campaign pauses itself,
  with the reason in its status, instead of burning through the queue.
* A run given a ``stop`` event (``campaign serve`` on SIGTERM) stops gracefully once it is set: it claims
  nothing more, finishes and records the messages being sent, and releases those claimed but not begun, so
  none is lost, none waits for a lease to expire, and none goes out twice. A sender that was waiting for the
  rate limit when the stop came gives its message back instead of sending it. An ``abort`` event (a second
  SIGTERM) stops at once: the messages not yet on the wire are released as above, those being sent are
  abandoned to their leases (counted in :attr:`DispatchSummary.abandoned`), as if the process had died.

This module is the claim loop (claims under a lease, each wave's renderer, stopping) and its entry points
(:func:`send_due`, given a :class:`~campaign.services.delivery_request.DeliveryRequest`, and :func:`due_count`).
Its parts: the heartbeat that renews the leases and the worker's row in
the ``workers`` registry (:mod:`~campaign.services.heartbeat`), the senders and SMTP delivery
(:mod:`~campaign.services.dispatch_sender`), what a failure does to its message and its campaign
(:mod:`~campaign.services.dispatch_failures`, applying the pure rules of :mod:`campaign.rules.delivery`), the
campaign's pause and completion (:mod:`~campaign.services.lifecycle`, through its one checked transition), the
group commit of results (:mod:`~campaign.services.dispatch_results`),
what they hand each other (:mod:`~campaign.services.dispatch_jobs`), the stop signals
(:mod:`~campaign.services.dispatch_stop`), what a run reports (:mod:`~campaign.services.dispatch_summary`), and
waiting for SQLite's write lock without stalling the senders (:mod:`~campaign.store.async_write`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import Connection

from campaign.exceptions import WriteLockBusyError
from campaign.models import Contact, MessageStatus, Wave
from campaign.render.personalise import WaveRenderer
from campaign.rules.delivery import claim_size, message_deadline
from campaign.services.campaigns import get_campaign
from campaign.services.delivery_request import DeliveryRequest
from campaign.services.dispatch_failures import Failures
from campaign.services.dispatch_jobs import Clock, Job, Result, utc_now
from campaign.services.dispatch_results import ResultRecorder, write_results
from campaign.services.dispatch_sender import Senders
from campaign.services.dispatch_stop import StopSignals
from campaign.services.dispatch_summary import DispatchSummary
from campaign.services.events import event_revision
from campaign.services.heartbeat import Heartbeat
from campaign.services.installation import installation_id
from campaign.services.lifecycle import finish_campaigns
from campaign.services.links import StoredLinkBook
from campaign.services.rate_limits import RateLimits
from campaign.services.rendering import wave_renderer
from campaign.store import campaigns as campaign_store
from campaign.store import contacts as contact_store
from campaign.store import outbox
from campaign.store.async_write import in_write_patiently
from campaign.store.engine import Database
from campaign.store.outbox import Claim, ClaimedMessage
from campaign.store.workers import ALIVE, WORKER, Counts

# SQLite file the delivery worker reads through a memory map: its claims and commits re-read pages that
# another worker's commits invalidated, and mapped pages make that cheaper (bench/send.py: about 8% more
# messages a second).
DELIVERY_MMAP_BYTES = 256 << 20


def _store_links(job: Job) -> None:
    """Render ``job``'s message once, for nothing but the links it stores (in a worker thread, fresh renderers
    only): storing a new link destination is a write, and on SQLite a write waits for the lock another process
    holds. Here it waits off the event loop; the senders' builds then find every link of the wave known and never
    write (a link that only some contacts' messages have is still stored by their build)."""
    with contextlib.suppress(Exception):  # the real build reports what is wrong with a message
        job.renderer.build(job.contact, "<links@campaign.invalid>", job.message.id, date=utc_now(), eight_bit=True)


def worker_name() -> str:
    """A lease owner name unique to this process: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Dispatcher:
    """Runs the claim → render → send → record loop until nothing is due (or forever, with ``wait``)."""

    def __init__(
        self,
        request: DeliveryRequest,
        *,
        owner: str | None = None,
        stop: asyncio.Event | None = None,
        abort: asyncio.Event | None = None,
        clock: Clock = utc_now,
    ) -> None:
        """``stop``, once set, ends the run gracefully: nothing more is claimed, the messages being sent are
        finished and recorded, those claimed but not begun are released (due again at once, for the next
        worker), and :meth:`run` returns. ``abort``, once set, ends it at once: the same, but the messages
        being sent are abandoned to their leases instead of awaited (see the module doc). ``clock`` is asked
        the time for every outbox decision (see :data:`Clock`); the rate limits keep real time."""
        db, settings = request.db, request.settings
        self.db = db
        self.settings = settings
        self.key = request.key
        self.campaign_id = get_campaign(db, request.campaign_ref).campaign.id if request.campaign_ref else None
        self.wait = request.wait
        self.owner = owner or worker_name()
        self.signals = StopSignals(stop, abort)
        self.clock = clock
        self.concurrency = max(1, settings.smtp.concurrency)
        self.renderers: dict[int, WaveRenderer] = {}
        self.revisions: dict[int, tuple[int, datetime] | None] = {}  # of each cached renderer's event
        self.summary = DispatchSummary()
        # The messages this run claimed whose result is not committed yet. A lease can lapse while its message
        # waits in the queue (a heartbeat late on a loaded machine) and this run's next claim then finds it due
        # again: it must not become a second job of the same message, both sent (seen once in CI).
        self.in_hand: set[int] = set()
        # When the previous claim that found messages was made (monotonic) and how many results had been recorded
        # then: the rate that sizes the next claim (rules.delivery.claim_size); None after a claim found none.
        self._previous_claim: tuple[float, int] | None = None
        self.failures = Failures(settings, clock, self.summary)
        # On PostgreSQL senders go on while their results wait for the group's commit (see dispatch_results).
        d = settings.delivery
        # The batch writer is looked up at each commit, not bound now, so that it can be replaced on a live
        # dispatcher (a test makes a commit fail so).
        self.results = ResultRecorder(
            db,
            lambda conn, batch: self._write(conn, batch),
            self.summary,
            request.progress,
            self.concurrency,
            window_ms=0.0 if db.is_sqlite else d.group_commit_ms,
            group_max=d.group_commit_max,
            # Only once committed: a batch whose commit failed leaves its messages in hand (the run stops).
            committed=lambda batch: self.in_hand.difference_update(r.job.message.id for r in batch),
            # A graceful stop still records what was sent, however long the lock is held; an abort does not wait.
            give_up=self.signals.aborting,
        )
        self.heartbeat = Heartbeat(
            db, settings, name=self.owner, role=WORKER, state=ALIVE, counts=self._counts, lease_clock=clock
        )
        self.sending = Senders(
            request.servers,
            settings,
            clock,
            self.signals,
            self.failures,
            self.results,
            RateLimits(db, settings, self.signals),
            self.heartbeat.lease_held,
        )

    async def run(self) -> DispatchSummary:
        """Deliver everything due; returns what was done."""
        queue: asyncio.Queue[Job | None] = asyncio.Queue(maxsize=self.concurrency * 2)
        self.heartbeat.start()
        flusher = asyncio.create_task(self.results.keep_flushing())
        heartbeat = asyncio.create_task(self.heartbeat.keep_beating())
        senders = [asyncio.create_task(self.sending.run(queue)) for _ in range(self.concurrency)]
        aborter = asyncio.create_task(self._abort_on_request(queue, senders))
        workers = [flusher, heartbeat, *senders]
        run = asyncio.current_task()
        assert run is not None
        failed: list[BaseException] = []

        def stop_on_failure(task: asyncio.Task[None]) -> None:
            # A worker task that dies (a database error) stops the run with its error, instead of leaving it
            # waiting forever for work no one will do. A callback, not a wait on every put: that cost more
            # than sending.
            if not task.cancelled() and (error := task.exception()) is not None and not failed:
                failed.append(error)
                run.cancel()

        for worker in workers:
            worker.add_done_callback(stop_on_failure)
        try:
            while not self.signals.stopping():
                jobs = await self._claim()
                if not jobs:
                    await queue.join()
                    await self.results.flush()
                    self.summary.finished.extend(finish_campaigns(self.db, self.clock(), self.campaign_id))
                    if not self.wait:
                        break
                    await self.signals.sleep(self.settings.delivery.poll_seconds)
                    continue
                for number, job in enumerate(jobs):
                    if self.signals.stopping():
                        self.results.release(jobs[number:])
                        break
                    await queue.put(job)
            if self.signals.stopping():
                # Stopping: the jobs no sender has taken go back; those being sent are finished and recorded.
                self.results.release(_drain(queue))
                await queue.join()
        except asyncio.CancelledError:
            if not failed:
                raise
            run.uncancel()
            raise failed[0] from None
        finally:
            for worker in workers:
                worker.remove_done_callback(stop_on_failure)
            heartbeat.cancel()
            aborter.cancel()
            # On the normal way out the queue is empty already. On an error, the jobs still queued are
            # dropped: no one may take them now; their leases expire and the next worker sends them.
            while not queue.empty():
                queue.get_nowait()
                queue.task_done()
            for _ in senders:
                queue.put_nowait(None)  # fits: the queue holds twice as many
            outcomes = await asyncio.gather(*senders, return_exceptions=True)
            flusher.cancel()
            await asyncio.wait([flusher])  # a flush it had begun is back among the pending results
            if self.results.broken is None:
                await self.results.flush()
            self.heartbeat.finish()
            for outcome in outcomes:
                if isinstance(outcome, BaseException) and not isinstance(outcome, asyncio.CancelledError):
                    raise outcome
        return self.summary

    async def _abort_on_request(self, queue: asyncio.Queue[Job | None], senders: Sequence[asyncio.Task[None]]) -> None:
        """When ``abort`` is set: release the jobs no sender has begun, and cancel the senders (each releases
        the job in its hands unless it is on the wire); :meth:`run` then records the releases and returns."""
        if self.signals.abort is None:
            return
        await self.signals.abort.wait()
        self.results.release(_drain(queue))
        self.summary.abandoned = len(self.sending.on_the_wire)
        for sender in senders:
            sender.cancel()

    def _claim_limit(self, claimed_at: float) -> int:
        """About a second of this worker's recent sending, between what keeps its senders busy and
        ``delivery.batch_size`` (see :func:`~campaign.rules.delivery.claim_size`)."""
        finished = sum(self.summary.counts.values())
        previous, self._previous_claim = self._previous_claim, (claimed_at, finished)
        since = (finished - previous[1], claimed_at - previous[0]) if previous else (0, 0.0)
        return claim_size(*since, least=2 * self.concurrency, most=self.settings.delivery.batch_size)

    async def _claim(self) -> list[Job]:
        now = self.clock()
        d = self.settings.delivery
        claimed_at = time.monotonic()  # before the claim: its leases start no earlier
        limit = self._claim_limit(claimed_at)

        def lease(conn: Connection) -> tuple[Claim, list[ClaimedMessage], dict[int, Contact], dict[int, Wave]]:
            claim = outbox.claim(
                conn,
                owner=self.owner,
                now=now,
                lease_until=now + timedelta(seconds=d.lease_seconds),
                limit=limit,
                campaign_id=self.campaign_id,
            )
            # A message found again is still this run's job (the claim renewed its lease, but no attempt was
            # made): that job sends it, or gives it back if its lease is no longer surely held
            # (Heartbeat.lease_held). (Had its address been suppressed meanwhile, the claim marked it so, and the
            # job's result is not recorded: as before.)
            claimed = [m for m in claim.messages if m.id not in self.in_hand]
            if len(claimed) < len(claim.messages):
                outbox.uncount_attempts(conn, [m.id for m in claim.messages if m.id in self.in_hand])
            if not claimed:
                return claim, claimed, {}, {}
            # On PostgreSQL the claim returns its contacts (a read after it scanned the whole table while the
            # contacts had no statistics: 12 µs of server CPU a message, bench/scale.py); on SQLite, read here.
            contacts = claim.contacts
            if contacts is None:
                contacts = contact_store.by_ids(conn, sorted({m.contact_id for m in claimed}))
            return claim, claimed, contacts, campaign_store.waves_by_id(conn, sorted({m.wave_id for m in claimed}))

        while True:
            # A stopping run claims nothing more: it gives up the wait at once.
            try:
                claim, claimed, contacts, waves = await in_write_patiently(
                    self.db, lease, "claim messages", self.signals.stopping
                )
            except WriteLockBusyError:
                if self.signals.stopping():
                    return []
                raise
            if claim.suppressed:
                # Addresses suppressed since their wave was queued: the claim recorded them; they are reported
                # like any result, so a progress display still reaches its total.
                self.results.report(MessageStatus.SUPPRESSED, claim.suppressed)
            # A batch that held only suppressed messages, or only messages in hand (renewed now: the next claim
            # passes them by), says nothing about what is still due: claim again.
            if claimed or not (claim.suppressed or claim.messages):
                break
        if not claimed:
            self._previous_claim = None  # idle since: no rate to go by
            return []
        self.in_hand.update(message.id for message in claimed)
        self.summary.claimed += len(claimed)
        # Claims only return campaigns that are sending: one paused earlier has been resumed since.
        self.failures.resumed(wave.campaign_id for wave in waves.values())
        self._forget_stale_renderers(waves.values())
        new_renderers = {wave_id for wave_id in waves if wave_id not in self.renderers}
        jobs = []
        for message in claimed:
            wave = waves[message.wave_id]
            renderer = self._renderer(wave)
            jobs.append(
                Job(
                    message,
                    contacts[message.contact_id],
                    wave,
                    wave.campaign_id,
                    renderer,
                    message_deadline(wave.expires_at, wave.kind, renderer.event.starts_at, renderer.event.ends_at),
                    claimed_at,
                )
            )
        for wave_id in new_renderers:
            await asyncio.to_thread(_store_links, next(job for job in jobs if job.wave.id == wave_id))
        return jobs

    def _forget_stale_renderers(self, waves: Iterable[Wave]) -> None:
        """Forget the renderer of a wave whose event changed since it was made (``campaign events update``,
        ``cancel``): a long-running worker never sends the old time, links or SEQUENCE. One small read per wave
        of a claim."""
        for wave in waves:
            revision = event_revision(self.db, wave.campaign_id)
            if self.revisions.get(wave.id) != revision:
                self.renderers.pop(wave.id, None)
                self.revisions[wave.id] = revision

    def _renderer(self, wave: Wave) -> WaveRenderer:
        renderer = self.renderers.get(wave.id)
        if renderer is None:
            details = get_campaign(self.db, str(wave.campaign_id))
            # Its calendar made now on the worker's clock (DTSTAMP), as the Date header is.
            # Its link destinations stored for the click endpoint (services.links).
            renderer = wave_renderer(
                self.settings,
                self.key,
                details,
                wave,
                installation_id(self.db),
                stamp=self.clock(),
                book=StoredLinkBook(self.db, wave.id),
            )
            self.renderers[wave.id] = renderer
        return renderer

    def _counts(self) -> Counts:
        """What this run did so far, for its heartbeat (the registry's counts)."""
        counts = self.summary.counts
        failed = sum(counts.get(s.value, 0) for s in _FAILED)
        return Counts(self.summary.claimed, counts.get(MessageStatus.SENT.value, 0), failed, self.summary.lost)

    def _write(self, conn: Connection, batch: list[Result]) -> set[int]:
        """Record a batch of results, in the recorder's transaction; returns the ids of those not recorded (their
        lease was lost)."""
        now = self.clock()
        # A campaign paused (or cancelled) by staff meanwhile: its messages still in hand go back unsent.
        self.failures.hold_back_not_sending(conn, {r.job.campaign_id for r in batch})
        lost = write_results(conn, batch, self.owner, now)
        # A breaker that tripped in this worker: the campaign's recorded attempts, this batch's among them, decide.
        self.failures.decide_tripped(conn)
        return lost


_FAILED = (MessageStatus.DEFERRED, MessageStatus.BOUNCED, MessageStatus.FAILED, MessageStatus.EXPIRED)
"""The results a worker's registry row counts as failed attempts."""


def _drain(queue: asyncio.Queue[Job | None]) -> list[Job]:
    """Take every job still waiting in the queue (marking each done)."""
    jobs = []
    while not queue.empty():
        job = queue.get_nowait()
        queue.task_done()
        if job is not None:
            jobs.append(job)
    return jobs


async def send_due(
    request: DeliveryRequest,
    *,
    stop: asyncio.Event | None = None,
    abort: asyncio.Event | None = None,
    clock: Clock = utc_now,
    owner: str | None = None,
) -> DispatchSummary:
    """Run one :class:`Dispatcher` on ``request`` to completion (or until ``stop`` or ``abort`` is set: see
    :class:`Dispatcher`), on connections of its own (see :data:`DELIVERY_MMAP_BYTES`), deciding by ``clock`` (see
    :data:`Clock`); ``owner``: its lease owner and registry name (default: :func:`worker_name`)."""
    db = request.db
    delivery_db = db.variant(mmap_bytes=DELIVERY_MMAP_BYTES) if db.is_sqlite and not db.in_memory else db
    try:
        dispatcher = Dispatcher(request.on(delivery_db), stop=stop, abort=abort, clock=clock, owner=owner)
        return await dispatcher.run()
    finally:
        if delivery_db is not db:
            delivery_db.dispose()


def due_count(db: Database, campaign_ref: str | None = None, clock: Clock = utc_now) -> int:
    """How many messages are due now on ``clock`` (for a progress display)."""
    campaign_id = get_campaign(db, campaign_ref).campaign.id if campaign_ref else None
    with db.read() as conn:
        return outbox.count_due(conn, clock(), campaign_id)
