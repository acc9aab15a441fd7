"""Delivery policy: what a failed attempt means, retry backoff, deadlines and giving up, and the failure-rate
breaker (the rate limits are token buckets in the database: :mod:`campaign.services.rate_limits`). Pure: every
function takes the time it needs as an argument, so each rule is tested without a clock, a database or a network.

Contract (the delivery worker, :mod:`campaign.services.dispatch_failures`, only applies these verdicts):

* :func:`judge_failure`: a 5xx at RCPT (:class:`~campaign.exceptions.RecipientRefusedError`) bounces the message;
  any other permanent error fails it; neither counts against its campaign. A transient error (4xx, a dropped
  connection, a timeout) counts against the campaign's breaker and defers the message to the retry policy's next
  attempt, or expires it when that would fall past its lifetime or its deadline.
* :func:`message_deadline`: after this instant a message is useless (its wave's expiry, else its kind's default).
* :class:`FailureBreaker` (:meth:`FailureBreaker.configured`) trips when most recent attempts failed;
  :func:`pause_reason` is what the paused campaign then says.
* :func:`claim_size`: how many messages a worker claims next, about a second of its recent sending.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from campaign.exceptions import DeliveryError, PermanentDeliveryError, RecipientRefusedError
from campaign.models import MessageStatus, WaveKind
from campaign.rules.timing import default_expiry


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff as Postfix does it: 5 minutes doubling up to about an hour, for a limited lifetime.

    An invitation after its session has started is useless, so a message also gives up when its next
    attempt would fall after the event start.
    """

    initial: timedelta = timedelta(minutes=5)
    maximum: timedelta = timedelta(minutes=67)
    lifetime: timedelta = timedelta(days=5)
    jitter: float = 0.1

    def delay(self, attempts: int, message_id: int = 0) -> timedelta:
        """How long to wait after the ``attempts``-th failed attempt (1-based), with a small, stable jitter.

        The jitter spreads retries of messages that failed together (a server outage) so they do not all
        return at the same second; it is derived from the message id, so it is reproducible.
        """
        # Capped exponent: 2**40 times five minutes no longer fits in a timedelta.
        seconds = self.initial.total_seconds() * 2.0 ** min(max(attempts - 1, 0), 64)
        base = self.maximum if seconds >= self.maximum.total_seconds() else timedelta(seconds=seconds)
        spread = ((message_id * 2654435761) % 1000) / 1000  # 0 <= spread < 1, well mixed across ids
        delay: timedelta = base * (1 + self.jitter * (2 * spread - 1))
        return delay

    def next_attempt(
        self, *, attempts: int, now: datetime, queued_at: datetime, deadline: datetime | None, message_id: int = 0
    ) -> datetime | None:
        """When to try again, or None when the message should expire instead."""
        at = now + self.delay(attempts, message_id)
        if at - queued_at > self.lifetime or (deadline is not None and at >= deadline):
            return None
        return at


@dataclass(slots=True)
class FailureBreaker:
    """Trips when the failure rate over the last ``window`` attempts reaches ``threshold``.

    A server that is down or an authentication that broke fails every message; rather than burning through
    the whole queue (and retry budgets), the campaign pauses and says why.
    """

    window: int = 50
    threshold: float = 0.8
    minimum: int = 20
    _results: deque[bool] = field(init=False)

    def __post_init__(self) -> None:
        self._results = deque(maxlen=self.window)

    @classmethod
    def configured(cls, window: int, threshold: float) -> FailureBreaker:
        """The breaker of ``[delivery]``'s ``breaker_window`` and ``breaker_threshold``: it judges no sooner than
        after 20 attempts (or the whole window, if smaller), so a few early failures do not pause a campaign."""
        return cls(window=window, threshold=threshold, minimum=min(20, window))

    def record(self, ok: bool) -> bool:
        """Record an attempt; returns True when the breaker trips."""
        self._results.append(ok)
        return self.judges(self._results.count(False), len(self._results))

    def judges(self, failures: int, attempts: int) -> bool:
        """Whether ``failures`` among ``attempts`` recent attempts trip this breaker (any view of them: this
        process's, or every worker's as the outbox records them)."""
        return attempts >= self.minimum and failures / attempts >= self.threshold

    def forget(self) -> None:
        """Start afresh: the attempts recorded so far no longer count."""
        self._results.clear()

    @property
    def failure_rate(self) -> float:
        """Failures over the recent window (0 when empty)."""
        return self._results.count(False) / len(self._results) if self._results else 0.0


@dataclass(frozen=True, slots=True)
class FailureVerdict:
    """What a failed attempt does to its message: its new ``status`` (with ``next_attempt_at`` when deferred),
    the server's ``reply`` and the ``error`` recorded, and whether it counts against its campaign's breaker."""

    status: MessageStatus
    reply: str | None
    error: str
    next_attempt_at: datetime | None = None
    counts_against_campaign: bool = False


def smtp_reply(error: DeliveryError) -> str | None:
    """The server's answer as recorded (``"451 try later"``), or None when there was none (a dropped connection)."""
    return f"{error.code} {error.reply}" if error.code else None


def judge_failure(
    error: DeliveryError,
    policy: RetryPolicy,
    *,
    attempts: int,
    now: datetime,
    queued_at: datetime,
    deadline: datetime | None,
    message_id: int = 0,
) -> FailureVerdict:
    """The verdict on a message whose ``attempts``-th attempt failed with ``error`` at ``now``; see the module doc."""
    reply = smtp_reply(error)
    if isinstance(error, RecipientRefusedError):
        return FailureVerdict(MessageStatus.BOUNCED, reply, str(error))
    if isinstance(error, PermanentDeliveryError):
        return FailureVerdict(MessageStatus.FAILED, reply, str(error))
    # Anything else is transient (TransientDeliveryError; the sender wraps unexpected errors as one).
    next_at = policy.next_attempt(
        attempts=attempts, now=now, queued_at=queued_at, deadline=deadline, message_id=message_id
    )
    if next_at is None:
        return FailureVerdict(MessageStatus.EXPIRED, reply, f"gave up: {error}", counts_against_campaign=True)
    return FailureVerdict(MessageStatus.DEFERRED, reply, str(error), next_at, counts_against_campaign=True)


def message_deadline(
    expires_at: datetime | None, kind: WaveKind, event_starts_at: datetime, event_ends_at: datetime
) -> datetime:
    """After this instant a message of its wave is useless: the expiry the wave fired with, else (a wave fired
    before waves recorded one) its kind's default, by the one rule (:func:`campaign.rules.timing.default_expiry`)."""
    if expires_at is not None:
        return expires_at
    return default_expiry(kind, event_starts_at, event_ends_at)


CLAIM_SECONDS = 1.0
"""A worker claims about this many seconds of its recent sending at a time (see :func:`claim_size`)."""


def claim_size(finished: int, seconds: float, *, least: int, most: int) -> int:
    """How many messages a worker claims next, given that it finished ``finished`` messages in the ``seconds``
    since its previous claim: about :data:`CLAIM_SECONDS` of that rate, at least ``least`` (what keeps its
    senders busy) and at most ``most`` (``delivery.batch_size``); ``least`` while it has no rate yet.

    Why adapt: every claim and every group of results costs the database a fixed share besides its rows, so a
    fast worker wants big batches (bench/scale.py, one PostgreSQL worker: batches of 1,000 against 200 took
    0.028 s of server CPU per 1,000 messages instead of 0.038, and the worker 0.37 s of CPU instead of 0.46).
    But what a worker holds and has not sent is what a crash leaves waiting for its lease, what a graceful stop
    gives back and what other workers cannot share; a worker held to a slow relay or a rate limit takes no more
    than a second's worth."""
    if finished <= 0 or seconds <= 0:
        return max(1, min(least, most))
    # Clamped as a float first: a tiny interval makes the rate infinite, which no int holds.
    return max(1, min(most, max(least, round(min(float(most), finished / seconds * CLAIM_SECONDS)))))


def pause_reason(failure_rate: float, error: DeliveryError) -> str:
    """The status reason of a campaign its breaker paused."""
    return f"paused automatically: {failure_rate:.0%} of recent attempts failed; last error: {error}"
