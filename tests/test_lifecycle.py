"""The campaign lifecycle: launch, pause, resume, cancel, retry, and test-sends, with real SMTP and databases."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from campaign.exceptions import ValidationError
from campaign.models import UNFINISHED_MESSAGES, CampaignStatus, MessageStatus, WaveStatus, check_wave_transition
from campaign.services.campaigns import create_campaign, get_campaign
from campaign.services.delivery_request import DeliveryRequest
from campaign.services.dispatch import send_due
from campaign.services.lifecycle import launch, move, retry_deferred, retry_failed, settle_waves
from campaign.services.progress import campaign_progress
from campaign.services.sending import send_test
from campaign.services.waves import WaveOptions, add_wave
from campaign.store import campaigns as campaign_store
from campaign.store import outbox
from campaign.store.engine import Database
from campaign.store.tables import messages
from tests.test_delivery import (
    ACCEPTED,
    KEY,
    Sink,
    add_future_event,
    base_settings,
    campaign_status,
    outbox_rows,
    pipelining_smtp,
    prepare,
    send,
    statuses,
    tuned,
)

# One pipelining server, under the name these tests use.
smtp = pipelining_smtp


def message_count(db: Database) -> int:
    with db.read() as conn:
        return conn.scalar(select(func.count()).select_from(messages)) or 0


# ---------------------------------------------------------------------------------------------------------
# Transitions
# ---------------------------------------------------------------------------------------------------------


def test_invalid_moves_are_refused_with_a_clear_message(db: Database, tmp_path: Path) -> None:
    settings = tuned(base_settings(tmp_path))
    prepare(db, tmp_path, 3)

    with pytest.raises(ValidationError, match="a campaign cannot go from draft to paused"):
        move(db, "c", CampaignStatus.PAUSED)
    assert campaign_status(db, "c") is CampaignStatus.DRAFT

    launch(db, settings, KEY, "c")
    with pytest.raises(ValidationError, match="only a draft can be launched; c is sending"):
        launch(db, settings, KEY, "c")
    assert move(db, "c", CampaignStatus.CANCELLED).campaign.status is CampaignStatus.CANCELLED

    for target in (CampaignStatus.SENDING, CampaignStatus.PAUSED, CampaignStatus.SENT):
        with pytest.raises(ValidationError, match=f"a campaign cannot go from cancelled to {target}"):
            move(db, "c", target)
    # Not "cannot go from cancelled to cancelled" (a new user's review read "from paused to paused").
    with pytest.raises(ValidationError, match=r"^the campaign is already cancelled$"):
        move(db, "c", CampaignStatus.CANCELLED)
    with pytest.raises(ValidationError, match="only a draft can be launched; c is cancelled"):
        launch(db, settings, KEY, "c")
    assert campaign_status(db, "c") is CampaignStatus.CANCELLED
    assert statuses(db, "c") == {"cancelled": 3}


def test_resume_is_only_for_a_paused_campaign(db: Database, tmp_path: Path) -> None:
    # "Resume" of a draft skips launch: no check and nothing queued, yet the campaign says "sending" (and
    # `launch` is then refused: "cannot go from sending to sending").
    prepare(db, tmp_path, 3)

    with pytest.raises(ValidationError, match="draft"):
        move(db, "c", CampaignStatus.SENDING)

    assert campaign_status(db, "c") is CampaignStatus.DRAFT


# ---------------------------------------------------------------------------------------------------------
# Pause and resume
# ---------------------------------------------------------------------------------------------------------


def test_a_paused_campaign_sends_nothing_until_resumed(db: Database, tmp_path: Path, smtp: Sink) -> None:
    settings = tuned(base_settings(tmp_path))
    emails = prepare(db, tmp_path, 5)
    launch(db, settings, KEY, "c")
    paused = move(db, "c", CampaignStatus.PAUSED, "waiting for the speaker list")
    assert (paused.campaign.status, paused.campaign.status_reason) == (
        CampaignStatus.PAUSED,
        "waiting for the speaker list",
    )

    assert send(db, settings, smtp.servers()).counts == {}
    assert send(db, settings, smtp.servers(), campaign=None).counts == {}

    assert smtp.handler.received() == Counter()
    assert statuses(db, "c") == {"queued": 5}
    assert {row.attempts for row in outbox_rows(db, "c").values()} == {0}
    assert campaign_status(db, "c") is CampaignStatus.PAUSED

    move(db, "c", CampaignStatus.SENDING)
    summary = send(db, settings, smtp.servers())
    assert summary.counts == {"sent": 5}
    assert smtp.handler.received() == Counter(dict.fromkeys(emails, 1))
    assert campaign_status(db, "c") is CampaignStatus.SENT


def test_pausing_mid_run_stops_the_sending(db: Database, tmp_path: Path, smtp: Sink) -> None:
    # Pause once five results are recorded. Messages already handed to the server may still complete (one
    # per connection); nothing else of the campaign may go out while it is paused. On PostgreSQL a sender goes
    # on before its result is committed, and learns of the pause at the next group commit: until then it may
    # begin at most delivery.group_commit_max more (SQLite commits each result before its sender goes on).
    concurrency, group = 2, 4
    bound = concurrency + (0 if db.is_sqlite else group)
    settings = tuned(base_settings(tmp_path), concurrency=concurrency, group_commit_max=group)
    emails = prepare(db, tmp_path, 30)
    launch(db, settings, KEY, "c")
    smtp.handler.delay = 0.02
    recorded: list[str] = []
    at_pause: list[int] = []

    def progress(status: str) -> None:
        recorded.append(status)
        if len(recorded) == 5:
            move(db, "c", CampaignStatus.PAUSED)
            at_pause.append(sum(smtp.handler.received().values()))

    asyncio.run(send_due(DeliveryRequest(db, settings, KEY, smtp.servers(), campaign_ref="c", progress=progress)))

    assert campaign_status(db, "c") is CampaignStatus.PAUSED
    counts = statuses(db, "c")
    assert set(counts) <= {"sent", "queued"}, counts
    sent_while_paused = counts["sent"] - at_pause[0]
    assert sent_while_paused <= bound, f"{sent_while_paused} messages went out after the pause (bound: {bound})"
    assert all(r.attempts == 0 for r in outbox_rows(db, "c").values() if r.status == "queued")

    move(db, "c", CampaignStatus.SENDING)
    send(db, settings, smtp.servers())
    assert smtp.handler.received() == Counter(dict.fromkeys(emails, 1))
    assert campaign_status(db, "c") is CampaignStatus.SENT


# ---------------------------------------------------------------------------------------------------------
# Cancel
# ---------------------------------------------------------------------------------------------------------


def test_cancel_turns_queued_and_deferred_into_cancelled(db: Database, tmp_path: Path, smtp: Sink) -> None:
    settings = tuned(base_settings(tmp_path), retry_initial_minutes=10.0)
    emails = prepare(db, tmp_path, 6)
    busy = set(emails[:2])
    smtp.handler.plan = lambda rcpt, _attempt: "451 4.3.0 try again later" if rcpt in busy else None
    launch(db, settings, KEY, "c")
    assert send(db, settings, smtp.servers()).counts == {"sent": 4, "deferred": 2}
    add_future_event(db, "event-other")
    create_campaign(db, event_ref="event-other", list_name="guests", name="other")
    launch(db, settings, KEY, "other")

    move(db, "c", CampaignStatus.CANCELLED)
    move(db, "other", CampaignStatus.CANCELLED)

    rows = outbox_rows(db, "c")
    assert {e: rows[e].status for e in busy} == dict.fromkeys(busy, "cancelled")
    assert {rows[e].status for e in emails if e not in busy} == {"sent"}
    assert statuses(db, "other") == {"cancelled": 6}
    assert campaign_status(db, "c") is CampaignStatus.CANCELLED
    assert campaign_status(db, "other") is CampaignStatus.CANCELLED

    before = smtp.handler.received()
    smtp.handler.plan = lambda _rcpt, _attempt: None
    assert send(db, settings, smtp.servers(), campaign=None).counts == {}
    assert smtp.handler.received() == before
    with pytest.raises(ValidationError, match="cannot go from cancelled to sending"):
        move(db, "c", CampaignStatus.SENDING)


# ---------------------------------------------------------------------------------------------------------
# Retry
# ---------------------------------------------------------------------------------------------------------


def test_retry_failed_requeues_failed_and_expired_and_reopens_the_campaign(
    db: Database, tmp_path: Path, smtp: Sink
) -> None:
    # A lifetime of 3.6 ms: a 4xx gives up at once (expired); a 5xx at DATA fails.
    settings = tuned(base_settings(tmp_path), lifetime_hours=1e-6)
    emails = prepare(db, tmp_path, 6)
    refused, busy = emails[1], emails[4]
    replies = {refused: "554 5.6.0 content refused", busy: "451 4.3.0 try again later"}
    smtp.handler.plan = lambda rcpt, _attempt: replies.get(rcpt)
    launch(db, settings, KEY, "c")
    assert send(db, settings, smtp.servers()).counts == {"sent": 4, "failed": 1, "expired": 1}
    assert campaign_status(db, "c") is CampaignStatus.SENT
    rows = outbox_rows(db, "c")
    assert (rows[refused].status, rows[busy].status) == ("failed", "expired")
    assert str(rows[busy].last_error).startswith("gave up: ")

    assert retry_failed(db, "c") == 2

    details = get_campaign(db, "c").campaign
    assert (details.status, details.status_reason) == (CampaignStatus.SENDING, "retrying")
    rows = outbox_rows(db, "c")
    assert {(rows[e].status, rows[e].next_attempt_at) for e in (refused, busy)} == {("queued", None)}
    assert {rows[e].status for e in emails if e not in (refused, busy)} == {"sent"}

    smtp.handler.plan = lambda _rcpt, _attempt: None
    summary = send(db, settings, smtp.servers())
    assert summary.counts == {"sent": 2}
    assert summary.finished == ["c"]
    assert smtp.handler.received() == Counter(dict.fromkeys(emails, 1))
    rows = outbox_rows(db, "c")
    assert {(r.status, r.smtp_reply) for r in rows.values()} == {("sent", ACCEPTED)}
    assert campaign_status(db, "c") is CampaignStatus.SENT

    # Nothing failed any more: retrying does nothing and leaves the campaign sent.
    assert retry_failed(db, "c") == 0
    assert campaign_status(db, "c") is CampaignStatus.SENT


# ---------------------------------------------------------------------------------------------------------
# Test-send
# ---------------------------------------------------------------------------------------------------------


def test_test_send_delivers_one_marked_message_to_staff_and_records_nothing(
    db: Database, tmp_path: Path, smtp: Sink
) -> None:
    settings = tuned(base_settings(tmp_path))
    emails = prepare(db, tmp_path, 4)

    result = asyncio.run(send_test(db, settings, KEY, smtp.servers(), "c", " Staff@Example.ORG "))
    as_third = asyncio.run(send_test(db, settings, KEY, smtp.servers(), "c", "staff@example.org", emails[3]))

    assert result.to == "Staff@example.org"  # normalised: trimmed, domain lower-cased
    assert result.rendered_as == emails[0]  # the first of the audience, in address order
    assert result.reply == ACCEPTED
    assert as_third.rendered_as == emails[3]
    assert smtp.handler.received() == Counter({"staff@example.org": 2})
    with smtp.handler.lock:
        bodies = [data for _, data in smtp.handler.delivered]
    first, third = (email.message_from_bytes(b, policy=email.policy.default) for b in bodies)
    for message in (first, third):
        assert str(message["Subject"]).startswith("[TEST] ")
        assert message["To"].addresses[0].addr_spec.lower() == "staff@example.org"
    first_text = first.get_body(("plain",))
    third_text = third.get_body(("plain",))
    assert first_text is not None
    assert "Dear Guest 0," in first_text.get_content()
    assert third_text is not None
    assert "Dear Guest 3," in third_text.get_content()
    assert message_count(db) == 0
    assert campaign_status(db, "c") is CampaignStatus.DRAFT
    assert all(rcpt == "staff@example.org" for rcpt in smtp.handler.rcpt_attempts)


# ---------------------------------------------------------------------------------------------------------
# Retry of deferred messages; waves follow their messages
# ---------------------------------------------------------------------------------------------------------


def test_retry_deferred_makes_them_due_now_and_the_next_claim_takes_them(
    db: Database, tmp_path: Path, smtp: Sink
) -> None:
    settings = tuned(base_settings(tmp_path), retry_initial_minutes=60.0)
    emails = prepare(db, tmp_path, 6)
    busy = set(emails[:2])
    smtp.handler.plan = lambda rcpt, attempt: "451 4.3.0 try again later" if rcpt in busy and attempt == 1 else None
    launch(db, settings, KEY, "c")
    assert send(db, settings, smtp.servers()).counts == {"sent": 4, "deferred": 2}
    assert send(db, settings, smtp.servers()).counts == {}  # their backoff time is an hour away
    before = datetime.now(UTC)

    assert retry_deferred(db, "c") == 2

    rows = outbox_rows(db, "c")
    for address in busy:
        row = rows[address]
        assert (row.status, row.attempts, row.lease_expires_at) == ("deferred", 1, None)
        assert row.next_attempt_at is not None
        assert before <= row.next_attempt_at <= datetime.now(UTC)
    with db.read() as conn:
        assert outbox.count_due(conn, datetime.now(UTC)) == 2
    summary = send(db, settings, smtp.servers())
    assert summary.counts == {"sent": 2}
    assert summary.finished == ["c"]
    assert smtp.handler.received() == Counter(dict.fromkeys(emails, 1))
    assert retry_deferred(db, "c") == 0  # nothing deferred any more


def test_retry_deferred_of_a_draft_is_refused(db: Database, tmp_path: Path) -> None:
    prepare(db, tmp_path, 2)
    with pytest.raises(ValidationError, match="c is draft: there is nothing to retry"):
        retry_deferred(db, "c")


def test_a_wave_is_done_once_its_messages_are_final_and_reopens_when_retried(
    db: Database, tmp_path: Path, smtp: Sink
) -> None:
    settings = tuned(base_settings(tmp_path))
    emails = prepare(db, tmp_path, 4)
    refused = emails[2]
    smtp.handler.plan = lambda rcpt, attempt: "554 5.6.0 content refused" if rcpt == refused and attempt == 1 else None
    launch(db, settings, KEY, "c")
    assert wave_statuses(db, "c") == [WaveStatus.ENQUEUED]

    send(db, settings, smtp.servers())

    assert statuses(db, "c") == {"sent": 3, "failed": 1}
    assert campaign_status(db, "c") is CampaignStatus.SENT
    assert wave_statuses(db, "c") == [WaveStatus.DONE]

    assert retry_failed(db, "c") == 1
    assert wave_statuses(db, "c") == [WaveStatus.ENQUEUED]  # re-opened with its message
    send(db, settings, smtp.servers())
    assert wave_statuses(db, "c") == [WaveStatus.DONE]
    assert statuses(db, "c") == {"sent": 4}


def test_a_wave_with_messages_left_stays_enqueued_and_cancel_cancels_the_waves(
    db: Database, tmp_path: Path, smtp: Sink
) -> None:
    settings = tuned(base_settings(tmp_path), retry_initial_minutes=60.0)
    emails = prepare(db, tmp_path, 3)
    smtp.handler.plan = lambda rcpt, _attempt: "451 4.3.0 try again later" if rcpt == emails[0] else None
    launch(db, settings, KEY, "c")
    send(db, settings, smtp.servers())
    assert statuses(db, "c") == {"sent": 2, "deferred": 1}
    assert wave_statuses(db, "c") == [WaveStatus.ENQUEUED]

    move(db, "c", CampaignStatus.CANCELLED)

    assert wave_statuses(db, "c") == [WaveStatus.CANCELLED]


def test_cancel_leaves_a_wave_whose_messages_all_ended_done_not_cancelled(
    db: Database, tmp_path: Path, smtp: Sink
) -> None:
    settings = tuned(base_settings(tmp_path), retry_initial_minutes=60.0)
    emails = prepare(db, tmp_path, 3)
    smtp.handler.plan = lambda rcpt, _attempt: "451 4.3.0 try again later" if rcpt == emails[0] else None
    launch(db, settings, KEY, "c")
    send(db, settings, smtp.servers())
    move(db, "c", CampaignStatus.PAUSED)
    campaign_id = get_campaign(db, "c").campaign.id
    with db.write() as conn:  # its last message ends while the campaign is paused (its lifetime ended)
        outbox.set_status_where(conn, campaign_id, ["deferred"], "expired", datetime.now(UTC))
    assert wave_statuses(db, "c") == [WaveStatus.ENQUEUED]

    move(db, "c", CampaignStatus.CANCELLED)

    assert statuses(db, "c") == {"sent": 2, "expired": 1}  # nothing of it was cancelled
    assert wave_statuses(db, "c") == [WaveStatus.DONE]


def test_resume_settles_the_waves_of_a_paused_campaign(db: Database, tmp_path: Path, smtp: Sink) -> None:
    settings = tuned(base_settings(tmp_path))
    prepare(db, tmp_path, 2)
    launch(db, settings, KEY, "c")
    move(db, "c", CampaignStatus.PAUSED)
    campaign_id = get_campaign(db, "c").campaign.id
    with db.write() as conn:  # as a worker of an older release left them: every message final, wave enqueued
        outbox.set_status_where(conn, campaign_id, ["queued"], "sent", datetime.now(UTC))
    assert wave_statuses(db, "c") == [WaveStatus.ENQUEUED]

    move(db, "c", CampaignStatus.SENDING)

    assert wave_statuses(db, "c") == [WaveStatus.DONE]
    assert send(db, settings, smtp.servers()).finished == ["c"]  # nothing left: the next run marks it sent
    assert smtp.handler.received() == Counter()


def test_every_message_status_is_unfinished_or_final_alike_for_waves_progress_and_the_outbox(
    db: Database, tmp_path: Path
) -> None:
    # One set says which statuses are not final yet; waves, progress reports and the store's count agree on it.
    prepare(db, tmp_path, 2)
    launch(db, base_settings(tmp_path), KEY, "c")
    campaign_id = get_campaign(db, "c").campaign.id
    assert {MessageStatus.QUEUED, MessageStatus.DEFERRED, MessageStatus.SENDING} == UNFINISHED_MESSAGES
    for status in MessageStatus:  # queued, sending, sent (done), deferred (reopened), bounced (done), ...
        with db.write() as conn:
            conn.execute(update(messages).values(status=status.value))
            left = settle_waves(conn, campaign_id)
        unfinished = status in UNFINISHED_MESSAGES
        assert wave_statuses(db, "c") == [WaveStatus.ENQUEUED if unfinished else WaveStatus.DONE], status
        assert campaign_progress(db, "c").unfinished == (2 if unfinished else 0), status
        assert bool(left) is unfinished, status


def test_the_store_moves_only_the_waves_still_in_the_status_they_were_read_in(db: Database, tmp_path: Path) -> None:
    # The store runs SQL; which waves move where is lifecycle's decision. A compare-and-set: a wave another
    # transaction moved since it was read is left alone.
    prepare(db, tmp_path, 2)
    launch(db, base_settings(tmp_path), KEY, "c")
    details = get_campaign(db, "c")
    [wave] = details.waves
    with db.write() as conn:
        assert campaign_store.waves_with_unfinished(conn, details.campaign.id) == {wave.id}
        conn.execute(update(messages).values(status=MessageStatus.SENT.value))
        assert campaign_store.waves_with_unfinished(conn, details.campaign.id) == set()
        assert campaign_store.set_waves_status(conn, [wave.id], WaveStatus.DONE, was=WaveStatus.ENQUEUED) == 1
        assert campaign_store.set_waves_status(conn, [wave.id], WaveStatus.CANCELLED, was=WaveStatus.ENQUEUED) == 0
        assert campaign_store.set_waves_status(conn, [], WaveStatus.CANCELLED, was=WaveStatus.DONE) == 0
    assert wave_statuses(db, "c") == [WaveStatus.DONE]
    assert get_campaign(db, "c").waves[0].enqueued_at == wave.enqueued_at  # only launch stamps it


def test_wave_transitions_allow_reopening_a_done_wave_and_nothing_after_cancel() -> None:
    check_wave_transition(WaveStatus.PENDING, WaveStatus.ENQUEUED)
    check_wave_transition(WaveStatus.ENQUEUED, WaveStatus.DONE)
    check_wave_transition(WaveStatus.DONE, WaveStatus.ENQUEUED)  # a retry queues its messages again
    check_wave_transition(WaveStatus.ENQUEUED, WaveStatus.CANCELLED)
    with pytest.raises(ValidationError, match="a wave cannot go from pending to done"):
        check_wave_transition(WaveStatus.PENDING, WaveStatus.DONE)
    for target in WaveStatus:
        with pytest.raises(ValidationError, match=f"a wave cannot go from cancelled to {target}"):
            check_wave_transition(WaveStatus.CANCELLED, target)


def wave_statuses(db: Database, campaign: str) -> list[WaveStatus]:
    return [wave.status for wave in get_campaign(db, campaign).waves]


def test_launch_reports_the_waves_it_skipped_and_those_still_to_come(db: Database, tmp_path: Path) -> None:
    """Launched three days before the event: the -7d wave is skipped (and said so), the -1d one waits."""
    settings = tuned(base_settings(tmp_path))
    prepare(db, tmp_path, 2)
    add_wave(db, settings, "c", "early", WaveOptions(kind="last-chance", at="-7d"))
    add_wave(db, settings, "c", "soon", WaveOptions(kind="reminder", at="-1d"))
    result = launch(db, settings, KEY, "c")
    assert [(f.wave, f.status) for f in result.missed] == [("early", WaveStatus.MISSED)]
    assert result.missed[0].reason is not None
    assert "had passed when the campaign was launched" in result.missed[0].reason
    assert result.pending == ("soon",)
    assert result.queued == 2
