""" "Unsubscribe from this event only": an address in ``event_unsubscribes`` gets no more mail about that event,
whether its messages were materialised before it left (the claim finds them) or after (materialised
``suppressed``), and still gets every other event's. Delivered for real, over SMTP, on both backends."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, insert, select

from campaign.models import Audience
from campaign.rules.contact_fields import email_key
from campaign.services.campaigns import create_campaign, get_campaign
from campaign.services.lifecycle import launch
from campaign.store import materialise, outbox
from campaign.store.engine import Database
from campaign.store.outbox import EVENT_UNSUBSCRIBED
from campaign.store.tables import event_unsubscribes, list_members
from tests.test_delivery import (
    KEY,
    Sink,
    add_future_event,
    base_settings,
    outbox_rows,
    pipelining_smtp,
    prepare,
    send,
    statuses,
    tuned,
)

# One pipelining server, under the name these tests use.
smtp = pipelining_smtp


def leave_event(db: Database, address: str, campaign: str) -> None:
    """``address`` asks for no more mail about the event of ``campaign`` (as the unsubscribe page records it)."""
    event_id = get_campaign(db, campaign).campaign.event_id
    with db.write() as conn:
        conn.execute(
            insert(event_unsubscribes).values(
                event_id=event_id, email_key=email_key(address), created_at=datetime.now(UTC)
            )
        )


def test_an_address_that_left_an_event_gets_no_more_of_it_and_still_gets_the_others(
    db: Database, tmp_path: Path, smtp: Sink
) -> None:
    settings = tuned(base_settings(tmp_path))
    emails = prepare(db, tmp_path, 6)  # campaign c, about event-c, to the list guests
    add_future_event(db, "event-d")
    create_campaign(db, event_ref="event-d", list_name="guests", name="d")
    early, late = emails[1], emails[4]

    # Left event-c before its campaign was launched: materialised suppressed, with the reason.
    leave_event(db, early.upper(), "c")  # the address's key, whatever its case
    launched = launch(db, settings, KEY, "c")
    assert (launched.queued, launched.suppressed) == (5, 1)
    rows = outbox_rows(db, "c")
    assert (rows[early].status, rows[early].last_error) == ("suppressed", EVENT_UNSUBSCRIBED)
    assert rows[late].status == "queued"

    # Left event-c after its messages were queued: the claim finds it and does not send.
    leave_event(db, late, "c")
    # The other event's campaign, launched after both left event-c, still goes to both.
    assert launch(db, settings, KEY, "d").queued == 6
    assert statuses(db, "d") == {"queued": 6}

    summary = send(db, settings, smtp.servers(), campaign=None)

    assert summary.counts == {"sent": 4 + 6, "suppressed": 1}
    assert smtp.handler.received() == Counter({e: 1 if e in (early, late) else 2 for e in emails})
    rows = outbox_rows(db, "c")
    assert (rows[late].status, rows[late].last_error, rows[late].attempts) == ("suppressed", EVENT_UNSUBSCRIBED, 0)
    assert (rows[late].lease_expires_at, rows[late].sent_at) == (None, None)
    assert statuses(db, "c") == {"sent": 4, "suppressed": 2}
    assert statuses(db, "d") == {"sent": 6}
    for address in (early, late):
        [message] = smtp.handler.messages_for(address)
        assert message["Message-ID"] == f"<{outbox_rows(db, 'd')[address].message_id}>"


# SQLite only: reads SQLite's EXPLAIN QUERY PLAN.
def test_the_claim_the_materialisation_and_the_audience_look_opt_outs_and_registrations_up_in_indexes(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """Per message, the opt-out is one probe of the unique (event, address) index (after primary-key look-ups
    of the message's wave and campaign at claim time), as the suppression is; per list member,
    registered/not-registered is one probe of the unique (event, contact, source) index that reads nothing
    else: no scan of either table, however many rows they hold."""
    prepare(sqlite_db, tmp_path, 4)
    statements: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith(("UPDATE MESSAGES", "INSERT INTO MESSAGES")):
            statements.append((statement, parameters))

    event.listen(sqlite_db.engine, "before_cursor_execute", capture)
    try:
        launch(sqlite_db, tuned(base_settings(tmp_path)), KEY, "c")
        now = datetime.now(UTC)
        with sqlite_db.write() as conn:
            claimed = outbox.claim(conn, owner="t", now=now, lease_until=now + timedelta(minutes=1), limit=4)
    finally:
        event.remove(sqlite_db.engine, "before_cursor_execute", capture)
    assert len(claimed.messages) == 4
    materialised = next(s for s in statements if s[0].startswith("INSERT INTO messages"))
    suppressed_at_claim = statements[-1]  # the suppressed among those claimed
    probe = (
        "SEARCH event_unsubscribes USING COVERING INDEX sqlite_autoindex_event_unsubscribes_1 "
        "(event_id=? AND email_key=?)"
    )
    for (statement, parameters), probes in ((materialised, 1), (suppressed_at_claim, 2)):  # claim: SET and WHERE
        with sqlite_db.read() as conn:
            plan = [str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)]
        # (An INSERT's plan also lists a SCAN of every table whose foreign key names messages: SQLite runs those
        # only to settle deferred foreign key violations, of which there are none.)
        looked_up = [s for s in plan if s.startswith("SEARCH event_unsubscribes")]
        assert len(looked_up) == probes, plan
        assert all(s.startswith(probe) for s in looked_up), plan
    reads = [s for s in plan if s.startswith(("SCAN", "SEARCH")) and "VIRTUAL TABLE" not in s]
    assert all(s.startswith("SEARCH") for s in reads), plan  # the claim's: look-ups only

    campaign_id = get_campaign(sqlite_db, "c").campaign.id
    for audience in (Audience.REGISTERED, Audience.NOT_REGISTERED):
        condition = materialise.audience_condition(audience, campaign_id)
        query = select(list_members.c.contact_id).where(list_members.c.list_id == 1, condition)
        compiled = query.compile(sqlite_db.engine, compile_kwargs={"literal_binds": True})
        with sqlite_db.read() as conn:
            plan = [str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}")]
        assert [s for s in plan if "registrations" in s] == [
            "SEARCH registrations USING COVERING INDEX sqlite_autoindex_registrations_1 (event_id=? AND contact_id=?)"
        ], plan
        assert not any(s.startswith("SCAN") for s in plan), plan
