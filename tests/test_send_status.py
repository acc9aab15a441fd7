"""Truthful sending status: what ``campaign send``, ``campaign retry`` and ``campaign show`` say, and how send
exits, against real aiosmtpd servers that defer messages or are down (a campaign then pauses itself)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from select import select as wait_readable

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from campaign.cli import cli
from campaign.config import load_settings
from campaign.models import CampaignStatus
from campaign.services.campaigns import create_campaign, get_campaign
from campaign.services.lifecycle import launch, move, retry_deferred
from campaign.services.progress import Waiting, campaign_progress
from campaign.store import campaigns as campaign_store
from campaign.store import materialise, outbox
from campaign.store.engine import Database
from campaign.store.tables import messages
from tests.test_delivery import (
    KEY,
    FaultySmtp,
    Sink,
    add_future_event,
    base_settings,
    campaign_status,
    cli_environment,
    closed_port,
    outbox_rows,
    pipelining_smtp,
    prepare,
    relay_config,
    send,
    statuses,
    tuned,
)

TRY_LATER = "451 4.3.0 try again later"


# One pipelining server, under the name these tests use.
smtp = pipelining_smtp


@pytest.fixture(autouse=True)
def secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMPAIGN_SECRET_KEY", KEY.decode())


def campaign_cli(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args])


def relay(tmp_path: Path, db: Database, port: int, delivery: str = "") -> Path:
    return relay_config(tmp_path, db, Sink(FaultySmtp(True), port), concurrency=2, extra=f"[delivery]\n{delivery}")


def test_send_reports_deferred_messages_with_their_retry_time_and_retry_deferred_sends_them_now(
    db: Database, tmp_path: Path, smtp: Sink, kathmandu: None
) -> None:
    config = relay(tmp_path, db, smtp.port, "retry_initial_minutes = 60\n")
    emails = prepare(db, tmp_path, 8)
    busy = set(emails[:2])
    smtp.handler.plan = lambda rcpt, attempt: TRY_LATER if rcpt in busy and attempt == 1 else None
    launch(db, load_settings(config, environ={}), KEY, "c")

    sent = campaign_cli(config, "send", "--campaign", "c")

    assert sent.exit_code == 0, sent.output  # deferred messages are normal operation
    assert "Delivery: 2 deferred, 6 sent" in sent.stdout
    assert "Campaign c is sending." in sent.stdout
    assert "messages: sent 6 · deferred 2" in sent.stdout
    rows = outbox_rows(db, "c")
    retry_at = min(r.next_attempt_at for r in rows.values() if r.next_attempt_at)
    local = retry_at.astimezone()
    assert local.utcoffset() == timedelta(hours=5, minutes=45)
    expected = f"{local:%Y-%m-%d %H:%M:%S} +0545 ({retry_at.astimezone(UTC):%H:%M:%S} UTC)"
    if local.date() != retry_at.date():
        expected = f"{local:%Y-%m-%d %H:%M:%S} +0545 ({retry_at:%Y-%m-%d %H:%M:%S} UTC)"
    assert f"deferred: next retry at {expected}" in sent.stdout
    assert "`campaign retry c --deferred`" in sent.stdout

    shown = campaign_cli(config, "show", "c")
    assert shown.exit_code == 0, shown.output
    assert "messages:  sent 6 · deferred 2" in shown.stdout
    assert "next retry at" in shown.stdout
    assert table_row(shown.stdout, "invitation") == [
        "invitation",
        "invitation",
        "invitation",
        "all",
        "enqueued",
        "6",
        "2",
    ]
    assert table_row(shown.stdout, "wave")[-2:] == ["sent", "deferred"]

    missing = campaign_cli(config, "retry", "c")
    assert missing.exit_code == 2
    assert "--failed, --deferred, or both" in missing.stderr

    retried = campaign_cli(config, "retry", "c", "--deferred")
    assert retried.exit_code == 0, retried.output
    assert "2 deferred messages are due now" in retried.stdout
    assert "Next: campaign send --campaign c" in retried.stdout
    assert {r.status for e, r in outbox_rows(db, "c").items() if e in busy} == {"deferred"}

    again = campaign_cli(config, "send", "--campaign", "c")
    assert again.exit_code == 0, again.output
    assert "Delivery: 2 sent" in again.stdout
    assert "Campaign c is sent." in again.stdout
    assert "messages: sent 8" in again.stdout
    assert smtp.handler.received() == Counter(dict.fromkeys(emails, 1))

    done = campaign_cli(config, "show", "c")
    assert table_row(done.stdout, "invitation")[4:] == ["done", "8"]


def test_a_campaign_that_pauses_itself_makes_send_exit_1_with_the_reason_and_what_is_left(
    db: Database, tmp_path: Path
) -> None:
    config = relay(tmp_path, db, closed_port(), "breaker_window = 4\nbreaker_threshold = 0.75\n")
    prepare(db, tmp_path, 12)
    launch(db, load_settings(config, environ={}), KEY, "c")

    sent = campaign_cli(config, "send", "--campaign", "c")

    assert sent.exit_code == 1
    assert campaign_status(db, "c") is CampaignStatus.PAUSED
    left = statuses(db, "c")
    assert left["deferred"] >= 4, left  # the breaker stopped the run: the rest is still queued
    assert left["queued"] >= 1, left
    assert "Campaign c paused itself during this run: paused automatically:" in sent.stdout
    assert f"messages: queued {left['queued']} · deferred {left['deferred']}" in sent.stdout
    [error] = sent.stderr.splitlines()
    assert error.startswith("Error: c paused itself (paused automatically: ")
    assert "connection failed" in error
    assert error.endswith("once the cause is fixed: `campaign resume c`")

    # Asked again for the paused campaign: not "nothing was due" and success, but why and how to resume.
    again = campaign_cli(config, "send", "--campaign", "c")
    assert again.exit_code == 1
    assert "Delivery: nothing was sent" in again.stdout
    [error] = again.stderr.splitlines()
    assert error.startswith("Error: c is paused (paused automatically: ")
    assert error.endswith(f": {left['queued'] + left['deferred']} messages wait; `campaign resume c` sends them")

    # Every campaign: the paused one is reported with how to resume it, but it did not pause in this run.
    everyone = campaign_cli(config, "send")
    assert everyone.exit_code == 0, everyone.output
    assert "Campaign c is paused: paused automatically:" in everyone.stdout
    assert "`campaign resume c` sends them" in everyone.stdout


def test_send_blames_only_the_campaign_that_paused_itself_whatever_the_names(db: Database, tmp_path: Path) -> None:
    # `a: b` pauses itself; `a` was paused by staff before the run. An entry "a: b: <reason>" must not be read as
    # campaign `a` pausing itself with the reason "b: <reason>".
    config = relay(tmp_path, db, closed_port(), "breaker_window = 4\nbreaker_threshold = 0.75\n")
    settings = load_settings(config, environ={})
    prepare(db, tmp_path, 6, name="a")
    add_future_event(db, "event-b")
    create_campaign(db, event_ref="event-b", list_name="guests", name="a: b")
    launch(db, settings, KEY, "a")
    launch(db, settings, KEY, "a: b")
    move(db, "a", CampaignStatus.PAUSED, "waiting for the speaker list")

    sent = campaign_cli(config, "send")

    assert sent.exit_code == 1
    assert campaign_status(db, "a: b") is CampaignStatus.PAUSED
    assert "Campaign a: b paused itself during this run: paused automatically:" in sent.stdout
    assert "Campaign a is paused: waiting for the speaker list" in sent.stdout
    assert "Campaign a paused itself" not in sent.stdout
    [error] = sent.stderr.splitlines()
    assert error.startswith("Error: a: b paused itself (paused automatically: ")
    assert error.endswith("once the cause is fixed: `campaign resume a: b`")


def test_a_campaign_that_pauses_itself_on_its_last_messages_has_its_waves_done_and_nothing_waits(
    db: Database, tmp_path: Path
) -> None:
    # A lifetime of 3.6 ms: every 4xx gives up at once (expired, final), and the fourth, the last message, trips
    # the breaker. README: a wave is done once all its messages are final, whatever its campaign's status.
    delivery = "breaker_window = 4\nbreaker_threshold = 0.75\nlifetime_hours = 1e-6\n"
    config = relay(tmp_path, db, closed_port(), delivery)
    prepare(db, tmp_path, 4)
    launch(db, load_settings(config, environ={}), KEY, "c")

    sent = campaign_cli(config, "send", "--campaign", "c")

    assert sent.exit_code == 1
    assert "Campaign c paused itself during this run: paused automatically:" in sent.stdout
    assert campaign_status(db, "c") is CampaignStatus.PAUSED
    assert statuses(db, "c") == {"expired": 4}
    shown = campaign_cli(config, "show", "c")
    assert shown.exit_code == 0, shown.output
    assert table_row(shown.stdout, "invitation")[4:] == ["done", "4"]

    # Nothing waits: not "`campaign resume c` sends them", with nothing to send.
    everyone = campaign_cli(config, "send")
    assert everyone.exit_code == 0, everyone.output
    assert "Campaign c is paused: paused automatically:" in everyone.stdout
    assert "failed or expired: 4; `campaign retry c --failed` queues them again" in everyone.stdout
    assert "  no message is left to send; `campaign resume c` lets it finish\n" in everyone.stdout
    assert "sends them" not in everyone.stdout


def test_a_paused_campaign_with_nothing_left_says_what_resume_does(db: Database, tmp_path: Path, smtp: Sink) -> None:
    settings = tuned(base_settings(tmp_path), retry_initial_minutes=60.0)
    emails = prepare(db, tmp_path, 3)
    smtp.handler.plan = lambda rcpt, _attempt: TRY_LATER if rcpt == emails[0] else None
    launch(db, settings, KEY, "c")
    send(db, settings, smtp.servers())
    move(db, "c", CampaignStatus.PAUSED, "waiting for the speaker list")
    assert campaign_progress(db, "c").remedy() == "1 message waits; `campaign resume c` sends it"

    campaign_id = get_campaign(db, "c").campaign.id
    with db.write() as conn:  # its last message expires (its lifetime ended): nothing of it waits
        outbox.set_status_where(conn, campaign_id, ["deferred"], "expired", datetime.now(UTC))
    paused = campaign_progress(db, "c")
    assert (paused.unfinished, paused.held) == (0, False)
    assert paused.remedy() == "no message is left to send; `campaign resume c` lets it finish"

    # A reminder the scheduler has not enqueued yet: it goes out once the campaign is resumed.
    with db.write() as conn:
        values = {"name": "reminder", "kind": "reminder", "template": "invitation", "audience": "all"}
        campaign_store.insert_wave(conn, {**values, "campaign_id": campaign_id, "status": "pending"}, datetime.now(UTC))
    assert campaign_progress(db, "c").hold() == (
        "c is paused (waiting for the speaker list): no message waits; its later waves go out once it is resumed:"
        " `campaign resume c`"
    )


def test_send_of_a_campaign_that_is_not_sending_says_why_and_what_to_run(
    db: Database, tmp_path: Path, smtp: Sink
) -> None:
    config = relay(tmp_path, db, smtp.port)
    settings = load_settings(config, environ={})
    prepare(db, tmp_path, 3)

    draft = campaign_cli(config, "send", "--campaign", "c")
    assert draft.exit_code == 1
    assert "Campaign c is a draft." in draft.stdout
    assert draft.stderr == "Error: c is a draft: nothing is queued until it is launched: `campaign launch c`\n"

    launch(db, settings, KEY, "c")
    move(db, "c", CampaignStatus.PAUSED, "waiting for the speaker list")
    paused = campaign_cli(config, "send", "--campaign", "c")
    assert paused.exit_code == 1
    assert "messages: queued 3" in paused.stdout
    assert "queued: 3 due now" in paused.stdout
    assert paused.stderr == (
        "Error: c is paused (waiting for the speaker list): 3 messages wait; `campaign resume c` sends them\n"
    )

    move(db, "c", CampaignStatus.CANCELLED)
    cancelled = campaign_cli(config, "send", "--campaign", "c")
    assert cancelled.exit_code == 1
    assert "messages: cancelled 3" in cancelled.stdout
    assert "nothing more is sent" in cancelled.stderr

    prepare(db, tmp_path, 3, name="d")
    launch(db, settings, KEY, "d")
    assert campaign_cli(config, "send", "--campaign", "d").exit_code == 0
    sent = campaign_cli(config, "send", "--campaign", "d")
    assert sent.exit_code == 0, sent.output
    assert "Delivery: nothing was sent" in sent.stdout
    assert "Campaign d is sent." in sent.stdout
    assert "nothing is left to send" in sent.stdout
    assert sent.stderr == ""
    assert smtp.handler.received() == Counter(r for r in outbox_rows(db, "d"))


def table_row(output: str, first: str) -> list[str]:
    """The cells of the table row that starts with ``first``."""
    [row] = [line for line in output.splitlines() if line.split()[:1] == [first]]
    return re.split(r"\s{2,}", row.strip())


def test_progress_counts_every_state_per_wave_and_says_when_the_rest_is_due(
    db: Database, tmp_path: Path, smtp: Sink
) -> None:
    settings = tuned(base_settings(tmp_path), retry_initial_minutes=60.0)
    emails = prepare(db, tmp_path, 6)
    smtp.handler.plan = lambda rcpt, _attempt: TRY_LATER if rcpt in emails[:2] else None
    smtp.handler.refuse_rcpt = {emails[2]: "550 5.1.1 no such user"}
    launch(db, settings, KEY, "c")
    first_wave = get_campaign(db, "c").waves[0]
    later = datetime.now(UTC) + timedelta(hours=2)
    with db.write() as conn:  # a second wave, enqueued for two hours from now
        wave_id = campaign_store.insert_wave(
            conn,
            {"campaign_id": first_wave.campaign_id, "name": "reminder", "kind": "reminder", "template": "invitation"},
            datetime.now(UTC),
        )
        materialise.enqueue_wave(conn, wave_id=wave_id, list_id=1, scheduled_at=later, now=datetime.now(UTC))
    send(db, settings, smtp.servers())

    progress = campaign_progress(db, "c")

    assert progress.counts == {"queued": 6, "sent": 3, "deferred": 2, "bounced": 1}
    assert [(w.wave.name, w.counts) for w in progress.waves] == [
        ("invitation", {"sent": 3, "deferred": 2, "bounced": 1}),
        ("reminder", {"queued": 6}),
    ]
    with db.read() as conn:
        retry_at = conn.scalar(select(func.min(messages.c.next_attempt_at)).where(messages.c.status == "deferred"))
    assert progress.deferred == Waiting(2, 0, retry_at)
    assert progress.queued == Waiting(6, 0, later)
    assert progress.unfinished == 8
    assert (progress.held, progress.hold()) == (False, None)

    retry_deferred(db, "c")
    assert campaign_progress(db, "c").deferred.due_now == 2


def test_send_wait_for_a_paused_campaign_says_why_it_waits_then_sends_it_once_resumed(
    db: Database, tmp_path: Path, smtp: Sink
) -> None:
    config = relay(tmp_path, db, smtp.port, "poll_seconds = 0.05\n")
    emails = prepare(db, tmp_path, 3)
    launch(db, load_settings(config, environ={}), KEY, "c")
    move(db, "c", CampaignStatus.PAUSED, "waiting for the speaker list")
    command = [sys.executable, "-m", "campaign", "--config", str(config), "send", "--campaign", "c", "--wait"]
    worker = subprocess.Popen(command, env=cli_environment(), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        assert worker.stderr is not None
        readable, _, _ = wait_readable([worker.stderr], [], [], 20)  # a missing note fails, not hangs
        assert readable, "the worker said nothing about the paused campaign"
        note = worker.stderr.readline().decode()
        assert note == (
            "note: c is paused (waiting for the speaker list): 3 messages wait; "
            "`campaign resume c` sends them; waiting\n"
        )
        move(db, "c", CampaignStatus.SENDING)
        limit = time.monotonic() + 20
        while campaign_status(db, "c") is not CampaignStatus.SENT:
            assert worker.poll() is None, "the worker stopped on its own"
            assert time.monotonic() < limit, "the waiting worker did not send the resumed campaign"
            time.sleep(0.05)
    finally:
        worker.kill()
        worker.wait()
    assert smtp.handler.received() == Counter(emails)
