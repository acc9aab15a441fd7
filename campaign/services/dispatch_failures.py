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
  summary names it. A paused campaign is held back: its messages still in this
  worker's hands go back unsent. It is held back too once staff paused or cancelled it (seen when results are
  recorded); when a claim returns its messages again it was resumed, and its breaker starts afresh.
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
from campaign.store.engine import Database


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

    def __init__(self, db: Database, settings: Settings, clock: Clock, summary: DispatchSummary) -> None:
        """Campaigns that pause themselves are written to ``db`` and named in ``summary``."""
        self.db = db
        self.settings = settings
        self.clock = clock
        self.summary = summary
        self.retry = retry_policy(settings)
        self.breakers: dict[int, FailureBreaker] = {}
        self.paused: set[int] = set()  # the campaigns held back

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
                self._pause(job.campaign_id, breaker, exc)
        return Result(
            job, verdict.status, reply=verdict.reply, error=verdict.error, next_attempt_at=verdict.next_attempt_at
        )

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

    def _pause(self, campaign_id: int, breaker: FailureBreaker, exc: DeliveryError) -> None:
        self.paused.add(campaign_id)
        reason = pause_reason(breaker.failure_rate, exc)
        name = pause_sending(self.db, campaign_id, reason, self.clock())
        if name is not None:
            self.summary.paused[campaign_id] = PausedCampaign(campaign_id, name, reason)
