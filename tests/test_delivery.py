"""The delivery worker against a real SMTP server (aiosmtpd on 127.0.0.1) that injects faults.

Every test launches a real campaign into a real database (SQLite files, and PostgreSQL through ``db``),
delivers it over SMTP with :func:`send_due` (or the ``campaign send`` command in a subprocess) and checks
both sides: what the server accepted, recipient by recipient, and what the outbox recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ical.calendar_stream import IcsCalendarStream
from sqlalchemy import Connection, event, select, text, update
from sqlalchemy.exc import StatementError

from campaign.config import Settings, load_settings
from campaign.exceptions import TransientDeliveryError, ValidationError, WriteLockBusyError
from campaign.mail.capture import _FreePortController
from campaign.mail.smtp import ServerChooser, SmtpConnection, SmtpServer
from campaign.models import CampaignStatus, MessageStatus, SmtpSecurity, SuppressionReason
from campaign.rules.contact_fields import email_key
from campaign.rules.event_fields import parse_event_document
from campaign.services.campaigns import create_campaign, get_campaign
from campaign.services.contact_import import import_contacts
from campaign.services.delivery_request import DeliveryRequest
from campaign.services.dispatch import Dispatcher, send_due
from campaign.services.dispatch_jobs import Job, Result
from campaign.services.dispatch_summary import DispatchSummary, PausedCampaign
from campaign.services.events import add_event
from campaign.services.lifecycle import CheckFailedError, launch, move
from campaign.services.parallel import send_parallel
from campaign.store import materialise, outbox
from campaign.store import suppressions as suppression_store
from campaign.store.async_write import in_write_patiently
from campaign.store.engine import Database
from campaign.store.tables import campaigns, contacts, messages, suppressions, waves
from tests.conftest import DATA
from tests.smtp_sink import LeanSmtp

ROOT = DATA.parent
TEMPLATES = ROOT / "templates" / "email"
KEY = b"k" * 32
ACCEPTED = "250 2.0.0 OK queued"

# ---------------------------------------------------------------------------------------------------------
# A fault-injecting SMTP server
# ---------------------------------------------------------------------------------------------------------

DROP = "drop"
"""Plan action: close the connection after the message content, before the final reply."""
SLOW = "slow"
"""Plan action: say nothing for ``slow_seconds`` (longer than the client's timeout), then refuse with 451."""

Plan = Callable[[str, int], str | None]
"""(recipient, its DATA attempt number from 1) -> None to accept, DROP, SLOW, or an SMTP reply to give."""


def accept_all(_rcpt: str, _attempt: int) -> str | None:
    return None


class FaultySmtp:
    """An aiosmtpd handler. Only a message answered with 250 counts as delivered (as SMTP defines it)."""

    def __init__(self, pipelining: bool) -> None:
        self.pipelining = pipelining
        self.lock = threading.Lock()
        self.plan: Plan = accept_all
        self.refuse_rcpt: dict[str, str] = {}
        self.delay = 0.0
        self.slow_seconds = 1.0
        self.delivered: list[tuple[str, bytes]] = []
        self.eight_bit = True  # offers 8BITMIME
        self.mail_options: list[list[str]] = []  # MAIL's parameters, per message accepted
        self.data_attempts: Counter[str] = Counter()
        self.rcpt_attempts: Counter[str] = Counter()

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if not self.eight_bit:
            responses = [line for line in responses if line[4:] != "8BITMIME"]
        return [responses[0], "250-PIPELINING", *responses[1:]] if self.pipelining else responses

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any) -> str:
        with self.lock:
            self.rcpt_attempts[address.lower()] += 1
        refusal = self.refuse_rcpt.get(address.lower())
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        assert len(envelope.rcpt_tos) == 1, envelope.rcpt_tos  # the worker sends one recipient per transaction
        rcpt = envelope.rcpt_tos[0].lower()
        with self.lock:
            self.data_attempts[rcpt] += 1
            attempt = self.data_attempts[rcpt]
        action = self.plan(rcpt, attempt)
        if self.delay:
            await asyncio.sleep(self.delay)
        if action == DROP:
            server.transport.close()
            return "451 4.4.2 connection dropped"  # written to a closed transport: never seen
        if action == SLOW:
            await asyncio.sleep(self.slow_seconds)
            return "451 4.4.2 too slow"
        if action is not None:
            return action
        with self.lock:
            self.delivered.append((rcpt, bytes(envelope.original_content)))
            self.mail_options.append(list(envelope.mail_options))
        return ACCEPTED

    def received(self) -> Counter[str]:
        """How many messages each recipient received."""
        with self.lock:
            return Counter(rcpt for rcpt, _ in self.delivered)

    def messages_for(self, rcpt: str) -> list[email.message.EmailMessage]:
        with self.lock:
            found = [data for to, data in self.delivered if to == rcpt]
        return [email.message_from_bytes(data, policy=email.policy.default) for data in found]


@dataclass
class Sink:
    """A running faulty SMTP server and the server list pointing at it."""

    handler: FaultySmtp
    port: int

    def servers(self, timeout: float = 5.0) -> list[SmtpServer]:
        return [SmtpServer("127.0.0.1", self.port, SmtpSecurity.NONE, timeout=timeout)]


@dataclass
class Sinks:
    """Starts servers on free ports and stops them all at the end."""

    controllers: list[_FreePortController]
    pipelining: bool

    def start(self, port: int = 0) -> Sink:
        handler = FaultySmtp(self.pipelining)
        controller = _FreePortController(handler, hostname="127.0.0.1", port=port, server_hostname="faulty")
        controller.start()
        self.controllers.append(controller)
        return Sink(handler, int(controller.port))


@pytest.fixture(params=["pipelining", "one-by-one"])
def sinks(request: pytest.FixtureRequest) -> Iterator[Sinks]:
    """Servers that offer PIPELINING (the client then sends MAIL, RCPT and DATA at once) or do not."""
    started = Sinks([], pipelining=request.param == "pipelining")
    try:
        yield started
    finally:
        for controller in started.controllers:
            controller.stop()


@pytest.fixture
def smtp(sinks: Sinks) -> Sink:
    return sinks.start()


@pytest.fixture
def pipelining_smtp() -> Iterator[Sink]:
    """One server that offers PIPELINING: for tests of what is sent and recorded, not of how it is sent."""
    started = Sinks([], pipelining=True)
    try:
        yield started.start()
    finally:
        for controller in started.controllers:
            controller.stop()


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# ---------------------------------------------------------------------------------------------------------
# Campaign set-up and outbox inspection
# ---------------------------------------------------------------------------------------------------------

ZONES = ["Europe/Zurich", "Asia/Manila", "America/Bogota", "", "Asia/Kolkata", "Pacific/Auckland"]


def base_settings(tmp_path: Path) -> Settings:
    config = tmp_path / "config.toml"
    config.write_text(f'[paths]\ntemplates = "{TEMPLATES}"\n')
    return load_settings(config, environ={})


def tuned(settings: Settings, *, concurrency: int = 4, **delivery: Any) -> Settings:
    """Settings with the SMTP concurrency and ``[delivery]`` values given; the breaker is off unless asked."""
    delivery.setdefault("breaker_threshold", 1.01)  # a failure rate never reaches 101%
    delivery.setdefault("poll_seconds", 0.05)
    return replace(
        settings,
        smtp=replace(settings.smtp, concurrency=concurrency),
        delivery=replace(settings.delivery, **delivery),
    )


def minutes(seconds: float) -> float:
    return seconds / 60


def write_contacts(path: Path, count: int, prefix: str = "guest") -> list[str]:
    """A contacts CSV of ``count`` people with names, zones and a job title; returns their addresses."""
    emails = [f"{prefix}{i:03d}@example.org" for i in range(count)]
    lines = ["email,name,timezone,job_title"]
    lines += [f"{e},Guest {i},{ZONES[i % len(ZONES)]},Analyst {i}" for i, e in enumerate(emails)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return emails


def add_future_event(db: Database, slug: str = "summit", starts_in: timedelta = timedelta(days=3)) -> None:
    start = datetime.now(UTC) + starts_in
    doc = {
        "slug": slug,
        "title": "Labour migration summit",
        "description": "A discussion.\n\nIn English.",
        "start": start.isoformat(),
        "end": (start + timedelta(hours=1)).isoformat(),
        "timezone": "Europe/Zurich",
        "registration_url": "https://events.example.org/register",
        "join_url": "https://events.example.org/join",
    }
    add_event(db, parse_event_document(doc, "test event"))


def prepare(
    db: Database,
    tmp_path: Path,
    count: int = 6,
    *,
    name: str = "c",
    starts_in: timedelta = timedelta(days=3),
    template_dir: Path | None = None,
) -> list[str]:
    """Contacts in list ``guests``, a future event and a draft campaign ``name``; returns the addresses."""
    emails = write_contacts(tmp_path / f"{name}-contacts.csv", count)
    import_contacts(db, tmp_path / f"{name}-contacts.csv", "guests")
    add_future_event(db, f"event-{name}", starts_in)
    create_campaign(db, event_ref=f"event-{name}", list_name="guests", name=name, template_dir=template_dir)
    return emails


@dataclass(frozen=True)
class Outboxed:
    """One outbox row, as the tests look at it."""

    id: int
    status: str
    attempts: int
    next_attempt_at: datetime | None
    lease_expires_at: datetime | None
    message_id: str | None
    smtp_reply: str | None
    last_error: str | None
    sent_at: datetime | None
    updated_at: datetime


def outbox_rows(db: Database, campaign: str) -> dict[str, Outboxed]:
    """The campaign's outbox rows by recipient address."""
    stmt = (
        select(contacts.c.email, messages)
        .join(messages, messages.c.contact_id == contacts.c.id)
        .join(waves, waves.c.id == messages.c.wave_id)
        .join(campaigns, campaigns.c.id == waves.c.campaign_id)
        .where(campaigns.c.name == campaign)
    )
    with db.read() as conn:
        rows = conn.execute(stmt).all()
    return {
        row.email: Outboxed(
            row.id,
            row.status,
            row.attempts,
            row.next_attempt_at,
            row.lease_expires_at,
            row.message_id,
            row.smtp_reply,
            row.last_error,
            row.sent_at,
            row.updated_at,
        )
        for row in rows
    }


def statuses(db: Database, campaign: str) -> Counter[str]:
    return Counter(row.status for row in outbox_rows(db, campaign).values())


def campaign_status(db: Database, campaign: str) -> CampaignStatus:
    return get_campaign(db, campaign).campaign.status


def send(db: Database, settings: Settings, servers: list[SmtpServer], campaign: str | None = "c") -> DispatchSummary:
    return asyncio.run(send_due(DeliveryRequest(db, settings, KEY, servers, campaign_ref=campaign)))


def calendar_stamps(message: email.message.EmailMessage) -> list[datetime]:
    """The DTSTAMP of each calendar part of ``message``, read by the strict ``ical`` parser."""
    stamps = []
    for part in message.walk():
        if part.get_content_type() in ("text/calendar", "application/ics"):
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            (vevent,) = IcsCalendarStream.calendar_from_ics(payload.decode("utf-8")).events
            assert isinstance(vevent.dtstamp, datetime)
            stamps.append(vevent.dtstamp)
    return stamps


def sleep_until(instant: datetime) -> None:
    time.sleep(max(0.0, (instant - datetime.now(UTC)).total_seconds()) + 0.02)


def all_contact_emails(db: Database) -> list[str]:
    with db.read() as conn:
        return list(conn.scalars(select(contacts.c.email)))


def suppression_reasons(db: Database) -> dict[str, tuple[str, int | None]]:
    with db.read() as conn:
        rows = conn.execute(select(suppressions.c.email_key, suppressions.c.reason, suppressions.c.message_id))
        return {key: (reason, message_id) for key, reason, message_id in rows}


# ---------------------------------------------------------------------------------------------------------
# Happy path
# ---------------------------------------------------------------------------------------------------------


def test_launch_then_send_delivers_each_contact_exactly_once(db: Database, tmp_path: Path, smtp: Sink) -> None:
    settings = tuned(base_settings(tmp_path))
    import_contacts(db, DATA / "contacts.csv", "guests")  # the 41 sample contacts: many zones and locales
    everyone = set(all_contact_emails(db))
    add_future_event(db, "event-c")
    create_campaign(db, event_ref="event-c", list_name="guests", name="c")
    opted_out = {"maria.santos@dole.example.org", "michael.obrien@example.com"}
    assert opted_out <= everyone
    now = datetime.now(UTC)
    with db.write() as conn:
        for address in opted_out:
            suppression_store.add(conn, email_key(address), SuppressionReason.UNSUBSCRIBED, "link", None, now)

    launched = launch(db, settings, KEY, "c")
    assert (launched.queued, launched.suppressed) == (len(everyone) - 2, 2)
    assert statuses(db, "c") == {"queued": len(everyone) - 2, "suppressed": 2}

    summary = send(db, settings, smtp.servers())

    assert summary.counts == {"sent": len(everyone) - 2}
    assert summary.finished == ["c"]
    assert campaign_status(db, "c") is CampaignStatus.SENT
    received = smtp.handler.received()
    assert set(received) == everyone - opted_out
    assert set(received.values()) == {1}
    rows = outbox_rows(db, "c")
    for address in everyone - opted_out:
        row = rows[address]
        assert row.status == "sent"
        assert row.smtp_reply == ACCEPTED
        assert row.attempts == 1
        assert row.sent_at is not None
        assert now <= row.sent_at <= datetime.now(UTC)
        assert row.lease_expires_at is None
        [message] = smtp.handler.messages_for(address)
        assert message["Message-ID"] == f"<{row.message_id}>"
        assert message["To"].addresses[0].addr_spec == address
        assert message["Subject"]
        assert message.get_body(("plain",)) is not None
        assert message.get_body(("html",)) is not None
    assert len({row.message_id for row in rows.values() if row.status == "sent"}) == len(everyone) - 2
    for address in opted_out:
        assert (rows[address].status, rows[address].last_error, rows[address].sent_at) == (
            "suppressed",
            "unsubscribed",
            None,
        )
        assert smtp.handler.rcpt_attempts[address] == 0

    # Nothing is sent twice: running again finds nothing due.
    again = send(db, settings, smtp.servers())
    assert again.counts == {}
    assert smtp.handler.received() == received
    assert statuses(db, "c") == {"sent": len(everyone) - 2, "suppressed": 2}


def test_the_worker_decides_and_records_by_the_clock_it_is_given(
    db: Database, tmp_path: Path, pipelining_smtp: Sink
) -> None:
    """A clock passed to the worker (the demo's compressed one) is what says which messages are due, when they
    expire, and when they were sent: not the real clock."""
    smtp = pipelining_smtp
    settings = tuned(base_settings(tmp_path))
    emails = prepare(db, tmp_path, 4, starts_in=timedelta(days=3))
    launch(db, settings, KEY, "c")
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    with db.write() as conn:
        conn.execute(update(messages).values(scheduled_at=later))

    def send_at(instant: datetime, campaign: str = "c") -> DispatchSummary:
        return asyncio.run(
            send_due(DeliveryRequest(db, settings, KEY, smtp.servers(), campaign_ref=campaign), clock=lambda: instant)
        )

    # Before their time on the clock given: nothing is due, even when the real clock is past it.
    assert send_at(later - timedelta(seconds=1)).counts == {}
    with db.write() as conn:
        conn.execute(update(messages).values(scheduled_at=datetime.now(UTC) - timedelta(minutes=1)))
    assert send_at(datetime.now(UTC) - timedelta(hours=1)).counts == {}
    assert statuses(db, "c") == {"queued": 4}
    assert smtp.handler.received() == Counter()

    # At their time on the clock given (two days ahead of the real one): sent, and recorded as sent then.
    with db.write() as conn:
        conn.execute(update(messages).values(scheduled_at=later))
    sent_at = later + timedelta(minutes=5)
    assert send_at(sent_at).counts == {"sent": 4}
    assert set(smtp.handler.received()) == set(emails)
    for address, row in outbox_rows(db, "c").items():
        assert (row.status, row.sent_at, row.updated_at) == ("sent", sent_at, sent_at)
        [message] = smtp.handler.messages_for(address)
        assert message["Date"].datetime == sent_at
        # The calendar says it was made then too (DTSTAMP), and the campaign finished then.
        assert calendar_stamps(message) == [sent_at, sent_at]  # the text/calendar part and the attachment
    finished = get_campaign(db, "c").campaign
    assert (finished.status, finished.updated_at) == (CampaignStatus.SENT, sent_at)

    # A clock past the event's start expires the messages still queued, whatever the real clock says.
    write_contacts(tmp_path / "late.csv", 2, prefix="late")
    import_contacts(db, tmp_path / "late.csv", "late")
    add_future_event(db, "event-d", timedelta(days=3))
    create_campaign(db, event_ref="event-d", list_name="late", name="d")
    launch(db, settings, KEY, "d")
    starts_at = get_campaign(db, "d").event.starts_at
    assert send_at(starts_at + timedelta(minutes=1), "d").counts == {"expired": 2}
    assert {row.last_error for row in outbox_rows(db, "d").values()} == {"the event has started"}


def test_enqueue_is_idempotent_and_launching_twice_is_refused(db: Database, tmp_path: Path) -> None:
    settings = tuned(base_settings(tmp_path))
    emails = prepare(db, tmp_path, 5)
    assert launch(db, settings, KEY, "c").queued == 5
    with pytest.raises(ValidationError, match="only a draft can be launched; c is sending"):
        launch(db, settings, KEY, "c")
    assert statuses(db, "c") == {"queued": 5}
    assert set(outbox_rows(db, "c")) == set(emails)

    # Materialising the wave again adds only the members who joined the list since: none, then two.
    details = get_campaign(db, "c")
    now = datetime.now(UTC)

    def enqueue_again() -> int:
        with db.write() as conn:
            return materialise.enqueue_wave(
                conn, wave_id=details.waves[0].id, list_id=details.campaign.list_id, scheduled_at=now, now=now
            )

    assert enqueue_again() == 0
    newcomers = tmp_path / "newcomers.csv"
    newcomers.write_text("email\nguest001@example.org\nlate1@example.org\nlate2@example.org\n")
    import_contacts(db, newcomers, "guests")
    assert enqueue_again() == 2
    assert enqueue_again() == 0
    assert statuses(db, "c") == {"queued": 7}
    assert set(outbox_rows(db, "c")) == {*emails, "late1@example.org", "late2@example.org"}


# SQLite only: reads SQLite's EXPLAIN QUERY PLAN (PostgreSQL's one-statement claim: tests/test_workers.py).
def test_a_claim_reads_a_range_of_the_due_index_however_long_the_queue(sqlite_db: Database, tmp_path: Path) -> None:
    """Each claim statement is planned as a search of ix_messages_due, never a scan or sort of the whole queue
    (which made every batch of a 100,000-message campaign cost as much as reading the queue)."""
    prepare(sqlite_db, tmp_path, 6)
    launch(sqlite_db, tuned(base_settings(tmp_path)), KEY, "c")
    statements: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("UPDATE MESSAGES"):
            statements.append((statement, parameters))

    event.listen(sqlite_db.engine, "before_cursor_execute", capture)
    try:
        now = datetime.now(UTC)
        with sqlite_db.write() as conn:
            claimed = outbox.claim(conn, owner="t", now=now, lease_until=now + timedelta(minutes=1), limit=4)
    finally:
        event.remove(sqlite_db.engine, "before_cursor_execute", capture)
    assert len(claimed.messages) == 4
    assert len(statements) == 3  # the abandoned leases, the due messages, the suppressed among those claimed
    for statement, parameters in statements:
        with sqlite_db.read() as conn:
            plan = [row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)]
        on_messages = [step for step in plan if " messages " in f"{step} "]
        assert on_messages, plan
        assert all("USING INDEX ix_messages_due" in step or "INTEGER PRIMARY KEY" in step for step in on_messages)
        assert not any("TEMP B-TREE" in step for step in plan), plan


# ---------------------------------------------------------------------------------------------------------
# Transient failures: 4xx, dropped connections, timeouts
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reply", ["451 4.3.0 try again later", "421 4.7.0 too busy, closing"])
def test_4xx_defers_with_backoff_then_sends(db: Database, tmp_path: Path, smtp: Sink, reply: str) -> None:
    delay = 0.4
    settings = tuned(
        base_settings(tmp_path), concurrency=3, retry_initial_minutes=minutes(delay), retry_max_minutes=minutes(delay)
    )
    emails = prepare(db, tmp_path, 6)
    launch(db, settings, KEY, "c")
    smtp.handler.plan = lambda _rcpt, attempt: reply if attempt <= 2 else None

    started = datetime.now(UTC)
    first = send(db, settings, smtp.servers())
    assert first.counts == {"deferred": 6}
    assert first.finished == []
    rows = outbox_rows(db, "c")
    code = reply[:3]
    for row in rows.values():
        assert row.status == "deferred"
        assert row.attempts == 1
        assert row.smtp_reply is not None
        assert row.smtp_reply.startswith(code)
        assert row.last_error is not None
        assert code in row.last_error
        assert row.next_attempt_at is not None
        # The backoff counts from the failed attempt; the row is written a moment later (results are written in
        # batches: on a loaded CI machine once 0.47 s later, past this short backoff).
        assert started < row.next_attempt_at <= row.updated_at + timedelta(seconds=delay * 1.1)
    assert smtp.handler.received() == Counter()
    assert campaign_status(db, "c") is CampaignStatus.SENDING

    # Not due yet: a second run before the earliest retry time sends nothing and tries nothing. Its clock is set
    # just before it: on a loaded machine the real one may pass the short backoff before the run claims, and the
    # first run's failures may be spread over more than the backoff (so the time the last was recorded may be
    # past the first one's retry time).
    at_once = min(r.next_attempt_at for r in rows.values() if r.next_attempt_at) - timedelta(milliseconds=1)
    request = DeliveryRequest(db, settings, KEY, smtp.servers(), campaign_ref="c")
    assert asyncio.run(send_due(request, clock=lambda: at_once)).counts == {}
    assert set(smtp.handler.data_attempts.values()) == {1}

    sleep_until(max(r.next_attempt_at for r in rows.values() if r.next_attempt_at))
    assert send(db, settings, smtp.servers()).counts == {"deferred": 6}
    rows = outbox_rows(db, "c")
    assert {r.attempts for r in rows.values()} == {2}

    sleep_until(max(r.next_attempt_at for r in rows.values() if r.next_attempt_at))
    last = send(db, settings, smtp.servers())
    assert last.counts == {"sent": 6}
    assert last.finished == ["c"]
    rows = outbox_rows(db, "c")
    assert {(r.status, r.attempts, r.smtp_reply, r.last_error) for r in rows.values()} == {("sent", 3, ACCEPTED, None)}
    assert smtp.handler.received() == Counter(dict.fromkeys(emails, 1))
    assert smtp.handler.data_attempts == Counter(dict.fromkeys(emails, 3))
    assert campaign_status(db, "c") is CampaignStatus.SENT


def test_a_message_deferred_for_days_is_deferred_again(db: Database, tmp_path: Path, smtp: Sink) -> None:
    # The default policy (5 minutes doubling to 67, for 5 days) retries a message about 110 times before it
    # expires. Here one recipient's mailbox has been full for two days: 45 attempts so far.
    settings = tuned(base_settings(tmp_path), concurrency=3)
    emails = prepare(db, tmp_path, 3)
    launch(db, settings, KEY, "c")
    full = emails[1]
    two_days_ago = datetime.now(UTC) - timedelta(days=2)
    with db.write() as conn:
        conn.execute(
            update(messages)
            .where(messages.c.id == outbox_rows(db, "c")[full].id)
            .values(attempts=45, scheduled_at=two_days_ago)
        )
    smtp.handler.plan = lambda rcpt, _attempt: "452 4.2.2 mailbox full" if rcpt == full else None

    summary = send(db, settings, smtp.servers())

    row = outbox_rows(db, "c")[full]
    assert (row.status, row.attempts) == ("deferred", 46)
    assert row.smtp_reply == "452 4.2.2 mailbox full"
    assert row.next_attempt_at is not None
    assert timedelta(minutes=60) <= row.next_attempt_at - row.updated_at <= timedelta(minutes=67 * 1.1)
    assert summary.counts == {"sent": 2, "deferred": 1}
    assert smtp.handler.received() == Counter({emails[0]: 1, emails[2]: 1})


def run_until(
    db: Database, settings: Settings, servers: list[SmtpServer], done: Callable[[], bool], timeout: float = 15.0
) -> None:
    """Run ``send_due(wait=True)`` until ``done()`` (checked every 50 ms), then stop it; fail after ``timeout``."""

    async def main() -> None:
        task = asyncio.create_task(send_due(DeliveryRequest(db, settings, KEY, servers, campaign_ref="c", wait=True)))
        deadline = time.monotonic() + timeout
        try:
            while not done():
                assert not task.done(), "the worker stopped on its own"
                assert time.monotonic() < deadline, "timed out waiting for the worker"
                await asyncio.sleep(0.05)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    asyncio.run(main())


def test_connection_dropped_before_the_reply_defers_then_sends_without_loss(
    db: Database, tmp_path: Path, smtp: Sink
) -> None:
    settings = tuned(base_settings(tmp_path), concurrency=3, retry_initial_minutes=minutes(0.05))
    emails = prepare(db, tmp_path, 6)
    launch(db, settings, KEY, "c")
    smtp.handler.plan = lambda _rcpt, attempt: DROP if attempt == 1 else None

    first = send(db, settings, smtp.servers())
    assert first.counts == {"deferred": 6}
    rows = outbox_rows(db, "c")
    assert {r.status for r in rows.values()} == {"deferred"}
    assert all(r.last_error and "connection" in r.last_error for r in rows.values()), rows
    assert smtp.handler.received() == Counter()

    # Keep the worker running (wait=True) until the campaign is done: retries come by themselves.
    run_until(db, settings, smtp.servers(), lambda: campaign_status(db, "c") is CampaignStatus.SENT)
    rows = outbox_rows(db, "c")
    assert {(r.status, r.attempts) for r in rows.values()} == {("sent", 2)}
    assert smtp.handler.received() == Counter(dict.fromkeys(emails, 1))


def test_server_slower_than_the_timeout_defers_then_sends(db: Database, tmp_path: Path, smtp: Sink) -> None:
    settings = tuned(base_settings(tmp_path), concurrency=4, retry_initial_minutes=minutes(0.1))
    emails = prepare(db, tmp_path, 4)
    launch(db, settings, KEY, "c")
    smtp.handler.plan = lambda _rcpt, attempt: SLOW if attempt == 1 else None
    # Far longer than the client's 0.3 s: a round that gave up in time is told from one that waited for the
    # server even on a loaded CI machine (the round itself once took 1.9 s there, with a server slow for 2 s).
    smtp.handler.slow_seconds = 5.0

    started = time.monotonic()
    first = send(db, settings, smtp.servers(timeout=0.3))
    assert time.monotonic() - started < 3.5, "the client should give up after its timeout, not wait for the server"
    assert first.counts == {"deferred": 4}
    rows = outbox_rows(db, "c")
    assert all(r.last_error and "timed out" in r.last_error for r in rows.values()), rows
    assert smtp.handler.received() == Counter()

    sleep_until(max(r.next_attempt_at for r in rows.values() if r.next_attempt_at))
    # The retry is answered at once; a roomy timeout keeps a loaded CI machine (four test processes on two cores)
    # from timing out an answer that did come, as the 0.3 s of the first round once did.
    second = send(db, settings, smtp.servers(timeout=10))
    assert second.counts == {"sent": 4}, outbox_rows(db, "c")
    assert smtp.handler.received() == Counter(dict.fromkeys(emails, 1))
    assert {(r.status, r.attempts) for r in outbox_rows(db, "c").values()} == {("sent", 2)}


# ---------------------------------------------------------------------------------------------------------
# Permanent failures
# ---------------------------------------------------------------------------------------------------------


def test_5xx_at_rcpt_bounces_and_suppresses_5xx_at_data_fails(db: Database, tmp_path: Path, smtp: Sink) -> None:
    settings = tuned(base_settings(tmp_path), concurrency=2)
    emails = prepare(db, tmp_path, 8)
    unknown, gone, refused = emails[1], emails[4], emails[6]
    smtp.handler.refuse_rcpt = {unknown: "550 5.1.1 no such user", gone: "551 5.1.6 user has moved"}
    smtp.handler.plan = lambda rcpt, _attempt: "554 5.6.0 message refused" if rcpt == refused else None
    launch(db, settings, KEY, "c")

    summary = send(db, settings, smtp.servers())

    assert summary.counts == {"sent": 5, "bounced": 2, "failed": 1}
    rows = outbox_rows(db, "c")
    assert rows[unknown].status == "bounced"
    assert rows[unknown].smtp_reply == "550 5.1.1 no such user"
    assert rows[gone].status == "bounced"
    assert str(rows[gone].smtp_reply).startswith("551 5.1.6")
    assert rows[refused].status == "failed"
    assert rows[refused].smtp_reply == "554 5.6.0 message refused"
    assert {rows[e].status for e in emails if e not in (unknown, gone, refused)} == {"sent"}
    assert smtp.handler.received() == Counter({e: 1 for e in emails if e not in (unknown, gone, refused)})
    # Bounced addresses are suppressed (with the message that bounced); a refused message is not the address's fault.
    assert suppression_reasons(db) == {
        unknown: ("bounced", rows[unknown].id),
        gone: ("bounced", rows[gone].id),
    }
    assert campaign_status(db, "c") is CampaignStatus.SENT

    # A later campaign to the same list never mails the bounced addresses.
    add_future_event(db, "event-later")
    create_campaign(db, event_ref="event-later", list_name="guests", name="later")
    launched = launch(db, settings, KEY, "later")
    assert (launched.queued, launched.suppressed) == (6, 2)
    later = outbox_rows(db, "later")
    assert {(later[e].status, later[e].last_error) for e in (unknown, gone)} == {("suppressed", "bounced")}
    assert later[refused].status == "queued"
    rcpt_before = Counter(smtp.handler.rcpt_attempts)
    assert send(db, settings, smtp.servers(), "later").counts == {"sent": 5, "failed": 1}
    assert smtp.handler.rcpt_attempts[unknown] == rcpt_before[unknown] == 1
    assert smtp.handler.rcpt_attempts[gone] == rcpt_before[gone] == 1


def test_an_address_suppressed_after_its_wave_was_queued_is_not_sent(
    db: Database, tmp_path: Path, pipelining_smtp: Sink
) -> None:
    """Suppressions are checked when a message is claimed, not only when its wave is materialised: someone who
    unsubscribed (or bounced in another campaign) after the launch gets nothing more. One message a claim: a
    claim that found only a suppressed one does not end the run."""
    settings = tuned(base_settings(tmp_path), concurrency=2, batch_size=1)
    emails = prepare(db, tmp_path, 8)
    launch(db, settings, KEY, "c")
    assert statuses(db, "c") == {"queued": 8}
    left, bounced = emails[2], emails[5]
    now = datetime.now(UTC)
    with db.write() as conn:
        suppression_store.add(conn, email_key(left.upper()), SuppressionReason.UNSUBSCRIBED, "link", None, now)
        suppression_store.add(conn, email_key(bounced), SuppressionReason.BOUNCED, "550 elsewhere", None, now)
    reported: list[str] = []

    summary = asyncio.run(
        send_due(
            DeliveryRequest(db, settings, KEY, pipelining_smtp.servers(), campaign_ref="c", progress=reported.append)
        )
    )

    assert summary.counts == {"sent": 6, "suppressed": 2}
    assert Counter(reported) == {"sent": 6, "suppressed": 2}  # the progress display reaches its total
    assert pipelining_smtp.handler.rcpt_attempts[left] == pipelining_smtp.handler.rcpt_attempts[bounced] == 0
    assert pipelining_smtp.handler.received() == Counter({e: 1 for e in emails if e not in (left, bounced)})
    rows = outbox_rows(db, "c")
    assert (rows[left].status, rows[left].last_error, rows[left].attempts) == ("suppressed", "unsubscribed", 0)
    assert (rows[bounced].status, rows[bounced].last_error, rows[bounced].attempts) == ("suppressed", "bounced", 0)
    assert (rows[left].lease_expires_at, rows[left].sent_at) == (None, None)
    assert campaign_status(db, "c") is CampaignStatus.SENT
    assert send(db, settings, pipelining_smtp.servers()).counts == {}


# ---------------------------------------------------------------------------------------------------------
# Server down: the breaker pauses the campaign; resume delivers everything
# ---------------------------------------------------------------------------------------------------------


def test_a_released_message_goes_back_to_what_it_was_before_its_claim(db: Database, tmp_path: Path) -> None:
    # A claim leases; a worker that stops gives back what it did not begin. A message never attempted is queued
    # again; a retry (deferred, attempted once) is deferred again with its failure, not taken for a fresh one.
    settings = base_settings(tmp_path)
    emails = prepare(db, tmp_path, 2)
    launch(db, settings, KEY, "c")
    now = datetime.now(UTC) + timedelta(seconds=1)
    until = now + timedelta(seconds=60)
    with db.write() as conn:
        first = outbox.claim(conn, owner="w", now=now, lease_until=until, limit=1).messages[0]
        failure = {"b_id": first.id, "status": "deferred", "next_attempt_at": now, "smtp_reply": "451 later"}
        assert outbox.mark_unsent(conn, [{**failure, "last_error": "451 later"}], "w", now) == set()
    with db.write() as conn:
        both = outbox.claim(conn, owner="w", now=now, lease_until=until, limit=2).messages
        assert sorted(m.attempts for m in both) == [1, 2]
        assert outbox.release(conn, [m.id for m in both], "w", now) == 2
    rows = outbox_rows(db, "c")
    retried = next(r for r in rows.values() if r.attempts == 1)
    fresh = next(r for email, r in rows.items() if r is not retried)
    assert (retried.status, retried.last_error, retried.lease_expires_at) == ("deferred", "451 later", None)
    assert (fresh.status, fresh.attempts, fresh.lease_expires_at) == ("queued", 0, None)
    assert set(rows) == set(emails)


def test_server_down_pauses_the_campaign_then_resume_sends_all(db: Database, tmp_path: Path, sinks: Sinks) -> None:
    settings = tuned(
        base_settings(tmp_path),
        concurrency=2,
        breaker_window=4,
        breaker_threshold=0.75,
        retry_initial_minutes=minutes(0.01),
    )
    emails = prepare(db, tmp_path, 12)
    launch(db, settings, KEY, "c")
    down = [SmtpServer("127.0.0.1", closed_port(), SmtpSecurity.NONE, timeout=2)]

    summary = send(db, settings, down)

    details = get_campaign(db, "c").campaign
    assert details.status is CampaignStatus.PAUSED
    assert details.status_reason is not None
    assert "paused automatically" in details.status_reason
    assert "of recent attempts failed" in details.status_reason
    assert "connection failed" in details.status_reason
    assert summary.paused == {details.id: PausedCampaign(details.id, "c", details.status_reason)}
    counts = statuses(db, "c")
    assert set(counts) <= {"deferred", "queued"}, counts
    assert 4 <= counts["deferred"] < 12, "the breaker should stop the run long before the queue is burnt"
    rows = outbox_rows(db, "c")
    assert all(r.attempts == 0 and r.lease_expires_at is None for r in rows.values() if r.status == "queued")
    assert all(r.last_error and "connection failed" in r.last_error for r in rows.values() if r.status == "deferred")

    # While paused nothing is claimed, even once the retries are due.
    time.sleep(0.05)
    assert send(db, settings, down).counts == {}

    smtp = sinks.start()
    resumed = move(db, "c", CampaignStatus.SENDING)
    assert resumed.campaign.status is CampaignStatus.SENDING
    assert resumed.campaign.status_reason is None
    sleep_until(max(r.next_attempt_at for r in rows.values() if r.next_attempt_at))
    after = send(db, settings, smtp.servers())
    assert after.counts == {"sent": 12}
    assert after.finished == ["c"]
    assert smtp.handler.received() == Counter(dict.fromkeys(emails, 1))
    assert campaign_status(db, "c") is CampaignStatus.SENT


def test_merged_summaries_keep_each_campaign_that_paused_itself_once_by_its_id() -> None:
    # Parallel senders each report the campaigns they paused; names say nothing about identity (`a`, `a: b`).
    a, ab = PausedCampaign(1, "a", "b: down"), PausedCampaign(2, "a: b", "down")
    merged = DispatchSummary({"deferred": 4}, {2: ab})
    merged.merge(DispatchSummary({"deferred": 1}, {2: PausedCampaign(2, "a: b", "down again"), 1: a}))
    assert merged.counts == {"deferred": 5}
    assert merged.paused == {2: ab, 1: a}


def test_a_waiting_worker_sends_a_campaign_resumed_after_the_breaker_paused_it(
    db: Database, tmp_path: Path, sinks: Sinks
) -> None:
    # `campaign send --wait` keeps running through the outage: once the relay is back and the campaign is
    # resumed, the same worker must deliver it.
    settings = tuned(
        base_settings(tmp_path),
        concurrency=2,
        breaker_window=4,
        breaker_threshold=0.75,
        retry_initial_minutes=minutes(0.01),
    )
    emails = prepare(db, tmp_path, 8)
    launch(db, settings, KEY, "c")
    port = closed_port()
    servers = [SmtpServer("127.0.0.1", port, SmtpSecurity.NONE, timeout=2)]
    started: list[Sink] = []

    async def main() -> None:
        worker = asyncio.create_task(send_due(DeliveryRequest(db, settings, KEY, servers, campaign_ref="c", wait=True)))
        try:
            limit = time.monotonic() + 5
            while campaign_status(db, "c") is not CampaignStatus.PAUSED:
                assert time.monotonic() < limit, "the breaker did not pause the campaign"
                assert not worker.done(), "the worker stopped on its own"
                await asyncio.sleep(0.02)
            started.append(await asyncio.to_thread(sinks.start, port))
            move(db, "c", CampaignStatus.SENDING)
            limit = time.monotonic() + 5
            while campaign_status(db, "c") is not CampaignStatus.SENT and time.monotonic() < limit:
                assert not worker.done(), "the worker stopped on its own"
                await asyncio.sleep(0.05)
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker

    asyncio.run(main())

    assert started[0].handler.received() == Counter(dict.fromkeys(emails, 1))
    assert statuses(db, "c") == {"sent": 8}
    assert campaign_status(db, "c") is CampaignStatus.SENT


# ---------------------------------------------------------------------------------------------------------
# Expiry
# ---------------------------------------------------------------------------------------------------------


def test_messages_expire_once_the_event_has_started(db: Database, tmp_path: Path, smtp: Sink) -> None:
    retry = 0.05  # seconds, every time (no doubling): the messages are tried until the last moment
    settings = tuned(
        base_settings(tmp_path),
        concurrency=2,
        retry_initial_minutes=minutes(retry),
        retry_max_minutes=minutes(retry),
    )
    emails = prepare(db, tmp_path, 4, starts_in=timedelta(seconds=4))
    launch(db, settings, KEY, "c")
    starts_at = get_campaign(db, "c").event.starts_at
    smtp.handler.plan = lambda _rcpt, _attempt: "451 4.3.0 try again later"

    limit = time.monotonic() + 10
    ended: list[datetime] = []  # when each run returned
    while statuses(db, "c") != {"expired": 4}:
        assert time.monotonic() < limit, statuses(db, "c")
        send(db, settings, smtp.servers())
        ended.append(datetime.now(UTC))
        time.sleep(0.05)  # each run records its deferrals before returning: all are due again after this

    # Every run over before the last retry interval began (claimed) before it too, and tried every message: how
    # many runs fit in the 4 s depends on the machine's load (a fixed 10 failed at 9 on a loaded machine, on
    # either backend; 2.5 s held only 4 runs on a slow one under pytest -n 4), that each of them tried every
    # message does not.
    tried = sum(1 for at in ended if at < starts_at - timedelta(seconds=retry))
    assert tried >= 5, f"only {tried} runs before the start: the test means little"
    rows = outbox_rows(db, "c")
    for row in rows.values():
        assert row.status == "expired"
        assert row.last_error is not None
        assert row.last_error == "the event has started" or row.last_error.startswith("gave up: ")
        assert row.attempts >= tried, "it should have been retried while there was time"
        assert row.sent_at is None
        # It gave up only when the next attempt would have come after the start, not earlier.
        assert row.updated_at >= starts_at - timedelta(seconds=retry * 1.1)
    assert min(smtp.handler.data_attempts[e] for e in emails) >= tried
    assert campaign_status(db, "c") is CampaignStatus.SENT  # nothing left to send

    # An expired message is final: a server that accepts now still gets nothing.
    smtp.handler.plan = accept_all
    assert send(db, settings, smtp.servers()).counts == {}
    assert smtp.handler.received() == Counter()


# ---------------------------------------------------------------------------------------------------------
# Template errors
# ---------------------------------------------------------------------------------------------------------

JOB_TITLE_TEMPLATE = '{% extends "base.html" %}{% block content %}<p>{{ contact.job_title }}</p>{% endblock %}'


def own_templates(tmp_path: Path) -> Path:
    directory = tmp_path / "own-templates"
    directory.mkdir()
    (directory / "invitation.html").write_text(JOB_TITLE_TEMPLATE)
    return directory


def drop_job_title(db: Database, address: str) -> None:
    with db.write() as conn:
        conn.execute(update(contacts).where(contacts.c.email_key == email_key(address)).values(attributes={}))


def test_a_template_error_for_one_contact_refuses_the_launch(db: Database, tmp_path: Path) -> None:
    settings = tuned(base_settings(tmp_path))
    emails = prepare(db, tmp_path, 5, template_dir=own_templates(tmp_path))
    drop_job_title(db, emails[2])

    with pytest.raises(CheckFailedError) as refused:
        launch(db, settings, KEY, "c")

    assert any("job_title" in e and emails[2] in e and "1 contact" in e for e in refused.value.report.errors)
    assert outbox_rows(db, "c") == {}
    assert campaign_status(db, "c") is CampaignStatus.DRAFT


def test_a_message_that_cannot_be_built_fails_alone(db: Database, tmp_path: Path, smtp: Sink) -> None:
    settings = tuned(base_settings(tmp_path), concurrency=2)
    emails = prepare(db, tmp_path, 6, template_dir=own_templates(tmp_path))
    launch(db, settings, KEY, "c")
    broken = emails[3]
    drop_job_title(db, broken)  # the contact changed after the check passed

    summary = send(db, settings, smtp.servers())

    assert summary.counts == {"sent": 5, "failed": 1}
    rows = outbox_rows(db, "c")
    assert rows[broken].status == "failed"
    error = rows[broken].last_error
    assert error is not None
    assert "invitation.html" in error
    assert "job_title" in error
    assert broken in error
    assert rows[broken].smtp_reply is None
    assert smtp.handler.rcpt_attempts[broken] == 0
    assert smtp.handler.received() == Counter({e: 1 for e in emails if e != broken})
    [message] = smtp.handler.messages_for(emails[0])
    html = message.get_body(("html",))
    assert html is not None
    assert "Analyst 0" in html.get_content()
    assert campaign_status(db, "c") is CampaignStatus.SENT


# ---------------------------------------------------------------------------------------------------------
# Crash safety: kill -9 of `campaign send` mid-run, restart after the leases expire
# ---------------------------------------------------------------------------------------------------------


def test_kill_9_mid_run_then_restart_loses_nothing_and_duplicates_at_most_what_was_in_flight(
    db: Database, tmp_path: Path, smtp: Sink, record_property: Callable[[str, object], None]
) -> None:
    concurrency, lease_seconds, total, group = 5, 2, 300, 10
    # In flight: the messages on the wire (one per connection) and, on PostgreSQL, the results handed to the
    # group commit but not committed yet (at most delivery.group_commit_max; SQLite commits each group at once).
    bound = concurrency + (group if db.backend == "postgresql" else 0)
    # Small batches: every claimed message goes out well within its lease even on a loaded machine, so this
    # test measures crash duplicates only (a batch that outlasts its lease has its own test below).
    config = relay_config(
        tmp_path,
        db,
        smtp,
        concurrency=concurrency,
        extra=f"[delivery]\nlease_seconds = {lease_seconds}\nbatch_size = 20\ngroup_commit_max = {group}\n",
    )
    settings = load_settings(config, environ={})
    emails = prepare(db, tmp_path, total)
    launch(db, settings, KEY, "c")
    smtp.handler.delay = 0.02
    env = cli_environment()
    command = [sys.executable, "-m", "campaign", "--config", str(config), "send"]

    worker = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        limit = time.monotonic() + 30
        while len(smtp.handler.delivered) < total // 3:
            assert worker.poll() is None, worker.communicate()
            assert time.monotonic() < limit, "the worker did not get going"
            time.sleep(0.002)
        os.kill(worker.pid, signal.SIGKILL)
    finally:
        worker.kill()
        worker.wait()
    assert worker.returncode == -signal.SIGKILL

    rows = outbox_rows(db, "c")
    leased = [r for r in rows.values() if r.status == "sending"]
    assert leased, "the worker should have died holding leases"
    recorded = {e for e, r in rows.items() if r.status == "sent"}
    assert 0 < len(recorded) < total
    before = smtp.handler.received()
    assert len(before) < total
    assert {e: n for e, n in before.items() if n > 1} == {}, "the live worker sent messages twice"

    leases_end = max(r.lease_expires_at for r in leased if r.lease_expires_at)
    sleep_until(leases_end)
    restart = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert restart.returncode == 0, restart.stderr
    assert "Campaign c is sent." in restart.stdout

    received = smtp.handler.received()
    assert set(received) == set(emails), "every contact received the message"
    resent = {e for e in recorded if received[e] > 1}
    assert resent == set(), "the restart sent again messages recorded as sent"
    duplicates = sum(n - 1 for n in received.values())
    record_property("duplicates", duplicates)
    print(f"kill -9 test on {db.backend}: {duplicates} duplicate(s) (bound: {bound})")
    assert duplicates <= bound
    assert statuses(db, "c") == {"sent": total}
    assert campaign_status(db, "c") is CampaignStatus.SENT


def relay_config(tmp_path: Path, db: Database, smtp: Sink | LeanSmtp, *, concurrency: int, extra: str = "") -> Path:
    """A config.toml that relays to ``smtp`` and uses ``db``."""
    url = db.url.render_as_string(hide_password=False)
    config = tmp_path / "config.toml"
    config.write_text(
        f'[database]\nurl = "{url}"\n'
        f'[paths]\ntemplates = "{TEMPLATES}"\n'
        # Any free port: `campaign serve` runs the web service too, and tests run side by side.
        "[web]\nport = 0\n"
        f'[smtp]\nmode = "relay"\nhost = "127.0.0.1"\nport = {smtp.port}\nsecurity = "none"\n'
        f"concurrency = {concurrency}\ntimeout_seconds = 10\n{extra}"
    )
    return config


def cli_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGN_")}
    env["CAMPAIGN_SECRET_KEY"] = KEY.decode()
    return env


def test_parallel_sender_processes_share_the_queue_and_send_each_message_once(
    db: Database, tmp_path: Path, smtp: Sink
) -> None:
    """``campaign send --processes 3`` (forked: the CLI runs no other thread) delivers everything exactly once,
    and so does :func:`send_parallel` called here (spawned: this process runs the test SMTP server's thread)."""
    config = relay_config(tmp_path, db, smtp, concurrency=3, extra="[delivery]\nbatch_size = 10\n")
    settings = load_settings(config, environ={})
    emails = prepare(db, tmp_path, 120)
    launch(db, settings, KEY, "c")
    command = [sys.executable, "-m", "campaign", "--config", str(config), "send", "--processes", "3"]
    done = subprocess.run(command, env=cli_environment(), capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "Campaign c is sent." in done.stdout
    assert smtp.handler.received() == Counter(emails)
    assert statuses(db, "c") == {"sent": 120}

    prepare(db, tmp_path, 60, name="d")  # the same list: 120 contacts
    launch(db, settings, KEY, "d")
    summary = send_parallel(DeliveryRequest(db, settings, KEY, smtp.servers(), campaign_ref="d"), processes=2)
    assert summary.counts == {"sent": 120}
    assert summary.finished == ["d"]
    assert smtp.handler.received() == Counter(emails * 2)


@pytest.mark.parametrize(
    ("server_delay", "rate_per_second"),
    [pytest.param(0.08, 0.0, id="slow-relay"), pytest.param(0.0, 20.0, id="rate-limited")],
)
def test_a_batch_that_outlasts_its_lease_is_not_sent_twice(
    db: Database, tmp_path: Path, smtp: Sink, server_delay: float, rate_per_second: float
) -> None:
    # One live worker whose 50 messages take 1.5 to 2 s to go out (a slow relay: 80 ms a message on each of two
    # connections, 50 ms was too close to the lease on a fast run; or the configured rate
    # limit), longer than the 1 s lease. It holds every message it claimed until it records the result:
    # none may go out twice.
    settings = tuned(base_settings(tmp_path), concurrency=2, lease_seconds=1, rate_per_second=rate_per_second)
    emails = prepare(db, tmp_path, 50)
    launch(db, settings, KEY, "c")
    smtp.handler.delay = server_delay

    started = time.monotonic()
    summary = send(db, settings, smtp.servers())
    assert time.monotonic() - started > 1.2, "the run must outlast the lease for this test to mean anything"
    # A message given back for a late heartbeat (below) may still be queued when the run finds nothing due at
    # that instant: the next run sends it, as `campaign serve` would.
    for _ in range(3):
        if statuses(db, "c") == {"sent": 50}:
            break
        summary.merge(send(db, settings, smtp.servers()))

    received = smtp.handler.received()
    assert set(received) == set(emails)
    assert {e: n for e, n in received.items() if n > 1} == {}
    # On a loaded machine a heartbeat can come late for a 1 s lease: the sender then gives a message back
    # (counted as "queued") rather than risk sending one it may no longer own, and sends it once reclaimed.
    # Whatever was given back, every message went out once and nothing else happened to any.
    assert {status: n for status, n in summary.counts.items() if status != "queued"} == {"sent": 50}
    assert statuses(db, "c") == {"sent": 50}


def test_a_claim_that_finds_its_own_lapsed_messages_again_sends_each_once(
    db: Database, tmp_path: Path, smtp: Sink
) -> None:
    """The leases of messages still waiting in this worker's queue lapse (here the worker's clock jumps past
    them once the first message is on the wire; on a loaded machine, a late heartbeat): its next claim finds
    them due again, under its own name. Each stays one job, sent once (a CI run once saw a message twice)."""
    settings = tuned(base_settings(tmp_path), concurrency=1, lease_seconds=60)
    emails = prepare(db, tmp_path, 12)
    launch(db, settings, KEY, "c")
    jumped = [timedelta(0)]

    def jump_on_first_message(_rcpt: str, _attempt: int) -> str | None:
        jumped[0] = timedelta(minutes=2)  # past every lease taken so far; no heartbeat comes in 5 s
        return None

    smtp.handler.plan = jump_on_first_message
    smtp.handler.delay = 0.05  # the claim loop claims again while the first messages wait in the queue
    request = DeliveryRequest(db, settings, KEY, smtp.servers(), campaign_ref="c")
    summary = asyncio.run(send_due(request, clock=lambda: datetime.now(UTC) + jumped[0]))

    assert smtp.handler.received() == Counter(emails)
    assert summary.counts == {"sent": 12}
    assert summary.claimed == 12
    assert statuses(db, "c") == {"sent": 12}


def jumping_dispatcher(db: Database, tmp_path: Path, smtp: Sink) -> tuple[Dispatcher, list[timedelta]]:
    """A dispatcher of 4 launched messages (one sender, 60 s leases) whose clock moves on by what the list holds."""
    settings = tuned(base_settings(tmp_path), concurrency=1, lease_seconds=60)
    prepare(db, tmp_path, 4)
    launch(db, settings, KEY, "c")
    jumped = [timedelta(0)]
    request = DeliveryRequest(db, settings, KEY, smtp.servers(), campaign_ref="c")
    return Dispatcher(request, clock=lambda: datetime.now(UTC) + jumped[0]), jumped


def test_a_message_found_again_in_hand_then_given_back_is_queued_with_no_attempt_counted(
    db: Database, tmp_path: Path, smtp: Sink
) -> None:
    dispatcher, jumped = jumping_dispatcher(db, tmp_path, smtp)

    async def scenario() -> None:
        jobs = await dispatcher._claim()
        jumped[0] = timedelta(minutes=2)  # their leases lapse while they wait
        others = await dispatcher._claim()  # the other messages; those found again in hand make no second job
        assert {job.message.id for job in jobs}.isdisjoint(job.message.id for job in others)
        dispatcher.results.release([*jobs, *others])  # given back unsent (their leases no longer surely held)
        await dispatcher.results.flush()

    asyncio.run(scenario())
    assert {(row.status, row.attempts) for row in outbox_rows(db, "c").values()} == {("queued", 0)}


@pytest.mark.parametrize("failing", ["a statement", "the commit"])
def test_a_failed_commit_leaves_its_messages_in_hand_so_no_claim_sends_them_again(
    db: Database, tmp_path: Path, smtp: Sink, failing: str
) -> None:
    """A sent message whose result could not be committed is still ``sending`` under the run's lease: a claim
    the run makes before its stop lands (its lease lapsed meanwhile) must not make it a job again."""
    dispatcher, jumped = jumping_dispatcher(db, tmp_path, smtp)
    write = dispatcher.results.write

    def write_then_fail(conn: Connection, batch: list[Result]) -> set[int]:
        lost = write(conn, batch)
        if failing == "the commit":
            raise RuntimeError("COMMIT failed")  # as the commit at the end of the transaction failing
        conn.execute(text("SELECT no_such_column FROM messages"))  # a statement after the results, failing
        return lost

    dispatcher.results.write = write_then_fail

    async def scenario() -> tuple[Job, list[Job]]:
        first, *_ = await dispatcher._claim()
        dispatcher.results._pending.append(Result(first, MessageStatus.SENT, message_id="<m@x>", reply="250 ok"))
        with pytest.raises((RuntimeError, StatementError)):
            await dispatcher.results.flush()
        assert dispatcher.results.broken is not None
        jumped[0] = timedelta(minutes=2)
        return first, await dispatcher._claim()

    first, again = asyncio.run(scenario())
    assert first.message.id not in {job.message.id for job in again}
    assert outbox_rows(db, "c")[first.contact.email].status == "sending"


# ---------------------------------------------------------------------------------------------------------
# Review findings: international domains, a refused session, cancelling mid-send, a failed commit
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("eight_bit", [True, False], ids=["8bitmime", "7bit-only"])
def test_utf8_bodies_go_unencoded_to_a_server_with_8bitmime_and_as_base64_to_one_without(
    db: Database, tmp_path: Path, smtp: Sink, eight_bit: bool
) -> None:
    smtp.handler.eight_bit = eight_bit
    settings = tuned(base_settings(tmp_path))
    csv_path = tmp_path / "names.csv"
    csv_path.write_text("email,name,timezone\nzoe@example.org,Zoë Ñúñez,Asia/Tokyo\n", encoding="utf-8")
    import_contacts(db, csv_path, "guests")
    add_future_event(db, "event-c")
    create_campaign(db, event_ref="event-c", list_name="guests", name="c")
    launch(db, settings, KEY, "c")
    assert send(db, settings, smtp.servers()).counts == {"sent": 1}
    (message,) = smtp.handler.messages_for("zoe@example.org")
    assert smtp.handler.mail_options == [["BODY=8BITMIME"] if eight_bit else []]
    encodings = {part.get_content_type(): part["Content-Transfer-Encoding"] for part in message.walk()}
    assert encodings["text/html"] == encodings["text/plain"] == ("8bit" if eight_bit else "base64")
    assert encodings["text/calendar"] == "7bit"  # ASCII: no encoding needed either way
    html = message.get_body(("html",))
    assert html is not None
    assert "Zoë Ñúñez" in html.get_content()


def test_an_8bit_message_is_deferred_not_sent_when_the_session_now_lacks_8bitmime(smtp: Sink) -> None:
    """A message built for a server with 8BITMIME never goes out as it is to one without (it would be
    mangled): the reconnected session refuses it, and the worker builds it again at the next attempt."""

    async def scenario() -> None:
        connection = SmtpConnection(ServerChooser(smtp.servers()))
        try:
            assert await connection.accepts_8bit()
            await connection.close()
            smtp.handler.eight_bit = False
            with pytest.raises(TransientDeliveryError, match="8BITMIME"):
                await connection.send(
                    "a@example.org", "b@example.org", b"Subject: x\r\n\r\n\xc3\xa9\r\n", eight_bit=True
                )
            assert not await connection.accepts_8bit()
            await connection.send("a@example.org", "b@example.org", b"Subject: x\r\n\r\ne\r\n")
        finally:
            await connection.close()

    asyncio.run(scenario())
    assert smtp.handler.received() == Counter({"b@example.org": 1})
    assert smtp.handler.mail_options == [[]]


def test_an_international_domain_goes_out_in_idna_and_a_unicode_local_part_is_refused_at_import(
    db: Database, tmp_path: Path, smtp: Sink
) -> None:
    # A Unicode local part needs SMTPUTF8, which delivery does not speak: it was imported and then failed at send
    # (and made its previews and the launch a 500 in the pages); now its row is refused, with the reason.
    settings = tuned(base_settings(tmp_path))
    csv_path = tmp_path / "idn.csv"
    csv_path.write_text("email,name\nana@bücher.example.org,Ana\nbob@example.org,Bob\nmüller@example.org,M\n")
    report = import_contacts(db, csv_path, "guests")
    assert [(r.line, r.email) for r in report.rejections] == [(4, "müller@example.org")]
    assert "characters before the @-sign are not supported" in report.rejections[0].reason
    add_future_event(db, "event-c")
    create_campaign(db, event_ref="event-c", list_name="guests", name="c")
    launch(db, settings, KEY, "c")
    summary = send(db, settings, smtp.servers())
    assert smtp.handler.received() == Counter({"ana@xn--bcher-kva.example.org": 1, "bob@example.org": 1})
    assert summary.counts == {"sent": 2}


def test_a_server_refusing_the_session_defers_and_pauses_instead_of_failing(db: Database, tmp_path: Path) -> None:
    """A 554 greeting ("client host blocked") is the server's doing: no message may fail for it."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(50)
    port = listener.getsockname()[1]
    stop = threading.Event()

    def refuse() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.sendall(b"554 5.7.1 client host blocked\r\n")
            conn.close()

    thread = threading.Thread(target=refuse, daemon=True)
    thread.start()
    try:
        settings = tuned(base_settings(tmp_path), breaker_threshold=0.5, breaker_window=10)
        prepare(db, tmp_path, 12)
        launch(db, settings, KEY, "c")
        summary = send(db, settings, [SmtpServer("127.0.0.1", port, SmtpSecurity.NONE, timeout=2)])
    finally:
        stop.set()
        thread.join()
        listener.close()
    assert "failed" not in summary.counts
    assert campaign_status(db, "c") is CampaignStatus.PAUSED
    assert set(statuses(db, "c")) <= {"deferred", "queued"}


def test_cancelling_mid_send_leaves_nothing_queued(db: Database, tmp_path: Path, smtp: Sink) -> None:
    settings = tuned(base_settings(tmp_path), concurrency=2)
    prepare(db, tmp_path, 30)
    launch(db, settings, KEY, "c")
    smtp.handler.delay = 0.05

    async def run_and_cancel() -> DispatchSummary:
        task = asyncio.create_task(send_due(DeliveryRequest(db, settings, KEY, smtp.servers(), campaign_ref="c")))
        await asyncio.sleep(0.4)
        move(db, "c", CampaignStatus.CANCELLED)
        return await task

    asyncio.run(run_and_cancel())
    counts = statuses(db, "c")
    assert set(counts) <= {"sent", "cancelled"}, counts
    assert counts["cancelled"] > 0
    assert sum(smtp.handler.received().values()) == counts["sent"]


# SQLite only: about SQLite's file-wide write lock (PostgreSQL writers do not wait for one another so).
def test_a_worker_waiting_for_the_write_lock_keeps_its_event_loop_running(
    sqlite_db: Database, tmp_path: Path, smtp: Sink
) -> None:
    """Another process holding SQLite's write lock for a second delays the worker's commits, not its loop:
    SQLite's own wait would block the loop (and every connection) for the whole second."""
    settings = tuned(base_settings(tmp_path), concurrency=4)
    emails = prepare(sqlite_db, tmp_path, 40)
    launch(sqlite_db, settings, KEY, "c")
    other = Database(sqlite_db.url.render_as_string(hide_password=False))
    gaps: list[float] = []

    async def scenario() -> DispatchSummary:
        worker = asyncio.create_task(
            send_due(DeliveryRequest(sqlite_db, settings, KEY, smtp.servers(), campaign_ref="c"))
        )
        # Once it sends: its start (templates compiled, CSS inlined: most of a second on a loaded CI machine,
        # spent in this loop) is not what is measured. Its next claims and commits then need the lock.
        deadline = time.monotonic() + 10
        while not smtp.handler.received() and time.monotonic() < deadline:
            await asyncio.sleep(0.002)
        with other.write():  # holds the lock while this loop goes on ticking
            last = time.monotonic()
            until = last + 1.0
            while (now := time.monotonic()) < until:
                gaps.append(now - last)
                last = now
                await asyncio.sleep(0.01)
        return await worker

    try:
        summary = asyncio.run(scenario())
    finally:
        other.dispose()
    assert summary.counts == {"sent": 40}
    assert smtp.handler.received() == Counter(emails)
    assert len(gaps) > 20
    assert max(gaps) < 0.25, f"the loop stalled for {max(gaps):.2f} s"


# SQLite only: SQLite's one write lock, held by another process.
def test_a_worker_outwaits_a_write_lock_held_longer_than_the_busy_timeout(
    sqlite_db: Database, tmp_path: Path, smtp: Sink, caplog: pytest.LogCaptureFixture
) -> None:
    """Another process holding the lock for longer than database.busy_timeout_ms (a large import, a wave of a
    million fired) delays the worker; it used to stop it, and with it campaign serve and its web service."""
    settings = tuned(base_settings(tmp_path), concurrency=4)
    emails = prepare(sqlite_db, tmp_path, 40)
    launch(sqlite_db, settings, KEY, "c")
    url = sqlite_db.url.render_as_string(hide_password=False)
    impatient, other = Database(url, busy_timeout_ms=100), Database(url)

    async def scenario() -> DispatchSummary:
        worker = asyncio.create_task(
            send_due(DeliveryRequest(impatient, settings, KEY, smtp.servers(), campaign_ref="c"))
        )
        deadline = time.monotonic() + 10
        while not smtp.handler.received() and time.monotonic() < deadline:
            await asyncio.sleep(0.002)
        with other.write():  # ten busy timeouts and more
            await asyncio.sleep(1.2)
            assert not worker.done()
        return await worker

    try:
        with caplog.at_level(logging.WARNING, logger="campaign.store.async_write"):
            summary = asyncio.run(scenario())
    finally:
        impatient.dispose()
        other.dispose()
    assert summary.counts == {"sent": 40}
    assert smtp.handler.received() == Counter(emails)
    assert "held the database's write lock for" in caplog.text


# SQLite only: SQLite's one write lock, held by another process.
def test_a_worker_waiting_out_a_lock_still_stops_when_told(sqlite_db: Database, tmp_path: Path, smtp: Sink) -> None:
    """Waiting for the lock as long as it is held must not make a worker deaf to its stop: a review found it
    running seconds after SIGTERM, and after the second (the supervisor then kills it)."""
    settings = tuned(base_settings(tmp_path), concurrency=2)
    prepare(sqlite_db, tmp_path, 40)
    launch(sqlite_db, settings, KEY, "c")
    url = sqlite_db.url.render_as_string(hide_password=False)
    impatient, other = Database(url, busy_timeout_ms=100), Database(url)
    stopped_in: list[float] = []

    async def scenario() -> DispatchSummary:
        stop, abort = asyncio.Event(), asyncio.Event()
        request = DeliveryRequest(impatient, settings, KEY, smtp.servers(), campaign_ref="c")
        worker = asyncio.create_task(send_due(request, stop=stop, abort=abort))
        deadline = time.monotonic() + 10
        while not smtp.handler.received() and time.monotonic() < deadline:
            await asyncio.sleep(0.002)
        with other.write():  # held from now on: the worker's next claim and commit wait for it
            await asyncio.sleep(0.5)
            assert not worker.done()
            # The first SIGTERM: no more claims, what was sent is still recorded (it waits for the lock) ...
            stop.set()
            await asyncio.sleep(0.5)
            assert not worker.done()
            # ... the second: it stops at once.
            abort.set()
            began = time.monotonic()
            with contextlib.suppress(WriteLockBusyError):  # what was sent may stay unrecorded: its lease lapses
                await asyncio.wait_for(asyncio.shield(worker), 3)
            stopped_in.append(time.monotonic() - began)
        return await worker if not worker.exception() else DispatchSummary()

    try:
        asyncio.run(scenario())
    finally:
        impatient.dispose()
        other.dispose()
    assert stopped_in[0] < 1.5


def test_a_patient_write_lets_the_event_loop_run_even_with_no_busy_timeout(sqlite_db: Database) -> None:
    # With database.busy_timeout_ms = 0 an attempt fails at once: the wait spun without yielding, deaf to
    # cancellation, and logged ~11,600 warnings a second (a review).
    url = sqlite_db.url.render_as_string(hide_password=False)
    impatient, other = Database(url, busy_timeout_ms=0), Database(url)
    ticks = 0

    async def scenario() -> None:
        nonlocal ticks
        given_up = asyncio.Event()
        waiting = asyncio.create_task(in_write_patiently(impatient, lambda conn: None, "test", given_up.is_set))
        for _ in range(30):
            await asyncio.sleep(0.01)
            ticks += 1
        given_up.set()
        with pytest.raises(WriteLockBusyError):
            await asyncio.wait_for(waiting, 1)

    try:
        with other.write():
            asyncio.run(scenario())
    finally:
        impatient.dispose()
        other.dispose()
    assert ticks == 30


def test_a_failed_commit_stops_the_run_instead_of_hanging(db: Database, tmp_path: Path, smtp: Sink) -> None:
    settings = tuned(base_settings(tmp_path), lease_seconds=3)
    prepare(db, tmp_path, 12)
    launch(db, settings, KEY, "c")
    dispatcher = Dispatcher(DeliveryRequest(db, settings, KEY, smtp.servers(), campaign_ref="c"))
    original = dispatcher._write
    calls = 0

    def fail_once(conn: Any, batch: Any) -> set[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database went away")
        return original(conn, batch)

    dispatcher._write = fail_once  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="database went away"):
        asyncio.run(asyncio.wait_for(dispatcher.run(), timeout=20))
