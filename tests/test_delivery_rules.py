"""Delivery policy rules: retry backoff and giving up, the failure breaker, the verdict on a failed attempt and a
message's deadline, the size of a claim (pure, no clock)."""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaign.exceptions import (
    DeliveryError,
    MessageRejectedError,
    RecipientRefusedError,
    SmtpConnectionError,
    TransientDeliveryError,
)
from campaign.models import MessageStatus, WaveKind
from campaign.rules.delivery import (
    FailureBreaker,
    FailureVerdict,
    RetryPolicy,
    claim_size,
    judge_failure,
    message_deadline,
    pause_reason,
    smtp_reply,
)
from campaign.rules.timing import default_expiry

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
EPS = timedelta(microseconds=2)  # timedelta * float rounds to the microsecond

policies = st.builds(
    RetryPolicy,
    initial=st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(hours=2)),
    maximum=st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=1)),
    lifetime=st.timedeltas(min_value=timedelta(minutes=1), max_value=timedelta(days=10)),
    jitter=st.floats(min_value=0.0, max_value=0.5),
).filter(lambda p: p.maximum >= p.initial)
message_ids = st.integers(min_value=0, max_value=2**40)


# ---------------------------------------------------------------------------------------------------------
# RetryPolicy.delay
# ---------------------------------------------------------------------------------------------------------


def test_default_backoff_doubles_from_five_minutes_to_about_an_hour() -> None:
    policy = RetryPolicy(jitter=0.0)
    assert [policy.delay(n) for n in range(1, 8)] == [timedelta(minutes=m) for m in (5, 10, 20, 40, 67, 67, 67)]
    assert policy.delay(0) == timedelta(minutes=5)


def base_delay(policy: RetryPolicy, attempts: int) -> timedelta:
    """The un-jittered delay, computed in float seconds (no overflow for any attempt count)."""
    seconds = policy.initial.total_seconds() * 2.0 ** min(max(attempts - 1, 0), 200)
    return min(timedelta(seconds=min(seconds, 1e12)), policy.maximum)


@given(policies, message_ids)
def test_backoff_never_shrinks_and_stays_within_its_bounds(policy: RetryPolicy, message_id: int) -> None:
    previous = timedelta(0)
    for attempts in range(1, 21):
        delay = policy.delay(attempts, message_id)
        base = base_delay(policy, attempts)
        assert delay >= previous - EPS
        assert base * (1 - policy.jitter) - EPS <= delay <= base * (1 + policy.jitter) + EPS
        assert delay <= policy.maximum * (1 + policy.jitter) + EPS
        previous = delay


@given(policies, message_ids, st.integers(min_value=1, max_value=1_000))
def test_backoff_is_defined_for_every_attempt_count(policy: RetryPolicy, message_id: int, attempts: int) -> None:
    # A message deferred for days reaches dozens of attempts (about 110 fit in the default 5-day lifetime
    # at the 67-minute cap): its delay is the capped one, never an overflow.
    delay = policy.delay(attempts, message_id)
    base = base_delay(policy, attempts)
    assert base * (1 - policy.jitter) - EPS <= delay <= policy.maximum * (1 + policy.jitter) + EPS


def test_default_policy_survives_a_message_deferred_for_two_days() -> None:
    policy = RetryPolicy()
    elapsed, attempts = timedelta(0), 0
    while elapsed < timedelta(days=2):
        attempts += 1
        elapsed += policy.delay(attempts, message_id=7)
    assert attempts > 40  # reachable within the lifetime
    assert policy.delay(attempts, 7) <= policy.maximum * 1.1
    queued = NOW - elapsed
    assert policy.next_attempt(attempts=attempts, now=NOW, queued_at=queued, deadline=None, message_id=7) is not None


@given(policies, message_ids, st.integers(min_value=1, max_value=30))
def test_jitter_is_stable_per_message(policy: RetryPolicy, message_id: int, attempts: int) -> None:
    assert policy.delay(attempts, message_id) == policy.delay(attempts, message_id)


def test_jitter_spreads_messages_that_failed_together() -> None:
    policy = RetryPolicy()
    delays = {policy.delay(1, message_id) for message_id in range(1_000)}
    assert len(delays) > 500
    assert min(delays) < timedelta(minutes=5) * 0.93
    assert max(delays) > timedelta(minutes=5) * 1.07
    assert all(timedelta(minutes=4.5) <= d <= timedelta(minutes=5.5) for d in delays)


# ---------------------------------------------------------------------------------------------------------
# RetryPolicy.next_attempt
# ---------------------------------------------------------------------------------------------------------


@given(
    policies,
    message_ids,
    st.integers(min_value=1, max_value=30),
    st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=12)),
    st.none() | st.timedeltas(min_value=timedelta(hours=-1), max_value=timedelta(days=3)),
)
def test_next_attempt_is_the_delay_or_none_past_the_lifetime_or_deadline(
    policy: RetryPolicy, message_id: int, attempts: int, age: timedelta, until_deadline: timedelta | None
) -> None:
    queued_at = NOW - age
    deadline = None if until_deadline is None else NOW + until_deadline
    at = policy.next_attempt(attempts=attempts, now=NOW, queued_at=queued_at, deadline=deadline, message_id=message_id)
    planned = NOW + policy.delay(attempts, message_id)
    too_old = planned - queued_at > policy.lifetime
    too_late = deadline is not None and planned >= deadline
    if too_old or too_late:
        assert at is None
    else:
        assert at == planned
        assert at - queued_at <= policy.lifetime
        assert deadline is None or at < deadline


def test_next_attempt_boundaries() -> None:
    policy = RetryPolicy(initial=timedelta(minutes=5), jitter=0.0, lifetime=timedelta(hours=1))
    planned = NOW + timedelta(minutes=5)
    assert policy.next_attempt(attempts=1, now=NOW, queued_at=NOW, deadline=None) == planned
    # At the deadline exactly is too late; a microsecond after it is in time.
    assert policy.next_attempt(attempts=1, now=NOW, queued_at=NOW, deadline=planned) is None
    later = planned + timedelta(microseconds=1)
    assert policy.next_attempt(attempts=1, now=NOW, queued_at=NOW, deadline=later) == planned
    # The lifetime ends exactly at the planned attempt: still allowed; a microsecond past it: expired.
    exact = planned - timedelta(hours=1)
    assert policy.next_attempt(attempts=1, now=NOW, queued_at=exact, deadline=None) == planned
    past = exact - timedelta(microseconds=1)
    assert policy.next_attempt(attempts=1, now=NOW, queued_at=past, deadline=None) is None
    # A deadline already passed.
    assert policy.next_attempt(attempts=1, now=NOW, queued_at=NOW, deadline=NOW - timedelta(hours=1)) is None


# ---------------------------------------------------------------------------------------------------------
# FailureBreaker
# ---------------------------------------------------------------------------------------------------------


@given(
    window=st.integers(min_value=1, max_value=30),
    minimum=st.integers(min_value=1, max_value=40),
    threshold=st.sampled_from([0.25, 0.5, 0.75, 0.8, 0.9, 1.0]),
    results=st.lists(st.booleans(), max_size=120),
)
def test_breaker_trips_only_with_enough_samples_and_failures(
    window: int, minimum: int, threshold: float, results: list[bool]
) -> None:
    breaker = FailureBreaker(window=window, threshold=threshold, minimum=minimum)
    recent: deque[bool] = deque(maxlen=window)
    for ok in results:
        recent.append(ok)
        failures = sum(not r for r in recent)
        expected = len(recent) >= minimum and failures >= threshold * len(recent) - 1e-9
        assert breaker.record(ok) is expected
        assert breaker.failure_rate == pytest.approx(failures / len(recent))


def test_breaker_examples() -> None:
    breaker = FailureBreaker(window=10, threshold=0.8, minimum=5)
    assert breaker.failure_rate == 0.0
    assert [breaker.record(False) for _ in range(5)] == [False, False, False, False, True]
    assert breaker.record(True) is True  # 5 of 6 failed: still tripped
    assert breaker.record(True) is False  # 5 of 7
    # Old results leave the window: ten successes forget every failure.
    for _ in range(10):
        breaker.record(True)
    assert breaker.failure_rate == 0.0
    assert breaker.record(False) is False
    # A window smaller than the minimum never trips.
    never = FailureBreaker(window=3, threshold=0.5, minimum=5)
    assert not any(never.record(False) for _ in range(20))


# ---------------------------------------------------------------------------------------------------------
# The pure failure and deadline rules
# ---------------------------------------------------------------------------------------------------------

POLICY = RetryPolicy(initial=timedelta(minutes=5), maximum=timedelta(hours=1), lifetime=timedelta(days=1))


def verdict(
    error: DeliveryError, *, attempts: int = 1, queued_at: datetime = NOW, deadline: datetime | None = None
) -> FailureVerdict:
    """The verdict at ``NOW`` on message 7, under :data:`POLICY`."""
    return judge_failure(
        error, POLICY, attempts=attempts, now=NOW, queued_at=queued_at, deadline=deadline, message_id=7
    )


def test_a_refused_recipient_bounces_and_a_refused_message_fails_without_counting_against_the_campaign() -> None:
    bounced = verdict(RecipientRefusedError("no such user", 550, "5.1.1 unknown"))
    assert (bounced.status, bounced.reply, bounced.error) == (
        MessageStatus.BOUNCED,
        "550 5.1.1 unknown",
        "no such user",
    )
    assert (bounced.next_attempt_at, bounced.counts_against_campaign) == (None, False)
    failed = verdict(MessageRejectedError("spam", 554, "rejected"))
    assert (failed.status, failed.reply, failed.counts_against_campaign) == (
        MessageStatus.FAILED,
        "554 rejected",
        False,
    )


def test_a_transient_error_defers_with_backoff_and_counts_against_the_campaign() -> None:
    for attempts in (1, 2, 3):
        deferred = verdict(TransientDeliveryError("busy", 451, "try later"), attempts=attempts)
        assert deferred.status is MessageStatus.DEFERRED
        assert deferred.next_attempt_at == NOW + POLICY.delay(attempts, 7)
        assert (deferred.reply, deferred.error, deferred.counts_against_campaign) == ("451 try later", "busy", True)
    dropped = verdict(SmtpConnectionError("connection lost"))
    assert (dropped.status, dropped.reply) == (MessageStatus.DEFERRED, None)


def test_a_transient_error_expires_the_message_past_its_deadline_or_lifetime() -> None:
    error = TransientDeliveryError("busy", 451, "try later")
    expired = verdict(error, deadline=NOW + timedelta(minutes=1))  # the event starts before the next attempt
    assert (expired.status, expired.error, expired.next_attempt_at) == (MessageStatus.EXPIRED, "gave up: busy", None)
    assert expired.counts_against_campaign
    assert verdict(error, attempts=9, queued_at=NOW - timedelta(hours=23, minutes=30)).status is MessageStatus.EXPIRED
    assert verdict(error, deadline=NOW + timedelta(days=2)).status is MessageStatus.DEFERRED


def test_smtp_reply_and_pause_reason() -> None:
    assert smtp_reply(TransientDeliveryError("busy", 421, "closing")) == "421 closing"
    assert smtp_reply(SmtpConnectionError("refused")) is None
    assert pause_reason(0.8333, SmtpConnectionError("refused")) == (
        "paused automatically: 83% of recent attempts failed; last error: refused"
    )


def test_a_message_deadline_is_its_waves_expiry_else_its_kinds_default() -> None:
    starts, ends = NOW + timedelta(days=3), NOW + timedelta(days=3, hours=2)
    assert message_deadline(NOW + timedelta(days=1), WaveKind.REMINDER, starts, ends) == NOW + timedelta(days=1)
    for kind in WaveKind:
        assert message_deadline(None, kind, starts, ends) == default_expiry(kind, starts, ends)
    assert message_deadline(None, WaveKind.INVITATION, starts, ends) == starts


def test_the_configured_breaker_judges_after_twenty_attempts_or_its_window() -> None:
    assert FailureBreaker.configured(50, 0.8).minimum == 20
    small = FailureBreaker.configured(5, 0.8)
    assert small.minimum == 5
    assert [small.record(False) for _ in range(5)] == [False, False, False, False, True]


def test_a_claim_is_about_a_second_of_recent_sending_within_its_bounds() -> None:
    # No rate yet (a first claim, or the first after an idle spell): what keeps the senders busy.
    assert claim_size(0, 0.0, least=20, most=1000) == 20
    assert claim_size(0, 3.0, least=20, most=1000) == 20
    # 600 finished in the 1.5 s since the last claim: 400 a second, so 400.
    assert claim_size(600, 1.5, least=20, most=1000) == 400
    # Fast: capped by batch_size; slow (a throttled relay): never below what keeps the senders busy.
    assert claim_size(9000, 1.0, least=20, most=1000) == 1000
    assert claim_size(3, 1.0, least=20, most=1000) == 20
    # batch_size below the senders' need wins: the operator's cap is the cap.
    assert claim_size(0, 0.0, least=20, most=5) == 5
    assert claim_size(500, 1.0, least=20, most=5) == 5


@given(
    finished=st.integers(0, 10**7),
    seconds=st.floats(0, 1e4, allow_nan=False),
    least=st.integers(1, 500),
    most=st.integers(1, 5000),
)
def test_a_claim_size_is_never_below_one_nor_above_batch_size(
    finished: int, seconds: float, least: int, most: int
) -> None:
    size = claim_size(finished, seconds, least=least, most=most)
    assert 1 <= size <= most
    assert size >= min(least, most)
