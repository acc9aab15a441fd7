"""The senders: each takes jobs from the run's queue and delivers them over an SMTP connection of its own.

Contract:

* A job is sent only if the run is not stopping (else it is given back), its campaign is not held back (given
  back, "campaign paused"), its lease is surely still the run's (else given back: a no-op if another worker took
  it; see :mod:`campaign.services.heartbeat`) and its deadline has not passed (expired); then within the
  ``[delivery]`` rate limits (per second, per hour, per recipient domain), shared by every worker through the
  database (:mod:`campaign.services.rate_limits`). A stop that comes while a sender
  waits for the rate limit cuts the wait short, and the job is given back.
* The message is built for the server it goes to: unencoded UTF-8 where it offers 8BITMIME. A message that
  cannot be built (a template error for one contact) fails alone. What a delivery error does is decided by
  :mod:`campaign.services.dispatch_failures`; any other error while sending is taken as transient: the
  message is retried later, and the sender carries on.
* A sender takes its next job only once the last one's result is handed to the recorder: committed, on SQLite;
  on PostgreSQL gathered into a group commit whose size is bounded
  (:mod:`campaign.services.dispatch_results` states the bound, and what a crash may then send twice).
* A sender cancelled (the run aborted) gives back the job in its hands unless it is on the wire; those on the
  wire stay in :attr:`Senders.on_the_wire`, left to their leases. Its connection then says QUIT, for half a
  second at most.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence

from campaign.config import Settings
from campaign.exceptions import DeliveryError, TemplateError, TransientDeliveryError
from campaign.mail.smtp import ServerChooser, SmtpConnection, SmtpServer
from campaign.models import MessageStatus
from campaign.render.identifiers import message_id_for
from campaign.services.dispatch_failures import Failures
from campaign.services.dispatch_jobs import Clock, Job, Result
from campaign.services.dispatch_results import ResultRecorder
from campaign.services.dispatch_stop import StopSignals
from campaign.services.rate_limits import RateLimits

_ABORT_QUIT_SECONDS = 0.5  # an aborted sender says QUIT this long at most: the process is leaving


class Senders:
    """The senders of one run, sharing its servers and rate limits; see the module doc."""

    def __init__(
        self,
        servers: Sequence[SmtpServer],
        settings: Settings,
        clock: Clock,
        signals: StopSignals,
        failures: Failures,
        results: ResultRecorder,
        limits: RateLimits,
        lease_held: Callable[[float], bool] = lambda _claimed_at: True,
    ) -> None:
        """``clock`` dates the messages and decides their deadlines; the rate ``limits`` keep real time.
        ``lease_held`` says whether the lease of a job claimed at a (monotonic) instant is surely still the run's
        (its heartbeat's word)."""
        self.chooser = ServerChooser(servers)
        self.settings = settings
        self.clock = clock
        self.signals = signals
        self.failures = failures
        self.results = results
        self.lease_held = lease_held
        self.limits = limits
        self.on_the_wire: set[int] = set()  # the messages a sender has begun to transmit

    async def run(self, queue: asyncio.Queue[Job | None]) -> None:
        """One sender: deliver the jobs of ``queue`` and record their results, until it hands out None."""
        connection = SmtpConnection(self.chooser)
        try:
            while (job := await queue.get()) is not None:
                result: Result | None = None
                try:
                    result = await self._deliver(connection, job)
                    await self.results.record(result)
                except asyncio.CancelledError:
                    # Aborted: a job not yet on the wire goes back; one being sent is left to its lease (it
                    # may have reached the server: only the lease's expiry can decide to send it again).
                    if result is None and job.message.id not in self.on_the_wire:
                        self.results.release([job])
                    raise
                finally:
                    queue.task_done()
            queue.task_done()
        finally:
            if self.signals.aborting():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_ABORT_QUIT_SECONDS):
                        await connection.close()
            else:
                await connection.close()

    async def _deliver(self, connection: SmtpConnection, job: Job) -> Result:
        if self.signals.stopping():  # taken from the queue as the stop came: given back, not begun
            return Result(job, MessageStatus.QUEUED)
        now = self.clock()
        if job.campaign_id in self.failures.tripped:
            # This worker's breaker tripped for the campaign: the results handed over are committed now, which
            # decides it from every worker's recorded attempts (Failures.decide_tripped), before another goes out.
            await self.results.flush()
        if job.campaign_id in self.failures.paused:
            return Result(job, MessageStatus.QUEUED, error="campaign paused")
        if job.deadline is not None and now >= job.deadline:
            return Result(job, MessageStatus.EXPIRED, error="the event has started")
        message_id = message_id_for(f"c{job.campaign_id}.w{job.wave.id}.m{job.message.id}", job.renderer.sender)
        if not await self.limits.wait_turn(job.contact.email) or self.signals.stopping():
            # The stop came while this sender waited for the rate limit (seconds, at a low rate): the message
            # goes back rather than holding the stop up.
            return Result(job, MessageStatus.QUEUED)
        if not self.lease_held(job.claimed_at):
            # This worker was stopped (or cut off from the database) past its lease: another may be sending this
            # message now. Given back (a no-op if it was taken), never sent from here.
            return Result(job, MessageStatus.QUEUED)
        try:
            # Built for the server it goes to: unencoded UTF-8 where it offers 8BITMIME (a quarter smaller).
            # Nothing waits between this and sending, so the session cannot change in between.
            eight_bit = await connection.accepts_8bit()
        except DeliveryError as exc:
            return self.failures.failed(job, exc)
        try:
            data = job.renderer.build(job.contact, message_id, job.message.id, date=now, eight_bit=eight_bit)
        except Exception as exc:  # one contact's bad data fails its message, never the run
            error = str(exc) if isinstance(exc, TemplateError) else f"cannot build the message: {exc!r}"
            return Result(job, MessageStatus.FAILED, error=error)
        self.on_the_wire.add(job.message.id)
        try:
            reply = await connection.send(
                job.renderer.sender.from_address, job.contact.email, data, eight_bit=eight_bit
            )
        except DeliveryError as exc:
            return self.failures.failed(job, exc)
        except Exception as exc:  # a bug, not the recipient's fault: retried later, the worker carries on
            return self.failures.failed(job, TransientDeliveryError(f"unexpected error while sending: {exc!r}"))
        finally:
            # Kept when aborted: the sender's cancellation must know this one may have reached the server.
            if not self.signals.aborting():
                self.on_the_wire.discard(job.message.id)
        self.failures.succeeded(job.campaign_id)
        return Result(job, MessageStatus.SENT, message_id=message_id, reply=f"250 {reply}")
