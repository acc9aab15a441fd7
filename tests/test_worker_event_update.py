"""A running `campaign worker` renders each claim with the event as it now stands: an event updated while it sends
(SEQUENCE+1, a new time) reaches every message it claims afterwards, without a restart.

Real parts: a real PostgreSQL database (skipped only when no server is reachable, never with
``CAMPAIGN_TEST_REQUIRE_POSTGRES=1``), a real ``campaign worker`` process and a real aiosmtpd server on port 0.
"""

from __future__ import annotations

import email
import email.message
import email.policy
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ical.calendar_stream import IcsCalendarStream

from campaign.services.events import get_event, update_event
from campaign.services.lifecycle import launch
from campaign.store.engine import Database
from tests.test_delivery import KEY, Sink, pipelining_smtp, prepare  # noqa: F401 (pipelining_smtp: a fixture)
from tests.test_event_changes import calendar_parts
from tests.test_scheduling import event_values
from tests.test_workers import pg_db, processes, scale_config, settings_for, wait_for  # noqa: F401 (pg_db: a fixture)


def sequence_and_start(smtp: Sink, index: int) -> tuple[int, datetime]:
    """The SEQUENCE and DTSTART (UTC, to the second as iCalendar has it) of the calendar in the ``index``-th message
    the server accepted."""
    _, data = smtp.handler.delivered[index]
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    (ics,) = {ics for _, ics in calendar_parts(message)}
    (vevent,) = IcsCalendarStream.calendar_from_ics(ics.decode("utf-8")).events
    assert isinstance(vevent.dtstart, datetime)
    return vevent.sequence or 0, vevent.dtstart.astimezone(UTC)


def test_a_running_worker_sends_the_updated_event_in_what_it_claims_after_the_update(
    pg_db: Database,  # noqa: F811 (the fixture)
    tmp_path: Path,
    pipelining_smtp: Sink,  # noqa: F811 (the fixture)
) -> None:
    # 60: under CI load the update once came 6 messages after the quarter was sent, leaving 14 of 40 to check.
    smtp, total = pipelining_smtp, 60
    # Slow enough (10 a second, small claims) that the update falls in the middle of the run.
    config = scale_config(tmp_path, pg_db, smtp, concurrency=2, lease=10, rate_per_second=10.0, batch_size=4)
    settings = settings_for(config)
    prepare(pg_db, tmp_path, total)
    before = get_event(pg_db, "event-c")
    launch(pg_db, settings, KEY, "c")
    with processes() as start:
        worker = start(config, "worker", "--name", "worker-0")
        wait_for(lambda: len(smtp.handler.delivered) >= 10, 30, "the first 10 sent")
        moved = before.starts_at + timedelta(days=2)
        update_event(pg_db, settings, "event-c", event_values(moved, slug="event-c", title=before.title))
        updated_at = len(smtp.handler.delivered)
        wait_for(lambda: len(smtp.handler.delivered) >= total, 30, "the invitations sent")
        time.sleep(0.3)  # anything else it would send (an update notice to those invited already) arrives too
        worker.send_signal(signal.SIGTERM)
        _out, err = worker.communicate(timeout=30)
        assert worker.returncode == 0, err

    old_start = before.starts_at.astimezone(UTC).replace(microsecond=0)
    new_start = moved.astimezone(UTC).replace(microsecond=0)
    assert sequence_and_start(smtp, 0) == (before.sequence, old_start)
    # What was claimed before the update (at most a claim and the queue: 4 + 4, plus the two senders' own) may go
    # out as it was rendered; everything after carries the new SEQUENCE and time.
    in_hand = 4 + 4 + 2
    later = range(updated_at + in_hand, len(smtp.handler.delivered))
    assert len(later) >= 15, "the update came too late for this test to mean anything"
    for index in later:
        assert sequence_and_start(smtp, index) == (before.sequence + 1, new_start), index
