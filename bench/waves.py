"""Wave benchmark: firing a timed wave of 1,000,000 recipients with an audience filter and a send window.

Setup, not timed, in a fresh SQLite database kept as a template and copied afresh for every measurement:
``--contacts`` contacts (default 1,000,000) in one list, spread over 400 of the zones
:func:`zoneinfo.available_timezones` offers (one in 41 has no zone and gets the organiser's), 1% of them
suppressed; a sending campaign whose invitation went to all of them (one ``sent`` row each), 30% of whom
registered for its event (a ``registrations`` row, by the link in their invitation: 300,000 for a million) and
0.5% of whom asked for no more mail about it (an ``event_unsubscribes`` row); and its pending wave
``last-chance -7d not-registered mon-fri 09:00-17:00``.

Measured, in the same run (``--repeat`` rounds, interleaved, medians):

* ours: :func:`campaign.services.scheduling.fire_due` at the wave's instant: the compare-and-set of the wave, the
  distinct zones of the contacts (read through their zone index), each zone's first weekday 09:00-17:00 instant
  (DST-correct, once per zone), and
  :func:`campaign.store.materialise.materialise_wave`'s ``INSERT ... SELECT`` of the not-registered members (70%: no
  registration for the event), each with its zone's ``scheduled_at``, suppressed if the address is suppressed or
  opted out of the event; plus the invitation's top-up check, as the scheduler service runs it;
* the plain enqueue of the same rows: :func:`campaign.store.materialise.enqueue_wave` (no audience, no window, one
  ``scheduled_at``) into the same wave from a list holding exactly the not-registered members;
* for reference, the plain enqueue of the whole list (every contact).

Prints seconds and rows/s for each and the ratios, and ends with one JSON line. Target: ours <= 1.5x the plain
enqueue of the same rows.

    python bench/waves.py [--contacts N] [--repeat R]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import available_timezones

from seed import add_event, add_list_of_everyone, add_sending_campaign, numbers, when
from sqlalchemy import case, func, insert, literal, literal_column, select

from campaign.config import Settings
from campaign.models import Audience, MessageStatus, RegistrationSource, WaveKind, WaveStatus
from campaign.rules.timing import format_window, parse_window
from campaign.services.database import init_database
from campaign.services.scheduling import fire_due
from campaign.store import materialise
from campaign.store.engine import Database
from campaign.store.tables import (
    contacts,
    event_unsubscribes,
    list_members,
    lists,
    messages,
    registrations,
    suppressions,
    waves,
)

ZONES = 400
NO_ZONE_EVERY = 41  # every 41st contact has no zone
SUPPRESSED_EVERY = 100  # 1% suppressed
EVENT_OPTED_OUT_EVERY = 200  # 0.5% asked for no more mail about the event
REGISTERED_TENTHS = 3  # contacts whose number ends in 0, 1 or 2 registered: 30%
WINDOW = "mon-fri 09:00-17:00"
# Fixed instants, so that every run plans the same: the wave fires on a Thursday a week before the event.
EVENT_START = datetime(2030, 6, 20, 14, 0, tzinfo=UTC)
FIRES_AT = EVENT_START - timedelta(days=7)
LAUNCHED_AT = FIRES_AT - timedelta(days=10)


def setup(path: Path, count: int) -> dict[str, int]:
    """The template database (see the module doc); returns the ids and sizes the measurements need."""
    db = Database(f"sqlite:///{path}")
    init_database(db)
    zones = sorted(available_timezones())
    step = max(1, len(zones) // ZONES)
    chosen = zones[::step][:ZONES]
    before = LAUNCHED_AT - timedelta(days=1)
    with db.write() as conn:
        n = numbers(count)
        address = func.printf("p%d@example.org", n.c.x)
        zone = case(
            (n.c.x % NO_ZONE_EVERY == 0, None),
            else_=func.json_extract(json.dumps(chosen), func.printf("$[%d]", n.c.x % len(chosen))),
        )
        conn.execute(
            insert(contacts).from_select(
                ["id", "email", "email_key", "timezone", "attributes", "created_at", "updated_at"],
                select(n.c.x, address, address, zone, literal_column("'{}'"), when(before), when(before)),
            )
        )
        everyone = add_list_of_everyone(conn, before)
        audience = conn.execute(
            insert(lists).values(name="not-registered", created_at=before).returning(lists.c.id)
        ).scalar_one()
        registered = contacts.c.id % 10 < REGISTERED_TENTHS
        conn.execute(
            insert(list_members).from_select(
                ["list_id", "contact_id", "added_at"],
                select(literal(audience), contacts.c.id, when(before)).where(~registered),
            )
        )
        conn.execute(
            insert(suppressions).from_select(
                ["email_key", "reason", "created_at"],
                select(contacts.c.email_key, literal("unsubscribed"), when(before)).where(
                    contacts.c.id % SUPPRESSED_EVERY == 7
                ),
            )
        )
        event_id = add_event(conn, EVENT_START, before)
        campaign_id = add_sending_campaign(conn, event_id, everyone, before, LAUNCHED_AT)
        invitation = conn.execute(
            insert(waves)
            .values(campaign_id=campaign_id, name="invitation", kind=WaveKind.INVITATION.value,
                    template="invitation", audience=Audience.ALL.value, status=WaveStatus.DONE.value,
                    enqueued_at=LAUNCHED_AT, created_at=before)
            .returning(waves.c.id)
        ).scalar_one()  # fmt: skip
        last_chance = conn.execute(
            insert(waves)
            .values(campaign_id=campaign_id, name="last-chance", kind=WaveKind.LAST_CHANCE.value,
                    template="last-chance", audience=Audience.NOT_REGISTERED.value,
                    offset_seconds=int((FIRES_AT - EVENT_START).total_seconds()),
                    window=format_window(parse_window(WINDOW)), status=WaveStatus.PENDING.value, created_at=before)
            .returning(waves.c.id)
        ).scalar_one()  # fmt: skip
        conn.execute(
            insert(messages).from_select(
                ["wave_id", "contact_id", "status", "scheduled_at", "attempts", "sent_at", "created_at", "updated_at"],
                select(literal(invitation), list_members.c.contact_id, literal(MessageStatus.SENT.value),
                       when(LAUNCHED_AT), literal(1), when(LAUNCHED_AT), when(LAUNCHED_AT), when(LAUNCHED_AT))
                .where(list_members.c.list_id == everyone),
            )
        )  # fmt: skip
        conn.execute(
            insert(registrations).from_select(
                ["event_id", "contact_id", "source", "message_id", "registered_at", "created_at"],
                select(literal(event_id), messages.c.contact_id, literal(RegistrationSource.LINK.value),
                       messages.c.id, when(LAUNCHED_AT), when(LAUNCHED_AT))
                .where(messages.c.wave_id == invitation, messages.c.contact_id % 10 < REGISTERED_TENTHS),
            )
        )  # fmt: skip
        conn.execute(
            insert(event_unsubscribes).from_select(
                ["event_id", "email_key", "created_at"],
                select(literal(event_id), contacts.c.email_key, when(LAUNCHED_AT)).where(
                    contacts.c.id % EVENT_OPTED_OUT_EVERY == 3
                ),
            )
        )
        registered_rows = conn.scalar(select(func.count()).select_from(registrations)) or 0
        audience_size = conn.scalar(select(func.count()).where(list_members.c.list_id == audience)) or 0
    db.dispose()
    return {
        "wave_id": last_chance,
        "everyone": everyone,
        "audience": audience,
        "registration_rows": registered_rows,
        "audience_size": audience_size,
        "zones": len(chosen),
    }


def ours(db: Database, ids: dict[str, int]) -> int:
    [fired] = fire_due(db, Settings(root=Path.cwd()), FIRES_AT)
    assert fired.status is WaveStatus.ENQUEUED, fired
    return fired.queued + fired.suppressed + fired.expired


def plain(list_key: str) -> Callable[[Database, dict[str, int]], int]:
    def run(db: Database, ids: dict[str, int]) -> int:
        with db.write() as conn:
            return materialise.enqueue_wave(
                conn, wave_id=ids["wave_id"], list_id=ids[list_key], scheduled_at=FIRES_AT, now=FIRES_AT
            )

    return run


def measure(template: Path, run: Callable[[Database, dict[str, int]], int], ids: dict[str, int]) -> tuple[float, int]:
    """One run on a fresh copy of the template: (seconds, rows added)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        shutil.copyfile(template, path)
        db = Database(f"sqlite:///{path}")
        with db.read() as conn:  # connect (and set the connection up) before the clock starts
            conn.execute(select(1))
        started = time.perf_counter()
        rows = run(db, ids)
        seconds = time.perf_counter() - started
        db.dispose()
    return seconds, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=1_000_000, help="contacts in the list (default 1,000,000)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of each measurement (default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        template = Path(tmp) / "template.db"
        started = time.perf_counter()
        ids = setup(template, args.contacts)
        print(
            f"setup: {args.contacts:,} contacts over {ids['zones']} zones, {ids['registration_rows']:,} registrations, "
            f"audience {ids['audience_size']:,} ({time.perf_counter() - started:.1f} s)"
        )
        runs: dict[str, Callable[[Database, dict[str, int]], int]] = {
            "ours": ours,
            "plain_same_rows": plain("audience"),
            "plain_whole_list": plain("everyone"),
        }
        times: dict[str, list[float]] = {name: [] for name in runs}
        for round_number in range(args.repeat):
            line = []
            for name, run in runs.items():
                seconds, rows = measure(template, run, ids)
                expected = ids["audience_size"] if name != "plain_whole_list" else args.contacts
                assert rows == expected, (name, rows, expected)
                times[name].append(seconds)
                line.append(f"{name} {seconds:.2f} s")
            print(f"round {round_number + 1}/{args.repeat}: " + ", ".join(line))
    median = {name: statistics.median(t) for name, t in times.items()}
    ratio = median["ours"] / median["plain_same_rows"]
    audience = ids["audience_size"]
    print(f"\n{args.contacts:,} contacts, medians:")
    for name, rows in (("ours", audience), ("plain_same_rows", audience), ("plain_whole_list", args.contacts)):
        print(f"  {name:<18} {median[name]:7.2f} s  {rows / median[name]:>10,.0f} rows/s")
    print(f"  ours is {ratio:.2f}x the plain enqueue of the same rows (target <= 1.5x)")
    figures = {
        "contacts": args.contacts,
        "zones": ids["zones"],
        "registration_rows": ids["registration_rows"],
        "audience_rows": audience,
        "window": WINDOW,
        "repeat": args.repeat,
        "ours_s": round(median["ours"], 3),
        "plain_same_rows_s": round(median["plain_same_rows"], 3),
        "plain_whole_list_s": round(median["plain_whole_list"], 3),
        "ours_rows_per_s": round(audience / median["ours"]),
        "ratio_vs_plain_same_rows": round(ratio, 2),
        "ratio_vs_plain_whole_list": round(median["ours"] / median["plain_whole_list"], 2),
        "target_ratio": 1.5,
        "target_met": ratio <= 1.5,
        "rounds": {name: [round(t, 3) for t in values] for name, values in times.items()},
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
