"""The PostgreSQL claim and result update: what they return, and plans that hold whatever the statistics say.

Right after a launch the statistics of ``messages`` say every row is ``queued`` (autovacuum's ANALYZE saw that):
the claim must still read its due ranges through ``ix_messages_due`` (a scan of the table from its start skips
every message already sent, more with each one), and the result update must find its rows by primary key. Real
PostgreSQL (required with ``CAMPAIGN_TEST_REQUIRE_POSTGRES=1``); the plans are PostgreSQL's own EXPLAIN of the
statements as the worker sends them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, insert, select

from campaign.services.database import init_database
from campaign.services.lifecycle import launch
from campaign.store import contacts as contact_store
from campaign.store import outbox
from campaign.store.engine import Database
from campaign.store.tables import campaigns, contacts, event_unsubscribes, messages, waves
from tests.conftest import _reset_pg_schema
from tests.test_delivery import KEY, base_settings, prepare

QUEUED = 3000


@pytest.fixture
def launched(pg_server: str, tmp_path: Path) -> Iterator[Database]:
    """A PostgreSQL database with ``QUEUED`` messages queued and statistics taken as they are (all queued)."""
    _reset_pg_schema(pg_server)
    db = Database(pg_server.replace("postgresql://", "postgresql+psycopg://", 1))
    init_database(db)
    try:
        prepare(db, tmp_path, QUEUED)
        launch(db, base_settings(tmp_path), KEY, "c")
        with db.write() as conn:
            conn.exec_driver_sql("ANALYZE messages")
            conn.exec_driver_sql("ANALYZE contacts")
        yield db
    finally:
        db.dispose()


def explained(db: Database, run: Any) -> list[str]:
    """The plan of each statement ``run`` sends (given its connection), as PostgreSQL's EXPLAIN shows it, and
    run: EXPLAIN in the same transaction, just before the statement itself."""
    plans: list[str] = []

    def explain(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE MESSAGES"):
            cursor.execute("EXPLAIN " + statement, parameters)
            plans.append("\n".join(row[0] for row in cursor.fetchall()))

    event.listen(db.engine, "before_cursor_execute", explain)
    try:
        with db.write() as conn:
            run(conn)
    finally:
        event.remove(db.engine, "before_cursor_execute", explain)
    return plans


def test_on_postgresql_the_claim_returns_each_message_with_its_contact(launched: Database) -> None:
    now = datetime.now(UTC)
    with launched.write() as conn:
        claim = outbox.claim(conn, owner="w", now=now, lease_until=now + timedelta(seconds=30), limit=50)
        assert len(claim.messages) == 50
        assert claim.contacts is not None
        ids = sorted({m.contact_id for m in claim.messages})
        assert claim.contacts == contact_store.by_ids(conn, ids)


def test_on_postgresql_claim_and_result_plans_hold_with_statistics_of_a_fresh_launch(launched: Database) -> None:
    now = datetime.now(UTC)
    # Half the queue sent first: a scan of the table from its start would now skip 1,500 sent rows a claim.
    with launched.write() as conn:
        first = outbox.claim(conn, owner="w", now=now, lease_until=now + timedelta(seconds=30), limit=QUEUED // 2)
    with launched.write() as conn:
        results = [(m.id, f"m{m.id}@test", "250 ok") for m in first.messages]
        assert outbox.mark_sent(conn, results, "w", now) == set()

    claims: list[outbox.Claim] = []

    def claim(conn: Any) -> None:
        claims.append(outbox.claim(conn, owner="w", now=now, lease_until=now + timedelta(seconds=30), limit=200))

    (claim_plan,) = explained(launched, claim)
    assert "Seq Scan on messages" not in claim_plan, claim_plan
    assert "ix_messages_due" in claim_plan, claim_plan
    assert len(claims[0].messages) == 200

    sent = [(m.id, f"m{m.id}@test", "250 ok") for m in claims[0].messages]
    lost: list[set[int]] = []
    (record_plan,) = explained(launched, lambda conn: lost.append(outbox.mark_sent(conn, sent, "w", now)))
    assert lost == [set()]
    assert "Seq Scan on messages" not in record_plan, record_plan
    assert "pk_messages" in record_plan, record_plan


def analyzed_claim(db: Database, limit: int) -> tuple[str, outbox.Claim]:
    """A claim of up to ``limit`` messages, and its plan as ``EXPLAIN ANALYZE`` ran it (in a savepoint rolled
    back just before the claim itself runs)."""
    plans: list[str] = []

    def explain(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE MESSAGES") and not plans:
            cursor.execute("SAVEPOINT analyzed")
            cursor.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + statement, parameters)
            plans.append("\n".join(row[0] for row in cursor.fetchall()))
            cursor.execute("ROLLBACK TO SAVEPOINT analyzed")

    now = datetime.now(UTC)
    event.listen(db.engine, "before_cursor_execute", explain)
    try:
        with db.write() as conn:
            claim = outbox.claim(conn, owner="w", now=now, lease_until=now + timedelta(seconds=30), limit=limit)
    finally:
        event.remove(db.engine, "before_cursor_execute", explain)
    return plans[0], claim


def probe_of_an_address(plan: str) -> str:
    """The line of ``plan`` that probes the opt-outs' index for one address (not the statement's check of the
    event as a whole, the same index by ``event_id`` alone)."""
    lines = plan.splitlines()
    [line] = [
        line
        for line, following in pairwise(lines)
        if "uq_event_unsubscribes_event_id_email_key" in line and "email_key =" in following
    ]
    return line


def test_on_postgresql_the_claim_probes_opt_outs_only_when_a_sending_campaign_s_event_has_one(
    launched: Database,
) -> None:
    """No address opted out of the sending campaign's event: the claim's opt-out probe never runs (it cost
    about 1.5 µs of server CPU a message). One did: it runs for every claimed message, and that one's message
    is suppressed, not sent."""
    plan, claim = analyzed_claim(launched, 100)
    assert len(claim.messages) == 100
    line = probe_of_an_address(plan)
    assert "never executed" in line, plan

    with launched.write() as conn:
        event_id, key, message_id = conn.execute(
            select(campaigns.c.event_id, contacts.c.email_key, messages.c.id)
            .join(waves, waves.c.campaign_id == campaigns.c.id)
            .join(messages, messages.c.wave_id == waves.c.id)
            .join(contacts, contacts.c.id == messages.c.contact_id)
            .where(messages.c.status == "queued")
            .limit(1)
        ).one()
        conn.execute(insert(event_unsubscribes).values(event_id=event_id, email_key=key, created_at=datetime.now(UTC)))

    plan, claim = analyzed_claim(launched, QUEUED)
    assert (len(claim.messages), claim.suppressed) == (QUEUED - 100 - 1, 1)
    print(plan)
    line = probe_of_an_address(plan)
    assert "never executed" not in line, plan
    assert f"loops={QUEUED - 100}" in line, plan
    with launched.read() as conn:
        row = conn.execute(select(messages.c.status, messages.c.last_error).where(messages.c.id == message_id)).one()
    assert tuple(row) == ("suppressed", outbox.EVENT_UNSUBSCRIBED)
