"""The delivery worker: claim due messages under a lease, render, send over SMTP, record the result.

Guarantees:

* A message becomes ``sent`` only after the server's 250, and each sender records its result durably
  before it takes the next message (results are committed in groups, so this costs one transaction per
  group, not per message). If the process dies at any moment, at most one message per SMTP connection was
  sent but not recorded: duplicates are bounded by the configured concurrency. Everything else it held is
  simply leased, and sent by the next worker once the lease expires: nothing is lost.
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
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy import Connection

from campaign.config import Settings
from campaign.exceptions import (
    DeliveryError,
    PermanentDeliveryError,
    RecipientRefusedError,
    TemplateError,
    TransientDeliveryError,
    WriteLockBusyError,
)
from campaign.mail.smtp import ServerChooser, SmtpConnection, SmtpServer
from campaign.models import CampaignStatus, Contact, MessageStatus, SuppressionReason, Wave
from campaign.render.identifiers import message_id_for
from campaign.render.personalise import WaveRenderer
from campaign.rules.contact_fields import email_key
from campaign.rules.delivery import FailureBreaker, RetryPolicy, TokenBucket
from campaign.rules.timing import default_expiry
from campaign.services.campaigns import get_campaign
from campaign.services.events import event_revision
from campaign.services.installation import installation_id
from campaign.services.lifecycle import finish_campaigns
from campaign.services.links import StoredLinkBook
from campaign.services.rendering import wave_renderer
from campaign.store import campaigns as campaign_store
from campaign.store import contacts as contact_store
from campaign.store import outbox
from campaign.store import suppressions as suppression_store
from campaign.store.engine import Database
from campaign.store.outbox import Claim, ClaimedMessage

# SQLite file the delivery worker reads through a memory map: its claims and commits re-read pages that
# another worker's commits invalidated, and mapped pages make that cheaper (bench/send.py: about 8% more
# messages a second).
DELIVERY_MMAP_BYTES = 256 << 20
_GROUP_COMMIT_WAIT = 0.010  # seconds a result may wait for others to be committed with it
_LOCK_POLL_FIRST, _LOCK_POLL_MAX = 0.0002, 0.002  # seconds between attempts at SQLite's write lock
_ABORT_QUIT_SECONDS = 0.5  # an aborted sender says QUIT this long at most: the process is leaving
_T = TypeVar("_T")

Progress = Callable[[str], None]
"""Called with the final status of each message as it is recorded."""

Clock = Callable[[], datetime]
"""What time it is (aware, UTC) for the worker's outbox decisions: which messages are due, leases, deadlines, the
times recorded, the Date header, the calendar's DTSTAMP and when a campaign finished. The real clock but for the
demo, which runs the waves on a compressed one."""

# A C-level partial, not a Python function: the worker asks once per message, and this costs no more than
# calling datetime.now directly.
utc_now: Clock = functools.partial(datetime.now, UTC)
"""The real clock: the default :data:`Clock`."""


@dataclass(frozen=True, slots=True)
class PausedCampaign:
    """A campaign that paused itself during a run, and why."""

    campaign_id: int
    name: str
    reason: str


@dataclass
class DispatchSummary:
    """What one run of the worker did. ``paused`` holds the campaigns that paused themselves, by id: a name
    may contain anything (``a: b``), so only the id says which campaign an entry is about."""

    counts: dict[str, int] = field(default_factory=dict)
    paused: dict[int, PausedCampaign] = field(default_factory=dict)
    finished: list[str] = field(default_factory=list)
    abandoned: int = 0  # messages on the wire when the run was aborted: left leased, their outcome unknown

    def add(self, status: str, count: int = 1) -> None:
        """Count recorded results."""
        self.counts[status] = self.counts.get(status, 0) + count

    def merge(self, other: DispatchSummary) -> None:
        """Add another run's counts, paused and finished campaigns (of a parallel sender)."""
        for status, count in other.counts.items():
            self.add(status, count)
        for campaign_id, paused in other.paused.items():
            self.paused.setdefault(campaign_id, paused)
        self.finished.extend(f for f in other.finished if f not in self.finished)
        self.abandoned += other.abandoned


@dataclass(frozen=True, slots=True)
class _Job:
    message: ClaimedMessage
    contact: Contact
    wave: Wave
    campaign_id: int
    renderer: WaveRenderer
    deadline: datetime | None


@dataclass(slots=True)
class _Result:
    job: _Job
    status: MessageStatus
    message_id: str | None = None
    reply: str | None = None
    error: str | None = None
    next_attempt_at: datetime | None = None
    recorded: asyncio.Future[None] | None = None


def worker_name() -> str:
    """A lease owner name unique to this process: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def retry_policy(settings: Settings) -> RetryPolicy:
    """The retry policy configured in ``[delivery]``."""
    d = settings.delivery
    return RetryPolicy(
        initial=timedelta(minutes=d.retry_initial_minutes),
        maximum=timedelta(minutes=d.retry_max_minutes),
        lifetime=timedelta(hours=d.lifetime_hours),
    )


class Dispatcher:
    """Runs the claim → render → send → record loop until nothing is due (or forever, with ``wait``)."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        key: bytes,
        servers: Sequence[SmtpServer],
        *,
        campaign_ref: str | None = None,
        wait: bool = False,
        progress: Progress | None = None,
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
        self.db = db
        self.settings = settings
        self.key = key
        self.chooser = ServerChooser(servers)
        self.campaign_id = get_campaign(db, campaign_ref).campaign.id if campaign_ref else None
        self.wait = wait
        self.progress = progress
        self.owner = owner or worker_name()
        self.stop = stop
        self.abort = abort
        self.clock = clock
        self._on_the_wire: set[int] = set()  # the messages a sender has begun to transmit
        d = settings.delivery
        self.concurrency = max(1, settings.smtp.concurrency)
        self.retry = retry_policy(settings)
        self.buckets = [
            TokenBucket(d.rate_per_second, 1.0, max(1.0, d.rate_per_second)) if d.rate_per_second > 0 else None,
            TokenBucket(d.rate_per_hour, 3600.0, max(1.0, d.rate_per_hour / 60)) if d.rate_per_hour > 0 else None,
        ]
        self.domain_buckets: dict[str, TokenBucket] = {}
        self.breakers: dict[int, FailureBreaker] = {}
        self.paused: set[int] = set()
        self.renderers: dict[int, WaveRenderer] = {}
        self.revisions: dict[int, tuple[int, datetime] | None] = {}  # of each cached renderer's event
        self.summary = DispatchSummary()
        self._pending: list[_Result] = []
        self._flush_wanted = asyncio.Event()
        self._group_size = max(1, self.concurrency * 3 // 4)  # results worth a commit without waiting longer
        self._group_full = asyncio.Event()
        self._broken: BaseException | None = None  # a failed commit: no result can be recorded any more

    async def run(self) -> DispatchSummary:
        """Deliver everything due; returns what was done."""
        queue: asyncio.Queue[_Job | None] = asyncio.Queue(maxsize=self.concurrency * 2)
        flusher = asyncio.create_task(self._flusher())
        heartbeat = asyncio.create_task(self._heartbeat())
        senders = [asyncio.create_task(self._sender(queue)) for _ in range(self.concurrency)]
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
            while not self._stopping():
                jobs = await self._claim()
                if not jobs:
                    await queue.join()
                    await self._flush_now()
                    self.summary.finished.extend(finish_campaigns(self.db, self.clock(), self.campaign_id))
                    if not self.wait:
                        break
                    await self._pause_unless_stopped(self.settings.delivery.poll_seconds)
                    continue
                for number, job in enumerate(jobs):
                    if self._stopping():
                        self._release(jobs[number:])
                        break
                    await queue.put(job)
            if self._stopping():
                # Stopping: the jobs no sender has taken go back; those being sent are finished and recorded.
                self._release(_drain(queue))
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
            if self._broken is None:
                await self._flush_now()
            for outcome in outcomes:
                if isinstance(outcome, BaseException) and not isinstance(outcome, asyncio.CancelledError):
                    raise outcome
        return self.summary

    def _stopping(self) -> bool:
        return (self.stop is not None and self.stop.is_set()) or self._aborting()

    def _aborting(self) -> bool:
        return self.abort is not None and self.abort.is_set()

    async def _abort_on_request(self, queue: asyncio.Queue[_Job | None], senders: Sequence[asyncio.Task[None]]) -> None:
        """When ``abort`` is set: release the jobs no sender has begun, and cancel the senders (each releases
        the job in its hands unless it is on the wire); :meth:`run` then records the releases and returns."""
        if self.abort is None:
            return
        await self.abort.wait()
        self._release(_drain(queue))
        self.summary.abandoned = len(self._on_the_wire)
        for sender in senders:
            sender.cancel()

    async def _pause_unless_stopped(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if the run is told to stop meanwhile."""
        if self.stop is None:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.stop.wait()

    def _release(self, jobs: Sequence[_Job]) -> None:
        """Give back claimed messages that were not begun: recorded (released) with the next commit."""
        self._pending.extend(_Result(job, MessageStatus.QUEUED) for job in jobs)

    async def _claim(self) -> list[_Job]:
        now = self.clock()
        d = self.settings.delivery

        def lease(conn: Connection) -> tuple[Claim, dict[int, Contact], dict[int, Wave]]:
            claim = outbox.claim(
                conn,
                owner=self.owner,
                now=now,
                lease_until=now + timedelta(seconds=d.lease_seconds),
                limit=d.batch_size,
                campaign_id=self.campaign_id,
            )
            if not claim.messages:
                return claim, {}, {}
            contacts = contact_store.by_ids(conn, sorted({m.contact_id for m in claim.messages}))
            return claim, contacts, campaign_store.waves_by_id(conn, sorted({m.wave_id for m in claim.messages}))

        while True:
            claim, contacts, waves = await self._in_write(lease)
            if claim.suppressed:
                # Addresses suppressed since their wave was queued: the claim recorded them; they are reported
                # like any result, so a progress display still reaches its total.
                self.summary.add(MessageStatus.SUPPRESSED.value, claim.suppressed)
                if self.progress:
                    for _ in range(claim.suppressed):
                        self.progress(MessageStatus.SUPPRESSED.value)
            # A batch that held only such messages says nothing about what is still due: claim again.
            if claim.messages or not claim.suppressed:
                break
        claimed = claim.messages
        if not claimed:
            return []
        # Claims only return campaigns that are sending: one paused earlier has been resumed since.
        for wave in waves.values():
            if wave.campaign_id in self.paused:
                self.paused.discard(wave.campaign_id)
                self.breakers.pop(wave.campaign_id, None)
        self._forget_stale_renderers(waves.values())
        jobs = []
        for message in claimed:
            wave = waves[message.wave_id]
            renderer = self._renderer(wave)
            jobs.append(
                _Job(message, contacts[message.contact_id], wave, wave.campaign_id, renderer, _deadline(wave, renderer))
            )
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

    async def _heartbeat(self) -> None:
        """Renew this worker's leases every third of the lease time, so that a batch slowed by a slow relay or
        a rate limit is never taken back (and sent twice) while this worker still holds it."""
        lease = self.settings.delivery.lease_seconds
        while True:
            await asyncio.sleep(lease / 3)
            now = self.clock()
            with self.db.write() as conn:
                outbox.renew(conn, self.owner, now + timedelta(seconds=lease), now)

    async def _sender(self, queue: asyncio.Queue[_Job | None]) -> None:
        connection = SmtpConnection(self.chooser)
        try:
            while (job := await queue.get()) is not None:
                result: _Result | None = None
                try:
                    result = await self._deliver(connection, job)
                    await self._record(result)
                except asyncio.CancelledError:
                    # Aborted: a job not yet on the wire goes back; one being sent is left to its lease (it
                    # may have reached the server: only the lease's expiry can decide to send it again).
                    if result is None and job.message.id not in self._on_the_wire:
                        self._release([job])
                    raise
                finally:
                    queue.task_done()
            queue.task_done()
        finally:
            if self._aborting():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_ABORT_QUIT_SECONDS):
                        await connection.close()
            else:
                await connection.close()

    async def _deliver(self, connection: SmtpConnection, job: _Job) -> _Result:
        if self._stopping():  # taken from the queue as the stop came: given back, not begun
            return _Result(job, MessageStatus.QUEUED)
        now = self.clock()
        if job.campaign_id in self.paused:
            return _Result(job, MessageStatus.QUEUED, error="campaign paused")
        if job.deadline is not None and now >= job.deadline:
            return _Result(job, MessageStatus.EXPIRED, error="the event has started")
        message_id = message_id_for(f"c{job.campaign_id}.w{job.wave.id}.m{job.message.id}", job.renderer.sender)
        await self._respect_limits(job.contact.email)
        if self._stopping():
            # The stop came while this sender waited for the rate limit (seconds, at a low rate): the message
            # goes back rather than holding the stop up.
            return _Result(job, MessageStatus.QUEUED)
        try:
            # Built for the server it goes to: unencoded UTF-8 where it offers 8BITMIME (a quarter smaller).
            # Nothing waits between this and sending, so the session cannot change in between.
            eight_bit = await connection.accepts_8bit()
        except DeliveryError as exc:
            return self._failure(job, exc)
        try:
            data = job.renderer.build(job.contact, message_id, job.message.id, date=now, eight_bit=eight_bit)
        except Exception as exc:  # one contact's bad data fails its message, never the run
            error = str(exc) if isinstance(exc, TemplateError) else f"cannot build the message: {exc!r}"
            return _Result(job, MessageStatus.FAILED, error=error)
        self._on_the_wire.add(job.message.id)
        try:
            reply = await connection.send(
                job.renderer.sender.from_address, job.contact.email, data, eight_bit=eight_bit
            )
        except DeliveryError as exc:
            return self._failure(job, exc)
        except Exception as exc:  # a bug, not the recipient's fault: retried later, the worker carries on
            return self._failure(job, TransientDeliveryError(f"unexpected error while sending: {exc!r}"))
        finally:
            # Kept when aborted: the sender's cancellation must know this one may have reached the server.
            if not self._aborting():
                self._on_the_wire.discard(job.message.id)
        self._breaker(job.campaign_id).record(True)
        return _Result(job, MessageStatus.SENT, message_id=message_id, reply=f"250 {reply}")

    def _failure(self, job: _Job, exc: DeliveryError) -> _Result:
        reply = f"{exc.code} {exc.reply}" if exc.code else None
        if isinstance(exc, RecipientRefusedError):
            return _Result(job, MessageStatus.BOUNCED, reply=reply, error=str(exc))
        if isinstance(exc, PermanentDeliveryError):
            return _Result(job, MessageStatus.FAILED, reply=reply, error=str(exc))
        assert isinstance(exc, TransientDeliveryError)
        breaker = self._breaker(job.campaign_id)
        if breaker.record(False) and job.campaign_id not in self.paused:
            self._pause(job.campaign_id, breaker, exc)
        next_at = self.retry.next_attempt(
            attempts=job.message.attempts,
            now=self.clock(),
            queued_at=job.message.queued_at,
            deadline=job.deadline,
            message_id=job.message.id,
        )
        if next_at is None:
            return _Result(job, MessageStatus.EXPIRED, reply=reply, error=f"gave up: {exc}")
        return _Result(job, MessageStatus.DEFERRED, reply=reply, error=str(exc), next_attempt_at=next_at)

    def _breaker(self, campaign_id: int) -> FailureBreaker:
        breaker = self.breakers.get(campaign_id)
        if breaker is None:
            d = self.settings.delivery
            breaker = FailureBreaker(
                window=d.breaker_window, threshold=d.breaker_threshold, minimum=min(20, d.breaker_window)
            )
            self.breakers[campaign_id] = breaker
        return breaker

    def _pause(self, campaign_id: int, breaker: FailureBreaker, exc: DeliveryError) -> None:
        self.paused.add(campaign_id)
        reason = f"paused automatically: {breaker.failure_rate:.0%} of recent attempts failed; last error: {exc}"
        with self.db.write() as conn:
            campaign = campaign_store.find(conn, str(campaign_id))
            if campaign is not None and campaign.status is CampaignStatus.SENDING:
                campaign_store.set_status(conn, campaign_id, CampaignStatus.PAUSED, reason, self.clock())
                self.summary.paused[campaign_id] = PausedCampaign(campaign_id, campaign.name, reason)

    async def _respect_limits(self, address: str) -> None:
        now = time.monotonic()
        waits = [bucket.take(now) for bucket in self.buckets if bucket is not None]
        per_domain = self.settings.delivery.per_domain_per_second
        if per_domain > 0:
            domain = address.rpartition("@")[2].lower()
            bucket = self.domain_buckets.setdefault(domain, TokenBucket(per_domain, 1.0, max(1.0, per_domain)))
            waits.append(bucket.take(now))
        wait = max(waits, default=0.0)
        if wait > 0:
            await self._pause_unless_stopped(wait)  # a stop need not wait for the limiter (see _deliver)

    async def _record(self, result: _Result) -> None:
        """Hand the result to the flusher and wait until it is committed (see the module doc)."""
        if self._broken is not None:
            raise self._broken
        result.recorded = asyncio.get_running_loop().create_future()
        self._pending.append(result)
        self._flush_wanted.set()
        if len(self._pending) >= self._group_size:
            self._group_full.set()
        await result.recorded

    async def _flusher(self) -> None:
        while True:
            await self._flush_wanted.wait()
            # Group commit: give the other connections a moment to join this transaction. A commit costs far
            # more than a message (and, with several worker processes on SQLite, makes the others wait for the
            # write lock): waiting up to 10 ms while most connections report cuts commits several-fold. Measured
            # with bench/send.py: 2 ms and half the connections gave about 20% fewer messages a second.
            if len(self._pending) < self._group_size:
                self._group_full.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_GROUP_COMMIT_WAIT):
                        await self._group_full.wait()
            await self._flush_now()

    async def _flush_now(self) -> None:
        self._flush_wanted.clear()
        batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            await self._in_write(lambda conn: self._write(conn, batch))
        except asyncio.CancelledError:
            self._pending[:0] = batch  # stopped while waiting for the write lock: the last flush records these
            raise
        except BaseException as exc:
            # Every sender waiting for a commit, now or later, gets the error instead of waiting forever; the
            # run stops, and the leases it held expire for the next worker.
            self._broken = exc
            for result in (*batch, *self._pending):
                if result.recorded is not None and not result.recorded.done():
                    result.recorded.set_exception(exc)
            self._pending = []
            raise
        for result in batch:
            self.summary.add(result.status.value)
            if self.progress:
                self.progress(result.status.value)
            if result.recorded is not None and not result.recorded.done():
                result.recorded.set_result(None)

    async def _in_write(self, work: Callable[[Connection], _T]) -> _T:
        """``work`` in a write transaction, for which this worker waits without stalling.

        SQLite has one write lock; while another sender process holds it, SQLite's own wait sleeps 1 to 100 ms
        at a time inside the call, and every connection of this process stalls with it (measured: 8% of a
        two-process run). Here an attempt fails at once, before ``work`` starts, and the event loop runs on
        until the next one.
        """
        deadline = time.monotonic() + self.db.busy_timeout_ms / 1000
        pause = _LOCK_POLL_FIRST
        while True:
            try:
                with self.db.write(wait=False) as conn:
                    return work(conn)
            except WriteLockBusyError:
                if time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(pause)
            pause = min(2 * pause, _LOCK_POLL_MAX)

    def _write(self, conn: Connection, batch: list[_Result]) -> None:
        now = self.clock()
        sent = [(r.job.message.id, r.message_id, r.reply) for r in batch if r.status is MessageStatus.SENT]
        released = [r.job.message.id for r in batch if r.status is MessageStatus.QUEUED]
        unsent = [
            {
                "b_id": r.job.message.id,
                "status": r.status.value,
                "next_attempt_at": r.next_attempt_at,
                "smtp_reply": r.reply,
                "last_error": r.error,
            }
            for r in batch
            if r.status not in (MessageStatus.SENT, MessageStatus.QUEUED)
        ]
        bounced = [r for r in batch if r.status is MessageStatus.BOUNCED]
        # A campaign paused (or cancelled) by staff meanwhile: its messages still in hand go back unsent.
        if sending := {r.job.campaign_id for r in batch} - self.paused:
            current = campaign_store.statuses(conn, sending)
            self.paused.update(c for c, status in current.items() if status is not CampaignStatus.SENDING)
        outbox.mark_sent(conn, sent, now)
        outbox.mark_unsent(conn, unsent, now)
        outbox.release(conn, released, self.owner, now)
        for r in bounced:
            suppression_store.add(
                conn, email_key(r.job.contact.email), SuppressionReason.BOUNCED, r.error, r.job.message.id, now
            )


def _drain(queue: asyncio.Queue[_Job | None]) -> list[_Job]:
    """Take every job still waiting in the queue (marking each done)."""
    jobs = []
    while not queue.empty():
        job = queue.get_nowait()
        queue.task_done()
        if job is not None:
            jobs.append(job)
    return jobs


def _deadline(wave: Wave, renderer: WaveRenderer) -> datetime:
    """After this instant the message is useless: the expiry the wave fired with, else (a wave fired before
    waves recorded one) its kind's default, by the one rule (:func:`campaign.rules.timing.default_expiry`)."""
    if wave.expires_at is not None:
        return wave.expires_at
    return default_expiry(wave.kind, renderer.event.starts_at, renderer.event.ends_at)


async def send_due(
    db: Database,
    settings: Settings,
    key: bytes,
    servers: Sequence[SmtpServer],
    *,
    campaign_ref: str | None = None,
    wait: bool = False,
    progress: Progress | None = None,
    stop: asyncio.Event | None = None,
    abort: asyncio.Event | None = None,
    clock: Clock = utc_now,
) -> DispatchSummary:
    """Run one :class:`Dispatcher` to completion (or until ``stop`` or ``abort`` is set: see :class:`Dispatcher`),
    on connections of its own (see :data:`DELIVERY_MMAP_BYTES`), deciding by ``clock`` (see :data:`Clock`)."""
    delivery_db = db.variant(mmap_bytes=DELIVERY_MMAP_BYTES) if db.is_sqlite and not db.in_memory else db
    try:
        dispatcher = Dispatcher(
            delivery_db,
            settings,
            key,
            servers,
            campaign_ref=campaign_ref,
            wait=wait,
            progress=progress,
            stop=stop,
            abort=abort,
            clock=clock,
        )
        return await dispatcher.run()
    finally:
        if delivery_db is not db:
            delivery_db.dispose()


def due_count(db: Database, campaign_ref: str | None = None, clock: Clock = utc_now) -> int:
    """How many messages are due now on ``clock`` (for a progress display)."""
    campaign_id = get_campaign(db, campaign_ref).campaign.id if campaign_ref else None
    with db.read() as conn:
        return outbox.count_due(conn, clock(), campaign_id)
