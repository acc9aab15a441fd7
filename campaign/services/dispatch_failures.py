"""What a failed delivery attempt does: its message's result, and its campaign's breaker.

Contract: the policy is decided by the pure rules of :mod:`campaign.rules.delivery` (:func:`judge_failure`: bounce,
fail, defer with backoff or expire; the breaker; the pause reason) with the ``[delivery]`` settings and the run's
clock; this module applies it to one run's state and the database:

* A 5xx at RCPT bounces the message (its address is suppressed as the result is recorded); any other permanent
  error fails it. Neither counts against the campaign: they say something about one recipient or one message, not
  about the server.
* A transient error (a 4xx, a dropped connection, a timeout) defers the message to the next attempt of the
  ``[delivery]`` retry policy, or expires it when its lifetime ends or the event has started. It counts against
  its campaign's breaker, as each message sent counts for it.
* When most recent attempts of a campaign failed (the breaker trips) the campaign pauses itself, with the reason
  in its status (:func:`campaign.services.lifecycle.pause_sending`: only if it is still sending), and the run's
  summary names it. The decision is the fleet's, not one worker's: when this worker's own recent attempts trip its
  breaker, the campaign's recent attempts as the outbox records them, every worker's together, are counted (one
  statement, :mod:`campaign.store.recent_attempts`) and decide. If they are enough to judge (the breaker's
  minimum) and do not trip it (other workers deliver: the fault is this worker's path to the relay, not the
  campaign's), this worker's breaker starts afresh and the campaign sends on; with fewer (results still wait
  in group commits), the next failure asks again. So two workers never disagree about a campaign, and one
  worker's broken network never pauses a campaign the others are delivering.
* A paused campaign is held back: its messages still in this worker's hands go back unsent. It is held back too
  once staff paused or cancelled it (seen when results are recorded); when a claim returns its messages again it
  was resumed, and its breaker starts afresh.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import Connection

from campaign.config import Settings
from campaign.exceptions import DeliveryError
from campaign.models import CampaignStatus
from campaign.rules.delivery import FailureBreaker, RetryPolicy, judge_failure, pause_reason
from campaign.services.dispatch_jobs import Clock, Job, Result
from campaign.services.dispatch_summary import DispatchSummary, PausedCampaign
from campaign.services.lifecycle import pause_sending
from campaign.store import campaigns as campaign_store
from campaign.store import recent_attempts


def retry_policy(settings: Settings) -> RetryPolicy:
    """The retry policy configured in ``[delivery]``."""
    d = settings.delivery
    return RetryPolicy(
        initial=timedelta(minutes=d.retry_initial_minutes),
        maximum=timedelta(minutes=d.retry_max_minutes),
        lifetime=timedelta(hours=d.lifetime_hours),
    )


class Failures:
    """One run's judgement of failed attempts, its breakers and the campaigns it holds back; see the module doc."""

    def __init__(self, settings: Settings, clock: Clock, summary: DispatchSummary) -> None:
        """Campaigns that pause themselves are paused in the recorder's transaction (:meth:`decide_tripped`) and
        named in ``summary``."""
        self.settings = settings
        self.clock = clock
        self.summary = summary
        self.retry = retry_policy(settings)
        self.breakers: dict[int, FailureBreaker] = {}
        self.paused: set[int] = set()  # the campaigns held back
        self.tripped: dict[int, DeliveryError] = {}  # campaigns whose breaker tripped here, with the last error

    def succeeded(self, campaign_id: int) -> None:
        """Count a message sent for its campaign."""
        self._breaker(campaign_id).record(True)

    def failed(self, job: Job, exc: DeliveryError) -> Result:
        """The result of ``job`` after ``exc``; a transient error counts against its campaign, and may pause it."""
        message = job.message
        verdict = judge_failure(
            exc,
            self.retry,
            attempts=message.attempts,
            now=self.clock(),
            queued_at=message.queued_at,
            deadline=job.deadline,
            message_id=message.id,
        )
        if verdict.counts_against_campaign:
            breaker = self._breaker(job.campaign_id)
            if breaker.record(False) and job.campaign_id not in self.paused:
                self.tripped[job.campaign_id] = exc  # decided as this result is recorded: decide_tripped
        return Result(
            job, verdict.status, reply=verdict.reply, error=verdict.error, next_attempt_at=verdict.next_attempt_at
        )

    def decide_tripped(self, conn: Connection) -> None:
        """In the recorder's transaction, once its batch of results is written: for each campaign whose breaker
        tripped here since, the campaign's recent attempts, every worker's and this batch's, decide whether it
        pauses (see the module doc). One statement per such campaign; none at all while no breaker trips."""
        tripped, self.tripped = self.tripped, {}
        for campaign_id, exc in tripped.items():
            if campaign_id not in self.paused:
                self._decide(conn, campaign_id, self._breaker(campaign_id), exc)

    def resumed(self, campaign_ids: Iterable[int]) -> None:
        """Campaigns a claim returned messages of: sending again, so no longer held back (breaker afresh)."""
        for campaign_id in campaign_ids:
            if campaign_id in self.paused:
                self.paused.discard(campaign_id)
                self.breakers.pop(campaign_id, None)

    def hold_back_not_sending(self, conn: Connection, campaign_ids: set[int]) -> None:
        """Hold back those of ``campaign_ids`` that are no longer sending (paused or cancelled by staff
        meanwhile): their messages still in hand go back unsent."""
        if sending := campaign_ids - self.paused:
            current = campaign_store.statuses(conn, sending)
            self.paused.update(c for c, status in current.items() if status is not CampaignStatus.SENDING)

    def _breaker(self, campaign_id: int) -> FailureBreaker:
        breaker = self.breakers.get(campaign_id)
        if breaker is None:
            d = self.settings.delivery
            breaker = FailureBreaker.configured(d.breaker_window, d.breaker_threshold)
            self.breakers[campaign_id] = breaker
        return breaker

    def _decide(self, conn: Connection, campaign_id: int, breaker: FailureBreaker, exc: DeliveryError) -> None:
        now = self.clock()
        failures, attempts = recent_attempts.recent_outcomes(
            conn, campaign_id, window=breaker.window, since=now - RECENT_ATTEMPTS
        )
        if attempts < breaker.minimum:
            return  # too few recorded to judge (its results lost with a lease?): the next failure asks again
        if not breaker.judges(failures, attempts):
            breaker.forget()  # the others deliver: this worker's view starts afresh
            return
        self.paused.add(campaign_id)
        reason = pause_reason(failures / attempts, exc)
        name = pause_sending(conn, campaign_id, reason, now)
        if name is not None:
            self.summary.paused[campaign_id] = PausedCampaign(campaign_id, name, reason)


RECENT_ATTEMPTS = timedelta(minutes=15)
"""Attempts recorded longer ago than this are not recent (an outage of yesterday says nothing about now)."""
