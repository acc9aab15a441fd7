"""Enqueue benchmark: materialising a wave of 100,000 recipients into outbox rows.

Measures, in the same run and on fresh SQLite databases: campaign's single ``INSERT ... SELECT``
(:func:`campaign.store.materialise.enqueue_wave`), a Core ``executemany`` of the same rows built in Python, and
a naive ORM ``add_all`` of mapped objects. Prints seconds and rows/s for each, the ratios, and ends with one
JSON line. Target: about a second for 100,000 recipients.

    python bench/enqueue.py [--recipients N] [--repeat R]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert
from sqlalchemy.orm import Session

from campaign.services.database import init_database
from campaign.store import materialise
from campaign.store.engine import Database
from campaign.store.tables import MessageRow, campaigns, contacts, events, list_members, lists, messages, waves


def setup(path: Path, recipients: int) -> tuple[Database, int, int]:
    """A database with ``recipients`` contacts in one list, an event, a campaign and its wave."""
    db = Database(f"sqlite:///{path}")
    init_database(db)
    now = datetime.now(UTC)
    with db.write() as conn:
        conn.execute(
            insert(contacts),
            [
                {"email": f"p{n}@example.org", "email_key": f"p{n}@example.org", "attributes": {},
                 "created_at": now, "updated_at": now}
                for n in range(recipients)
            ],
        )  # fmt: skip
        list_id = conn.execute(insert(lists).values(name="all", created_at=now).returning(lists.c.id)).scalar_one()
        conn.execute(
            insert(list_members),
            [{"list_id": list_id, "contact_id": n + 1, "added_at": now} for n in range(recipients)],
        )
        event_id = conn.execute(
            insert(events)
            .values(slug="e", title="E", description="", starts_at=now + timedelta(days=9),
                    ends_at=now + timedelta(days=9, hours=1), timezone="UTC", language="en", speakers=[],
                    sequence=0, status="scheduled", created_at=now, updated_at=now)
            .returning(events.c.id)
        ).scalar_one()  # fmt: skip
        campaign_id = conn.execute(
            insert(campaigns)
            .values(name="c", event_id=event_id, list_id=list_id, status="sending", created_at=now, updated_at=now)
            .returning(campaigns.c.id)
        ).scalar_one()
        wave_id = conn.execute(
            insert(waves)
            .values(campaign_id=campaign_id, name="invitation", kind="invitation", template="invitation",
                    audience="all", status="pending", created_at=now)
            .returning(waves.c.id)
        ).scalar_one()  # fmt: skip
    return db, wave_id, list_id


def campaign_enqueue(db: Database, wave_id: int, list_id: int, recipients: int) -> None:
    now = datetime.now(UTC)
    with db.write() as conn:
        added = materialise.enqueue_wave(conn, wave_id=wave_id, list_id=list_id, scheduled_at=now, now=now)
    assert added == recipients, added


def core_executemany(db: Database, wave_id: int, list_id: int, recipients: int) -> None:
    now = datetime.now(UTC)
    rows = [
        {"wave_id": wave_id, "contact_id": n + 1, "status": "queued", "scheduled_at": now, "attempts": 0,
         "created_at": now, "updated_at": now}
        for n in range(recipients)
    ]  # fmt: skip
    with db.write() as conn:
        conn.execute(insert(messages), rows)


def orm_add_all(db: Database, wave_id: int, list_id: int, recipients: int) -> None:
    now = datetime.now(UTC)
    with Session(db.engine) as session, session.begin():
        session.add_all(
            MessageRow(wave_id=wave_id, contact_id=n + 1, status="queued", scheduled_at=now, attempts=0,
                       created_at=now, updated_at=now)
            for n in range(recipients)
        )  # fmt: skip


def measure(name: str, run: Callable[[Database, int, int, int], None], recipients: int, repeat: int) -> float:
    times = []
    for attempt in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            db, wave_id, list_id = setup(Path(tmp) / "bench.db", recipients)
            started = time.perf_counter()
            run(db, wave_id, list_id, recipients)
            times.append(time.perf_counter() - started)
            db.dispose()
        print(f"  {name} #{attempt + 1}: {times[-1]:.3f} s")
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n, repeat = args.recipients, args.repeat
    ours = measure("campaign INSERT ... SELECT", campaign_enqueue, n, repeat)
    core = measure("Core executemany", core_executemany, n, repeat)
    orm = measure("ORM add_all", orm_add_all, n, max(1, repeat - 1))
    print(f"\n{n:,} recipients, medians:")
    for name, seconds in (("campaign INSERT ... SELECT", ours), ("Core executemany", core), ("ORM add_all", orm)):
        print(f"  {name:<28} {seconds:7.3f} s  {n / seconds:>10,.0f} rows/s")
    print(f"  campaign is {core / ours:.1f}x Core executemany and {orm / ours:.1f}x ORM add_all")
    figures = {
        "recipients": n,
        "campaign_s": round(ours, 3),
        "core_executemany_s": round(core, 3),
        "orm_add_all_s": round(orm, 3),
        "campaign_rows_per_s": round(n / ours),
        "ratio_vs_core": round(core / ours, 2),
        "ratio_vs_orm": round(orm / ours, 2),
        "target_about_1s_met": ours <= 1.5,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
