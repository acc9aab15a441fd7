"""``campaign serve``: fires each wave at its instant, exactly once, and delivers what is due, in one process.

The decisions are in :meth:`SchedulerService.tick`, which takes the instant it runs at (tests pass their own
clock; nothing here sleeps through real hours): fire every wave due at ``now``
(:func:`campaign.services.scheduling.fire_due`, whose compare-and-set makes a wave fire once however many
processes try, and which marks a wave that expired while nothing fired it ``missed``), settle waves and
campaigns whose messages are all final, and read the waves still to come. APScheduler 3 only decides *when* to
tick: an ``AsyncIOScheduler`` with a memory job store holds one date job per pending wave, at the instant it
fires, rebuilt from the database at start and after every tick (so the database stays the only truth, and a
wave added while the service runs gets its job), plus a maintenance job every ``tick_seconds`` that catches up
whatever a date job could not (a wave due while the service was down, one added with a time already passed).

The delivery worker (:func:`campaign.services.dispatch.send_due` with ``wait``) runs in the same event loop.
Ticks run in a worker thread, so materialising a large wave never stalls the SMTP connections; a tick that fails
is logged and tried again at the next one. :meth:`SchedulerService.request_stop` (SIGTERM, SIGINT) stops
claiming, finishes the messages being sent, releases the ones claimed but not begun (a sender waiting for the
rate limit gives its message back), finishes the tick in progress, and returns. A second signal stops at once:
what was not on the wire is released, the messages being sent are left to their leases, and
:class:`StoppedAtOnce` says so. ``serve --once`` handles the signals the same way.

:meth:`SchedulerService.run` also runs its *companions* in the same event loop (``campaign serve`` gives it the
web service, :class:`campaign.web.server.WebServer`, which this package does not import: the command line composes
the two interfaces): each is started with the service, told to stop when the service is (at once on a second
signal), and waited for; one that ends by itself, or fails, stops the service, and its error is raised.

Given a :class:`~campaign.services.leadership.Leadership`, the service runs it as a companion and ticks only while
it leads: a standby (PostgreSQL: another process holds the leader lock) delivers, but fires nothing, until it
takes the lead; then it ticks at once (catching up what fell due). A lost lead stops the service with its error.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from campaign.exceptions import CampaignError
from campaign.mail.smtp import SmtpServer
from campaign.models import MessageStatus, WaveStatus
from campaign.services.context import AppContext
from campaign.services.delivery_request import DeliveryRequest
from campaign.services.dispatch import send_due
from campaign.services.dispatch_summary import DispatchSummary
from campaign.services.leadership import Leadership
from campaign.services.lifecycle import finish_campaigns
from campaign.services.scheduling import Dropped, Fired, FireTime, drop_left_audiences, fire_due, fire_times
from scheduler.display import StatusLine, counted, fields, log


class StoppedAtOnce(CampaignError):
    """A second SIGTERM or Ctrl-C stopped the service without finishing the messages being sent."""


RELEASED = "released"
"""In log lines: messages a worker gave back unsent (claimed, then a stop or a pause came first)."""
_MAINTENANCE_JOB = "maintenance"
_WAVE_JOB = "wave-"  # + the wave's id

Clock = Callable[[], datetime]


class Companion(Protocol):
    """Another service run in the scheduler's event loop and stopped with it (the web service)."""

    async def serve(self) -> None:
        """Run until asked to stop."""
        ...

    def request_stop(self, *, at_once: bool = False) -> None:
        """Stop gracefully, or ``at_once``; called from signal handlers too."""
        ...


def utc_now() -> datetime:
    """The real clock."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class TickReport:
    """What one tick did: the waves it fired or found missed, the campaigns it saw finished, what comes next."""

    now: datetime
    fired: list[Fired] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    upcoming: list[FireTime] = field(default_factory=list)
    dropped: list[Dropped] = field(default_factory=list)
    """Waves whose messages not sent yet it cancelled: their contacts left the audience (registered since ...)."""

    @property
    def next_wave(self) -> FireTime | None:
        """The next wave to fire after this tick, if any."""
        return next((f for f in self.upcoming if f.fires_at > self.now), None)


class SchedulerService:
    """Fires waves and delivers messages for one database (see the module doc)."""

    def __init__(
        self,
        context: AppContext,
        *,
        tick_seconds: float | None = None,
        clock: Clock = utc_now,
        status: StatusLine | None = None,
        leadership: Leadership | None = None,
    ) -> None:
        """``leadership``: tick only while it leads (see the module doc); without it, always."""
        self.context = context
        self.leadership = leadership
        # The setting (scheduler.tick_seconds) unless a caller (a test) chooses.
        self.tick_seconds = tick_seconds if tick_seconds is not None else context.settings.scheduler.tick_seconds
        self.clock = clock
        self.status = status
        self.delivered: Counter[str] = Counter()  # every result recorded since the start
        self._unreported: Counter[str] = Counter()  # results not yet in a delivery log line
        self._next: FireTime | None = None
        self._stop = asyncio.Event()
        self._abort = asyncio.Event()
        self._tick_wanted = asyncio.Event()
        self._companions: Sequence[Companion] = ()

    # -- the decisions -------------------------------------------------------------------------------------

    def tick(self, now: datetime) -> TickReport:
        """Fire every wave due at ``now``, settle finished waves and campaigns, and log what was done."""
        report = self._decide(now)
        self._report(report)
        return report

    def _decide(self, now: datetime) -> TickReport:
        db, settings = self.context.database(check_schema=False), self.context.settings
        fired = fire_due(db, settings, now)
        dropped = drop_left_audiences(db, now)
        finished = finish_campaigns(db, now)
        return TickReport(now, fired, finished, fire_times(db), dropped)

    def _report(self, report: TickReport) -> None:
        for fired in report.fired:
            if fired.status is WaveStatus.MISSED:
                log.warning(fields("wave missed", campaign=fired.campaign, wave=fired.wave, reason=fired.reason))
            else:
                counts = {"queued": fired.queued, "suppressed": fired.suppressed, "expired": fired.expired}
                if fired.topped_up:
                    # Newcomers to the list got the invitation: the invitation did not fire again.
                    log.info(fields("invitation topped up", campaign=fired.campaign, wave=fired.wave, **counts))
                else:
                    log.info(
                        fields("wave fired", campaign=fired.campaign, wave=fired.wave, status=fired.status, **counts)
                    )
        for drop in report.dropped:
            log.info(fields("left the audience", campaign=drop.campaign, wave=drop.wave, cancelled=drop.cancelled))
        for name in report.finished:
            log.info(fields("campaign sent", campaign=name))
        self._report_delivery()
        self._next = report.next_wave
        self._show()

    def _delivered(self, status: str) -> None:
        """The delivery worker's progress callback: one call per message recorded."""
        # A message recorded as queued was given back unsent (a stop, a pause): "released" says so in the log.
        name = RELEASED if status == MessageStatus.QUEUED.value else status
        self.delivered[name] += 1
        self._unreported[name] += 1
        self._show(force=False)

    def _report_delivery(self) -> None:
        """One line for the results recorded since the last one (nothing when there were none)."""
        if self._unreported:
            log.info(fields("delivery", **dict(sorted(self._unreported.items()))))
            self._unreported.clear()

    def _show(self, *, force: bool = True) -> None:
        if self.status is None:
            return
        parts = ["serving" if self.leads() else "standing by (another `campaign serve` leads)"]
        if self._stop.is_set():
            parts = ["stopping: finishing the messages in hand"]
        if self._next is not None:
            parts.append(f"next: {self._next.campaign}/{self._next.wave} at {self._next.fires_at:%Y-%m-%d %H:%M} UTC")
        else:
            parts.append("no wave waiting")
        sent = ", ".join(f"{n} {status}" for status, n in sorted(self.delivered.items())) or "nothing yet"
        parts.append(f"delivered: {sent}")
        self.status.show(" · ".join(parts), force=force)

    def leads(self) -> bool:
        """Whether this service fires the waves now (it leads, or runs without a leadership)."""
        return self.leadership is None or self.leadership.leading

    # -- one run (cron, tests) -----------------------------------------------------------------------------

    def run_once(
        self, servers: Sequence[SmtpServer], *, handle_signals: bool = False
    ) -> tuple[TickReport, DispatchSummary]:
        """One tick, then deliver everything due, then return (``campaign serve --once``); with
        ``handle_signals``, SIGTERM and SIGINT stop it as they stop :meth:`run`."""
        return asyncio.run(self._once(servers, handle_signals))

    async def _once(self, servers: Sequence[SmtpServer], handle_signals: bool) -> tuple[TickReport, DispatchSummary]:
        self._new_events()
        loop = asyncio.get_running_loop()
        if handle_signals:
            self._handle_signals(loop)
        try:
            # In a thread, so that a signal during the tick is handled (the tick itself finishes: one transaction).
            now = self.clock()
            report = await asyncio.to_thread(self._decide, now)
            self._report(report)
            summary = DispatchSummary()
            if not self._stop.is_set():
                context = self.context
                db = context.database(check_schema=False)
                key = context.signing_key()
                request = DeliveryRequest(db, context.settings, key, servers, progress=self._delivered)
                summary = await send_due(request, stop=self._stop, abort=self._abort)
            self._report_delivery()
        finally:
            if handle_signals:
                self._unhandle_signals(loop)
        self._raise_if_aborted(summary)
        return report, summary

    # -- the long-running service --------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Stop gracefully (see the module doc); safe to call more than once, from a signal handler too."""
        if not self._stop.is_set():
            log.info(fields("stopping"))
            self._stop.set()
            self._tick_wanted.set()  # wakes the ticker, which sees the stop
            self._show()
            for companion in self._companions:
                companion.request_stop()

    def _signalled(self) -> None:
        """SIGTERM or SIGINT: the first stops gracefully, a second (someone who will not wait) at once."""
        if not self._stop.is_set():
            self.request_stop()
        elif not self._abort.is_set():
            log.warning(fields("stopping at once"))
            self._abort.set()
            for companion in self._companions:
                companion.request_stop(at_once=True)

    def _new_events(self) -> None:
        # Made in the loop that uses them (an Event made before asyncio.run would belong to no loop).
        self._stop, self._abort, self._tick_wanted = asyncio.Event(), asyncio.Event(), asyncio.Event()

    def _handle_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._signalled)

    def _unhandle_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)

    def _raise_if_aborted(self, summary: DispatchSummary) -> None:
        """After a run stopped by a second signal: :class:`StoppedAtOnce`, saying what was left to the leases."""
        if not self._abort.is_set():
            return
        n, lease = summary.abandoned, self.context.settings.delivery.lease_seconds
        # Their outcome is unknown (the server may have said 250 as the connection closed): as after a crash,
        # they stay leased and go out again when the lease expires.
        left = (
            f"{counted(n, 'message')} being sent {'is' if n == 1 else 'are'} left leased, to go out again after "
            f"{lease:g} s (delivery.lease_seconds; a recipient may get it twice)"
            if n
            else "nothing was being sent"
        )
        raise StoppedAtOnce(f"stopped at once on a second signal: {left}")

    async def run(
        self, servers: Sequence[SmtpServer], *, handle_signals: bool = False, companions: Sequence[Companion] = ()
    ) -> DispatchSummary:
        """Tick and deliver until :meth:`request_stop` (or SIGTERM/SIGINT, with ``handle_signals``), with the
        ``companions`` running beside (see the module doc); returns what the delivery worker did. An error of the
        delivery worker or of a companion stops the service and is raised."""
        self._new_events()
        if self.leadership is not None:
            self.leadership.on_lead = self._tick_wanted.set  # a standby that takes the lead ticks at once
            companions = [*companions, self.leadership]
        self._companions = companions
        loop = asyncio.get_running_loop()
        if handle_signals:
            self._handle_signals(loop)
        context = self.context
        db = context.database(check_schema=False)
        log.info(fields("serving", database=db.describe(), tick_seconds=self.tick_seconds))
        scheduler = AsyncIOScheduler(timezone=UTC)
        scheduler.add_job(
            self._want_tick,
            IntervalTrigger(seconds=self.tick_seconds, timezone=UTC),
            id=_MAINTENANCE_JOB,
            next_run_time=utc_now(),  # at once: catch up what fell due while the service was down
            coalesce=True,
            max_instances=1,
            misfire_grace_time=None,
        )
        scheduler.start()
        ticker = asyncio.create_task(self._ticker(scheduler))
        worker = asyncio.create_task(
            send_due(
                DeliveryRequest(
                    db, context.settings, context.signing_key(), servers, wait=True, progress=self._delivered
                ),
                stop=self._stop,
                abort=self._abort,
            )
        )
        beside = [asyncio.create_task(companion.serve()) for companion in companions]
        try:
            await asyncio.wait([worker, *beside], return_when=asyncio.FIRST_COMPLETED)
            if not worker.done() and not self._stop.is_set():
                # A companion ended by itself (its error, if any, is raised below): the service stops with it. One
                # that ends on a stop asked for (SIGTERM) is done before the worker, which finishes its sends.
                log.error(fields("stopping: a service beside the scheduler ended"))
                self.request_stop()
            summary = await worker
        finally:
            self.request_stop()  # the worker stopped on an error: the ticker and the companions stop too
            if self._abort.is_set():
                ticker.cancel()  # a tick in its thread still ends its transaction; nothing waits for the report
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            ended = await asyncio.gather(*beside, return_exceptions=True)
            scheduler.shutdown(wait=False)
            await asyncio.sleep(0)  # the shutdown runs as a callback of this loop
            if handle_signals:
                self._unhandle_signals(loop)
            self._report_delivery()
            if self.status is not None:
                self.status.close()
        log.info(fields("stopped", **dict(sorted(self.delivered.items()))))
        self._raise_if_aborted(summary)
        for outcome in ended:
            if isinstance(outcome, BaseException):
                raise outcome
        return summary

    async def _want_tick(self) -> None:
        """APScheduler's job: ask the ticker for a tick (the tick itself is not APScheduler's to cancel)."""
        self._tick_wanted.set()

    async def _ticker(self, scheduler: AsyncIOScheduler) -> None:
        while True:
            await self._tick_wanted.wait()
            if self._stop.is_set():
                return
            self._tick_wanted.clear()
            if not self.leads():
                self._show()
                continue  # a standby: the leader ticks
            now = self.clock()
            try:
                report = await asyncio.to_thread(self._decide, now)
            except CampaignError as exc:
                log.error(fields("tick failed", error=exc))
                continue
            except Exception:
                log.exception(fields("tick failed"))
                continue
            self._report(report)
            if not self._stop.is_set():
                self._plan_waves(scheduler, report)

    def _plan_waves(self, scheduler: AsyncIOScheduler, report: TickReport) -> None:
        """One date job per wave still to fire, at its instant; jobs of waves no longer pending are removed."""
        wanted = {f"{_WAVE_JOB}{f.wave_id}": f.fires_at for f in report.upcoming if f.fires_at > report.now}
        for job in scheduler.get_jobs():
            if job.id.startswith(_WAVE_JOB) and job.id not in wanted:
                job.remove()
        for job_id, fires_at in wanted.items():
            job = scheduler.get_job(job_id)
            if job is None or job.next_run_time != fires_at:
                scheduler.add_job(
                    self._want_tick,
                    DateTrigger(run_date=fires_at, timezone=UTC),
                    id=job_id,
                    replace_existing=True,
                    misfire_grace_time=None,  # late is better than never: fire_due decides if it expired
                )
