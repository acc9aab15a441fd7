"""Report benchmark: the full report of a campaign of 1,000,000 messages and 300,000 tracking events.

Setup, not timed, in a fresh SQLite database (and, with ``--postgres DSN``, the same rows in a fresh PostgreSQL
schema): ``--contacts`` contacts (default 600,000) over 400 zones, 60 countries, 500 organisations, 6 locales and
a custom attribute of 12 values; a sending campaign whose invitation went to all of them and whose reminder went
to two in three (``--contacts`` × 5/3 messages: 1,000,000 by default), 90% sent and the rest spread over every
other state; ``--events`` tracking events (default 300,000) on sent messages over three days: opens by people
and by image proxies, clicks by people (a third on Register) and by link scanners, unsubscribes; a registration
for one contact in six (by the link, an import or the webhook) and three links per wave.

Measured (``--repeat`` rounds, medians):

* ours: :func:`campaign.services.reports.campaign_report` without a breakdown (totals, waves, funnel, links,
  the hourly series, times to open and register, the latest undelivered), once per breakdown (zone, country,
  organisation, locale, ``attr:job_title``), and once with every breakdown at once (``every_breakdown``: the
  full report, its breakdowns counted in one pass); ``every_breakdown_apart`` is what the five reports of one
  breakdown each add to the report, the report counted once (the cost of every breakdown asked one by one);
* on SQLite, the CPU time of the report and of the one with every breakdown (``report_cpu``,
  ``every_breakdown_cpu``; the counting happens in this process): what they cost, whatever else the machine runs
  at the time;
* the floor: one ``SELECT wave_id, status, count(*) ... GROUP BY`` over the campaign's messages (what any report
  reads first), and one pass over the tracking events joined to their messages;
* the dashboard (``--pages``): ``campaign web`` run as a process on the same database, an analyst's session, then
  the campaign's page over HTTP: the first request ever (``campaign_page_cold``: the report counted, with people's
  local hours, and kept in the database) and the next ones (a median of 20, answered from the report cache), and
  the same for ``/dashboard``; then ``campaign web`` started again, and the campaign page's first request after
  that restart (``campaign_page_first``: answered from the count kept, while a new count runs).

Prints seconds for each and ends with one JSON line. Targets: the full report (every breakdown) in <= 2 s on
SQLite; the dashboard's campaign page answered in <= 300 ms.

    python bench/report.py [--contacts N] [--events N] [--repeat R] [--pages] [--postgres DSN]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import available_timezones

from seed import add_event, add_list_of_everyone, add_sending_campaign, numbers, when
from sqlalchemy import JSON, Text, case, cast, func, insert, literal, select, text

from campaign.config import load_settings
from campaign.models import MessageStatus, RegistrationSource, Role, TrackingKind, WaveKind, WaveStatus
from campaign.secrets import signing_key
from campaign.services.database import init_database
from campaign.services.reports import campaign_report
from campaign.services.sessions import Logins
from campaign.services.tracking import REGISTER_LINK
from campaign.services.users import add_user
from campaign.store.engine import Database
from campaign.store.tables import (
    campaigns,
    contacts,
    links,
    messages,
    registrations,
    tracking_events,
    waves,
)

ZONES = 400
BREAKDOWNS = ("zone", "country", "organisation", "locale", "attr:job_title")
SENT_AT = datetime(2030, 6, 10, 7, 0, tzinfo=UTC)
# Per hundred messages: the state of each (the rest are sent).
STATES = [
    (MessageStatus.DEFERRED, 3),
    (MessageStatus.BOUNCED, 2),
    (MessageStatus.FAILED, 1),
    (MessageStatus.EXPIRED, 1),
    (MessageStatus.SUPPRESSED, 2),
    (MessageStatus.QUEUED, 1),
]


def setup(db: Database, count: int, hits: int) -> None:
    """The rows of the module doc, generated in SQL (SQLite and PostgreSQL alike)."""
    init_database(db)
    zones = sorted(available_timezones())[:: max(1, len(available_timezones()) // ZONES)][:ZONES]
    before = SENT_AT - timedelta(days=1)
    pg = db.backend == "postgresql"
    with db.write() as conn:
        n = numbers(count)
        zone: Any
        country: Any
        organisation: Any
        attributes: Any
        address = func.concat("p", n.c.x, "@example.org") if pg else func.printf("p%d@example.org", n.c.x)
        if pg:
            zone = func.json_extract_path_text(cast(json.dumps(zones), JSON()), cast(n.c.x % len(zones), Text()))
            country = func.concat(func.chr(65 + n.c.x % 6), func.chr(65 + n.c.x % 10))
            organisation = func.concat("org ", n.c.x % 500)
            attributes = func.jsonb_build_object("job_title", func.concat("title ", n.c.x % 12))
        else:
            zone = func.json_extract(json.dumps(zones), func.printf("$[%d]", n.c.x % len(zones)))
            country = func.char(65 + n.c.x % 6, 65 + n.c.x % 10)
            organisation = func.printf("org %d", n.c.x % 500)
            attributes = func.json_object("job_title", func.printf("title %d", n.c.x % 12))
        locales = ["es", "fr", "en-GB", "de", "pt-BR"]
        locale = case(*[(n.c.x % 6 == i, code) for i, code in enumerate(locales)], else_="en")
        conn.execute(
            insert(contacts).from_select(
                ["id", "email", "email_key", "timezone", "country", "organisation", "locale", "attributes",
                 "created_at", "updated_at"],
                select(n.c.x, address, address, zone, country, organisation, locale, attributes, when(before),
                       when(before)),
            )
        )  # fmt: skip
        list_id = add_list_of_everyone(conn, before)
        event_id = add_event(conn, SENT_AT + timedelta(days=10), before)
        campaign_id = add_sending_campaign(conn, event_id, list_id, before, SENT_AT)
        wave_ids = []
        for name, kind, offset, share in (
            ("invitation", WaveKind.INVITATION, 0, 3),
            ("reminder", WaveKind.REMINDER, 2, 2),
        ):
            wave_id = conn.execute(
                insert(waves)
                .values(campaign_id=campaign_id, name=name, kind=kind.value, template=kind.value, audience="all",
                        status=WaveStatus.ENQUEUED.value, enqueued_at=SENT_AT, created_at=before)
                .returning(waves.c.id)
            ).scalar_one()  # fmt: skip
            wave_ids.append(wave_id)
            for index, link in enumerate((REGISTER_LINK, "join", "calendar_google"), 1):
                conn.execute(
                    insert(links).values(wave_id=wave_id, link_index=index, name=link, url=f"https://x.example/{link}",
                                         url_key=f"{wave_id}-{index}", created_at=before)
                )  # fmt: skip
            bucket = contacts.c.id % 100
            status = case(
                *[(bucket < sum(p for _, p in STATES[: i + 1]), s.value) for i, (s, _) in enumerate(STATES)],
                else_=MessageStatus.SENT.value,
            )
            # Sent over ten hours from the wave's day, by contact.
            second = (contacts.c.id * 37) % 36000
            sent = (
                func.to_timestamp(int(SENT_AT.timestamp()) + offset * 86400 + second)
                if pg
                else func.datetime(int(SENT_AT.timestamp()) + offset * 86400 + second, "unixepoch")
            )
            is_sent = status == MessageStatus.SENT.value
            conn.execute(
                insert(messages).from_select(
                    ["wave_id", "contact_id", "status", "scheduled_at", "attempts", "sent_at", "smtp_reply",
                     "last_error", "created_at", "updated_at"],
                    select(literal(wave_id), contacts.c.id, status, when(SENT_AT), literal(1),
                           case((is_sent, sent)), case((status == "bounced", "550 5.1.1 unknown user")),
                           case((~is_sent, "error")), when(SENT_AT), when(SENT_AT))
                    .where(contacts.c.id % 3 < share),
                )
            )  # fmt: skip
        # Tracking events: one on each of ``hits`` sent messages picked by a stride, its kind by the pick.
        sent_messages = (
            select(
                messages.c.id,
                messages.c.sent_at,
                func.row_number().over(order_by=messages.c.id).label("k"),
            )
            .where(messages.c.status == MessageStatus.SENT.value)
            .subquery()
        )
        total = conn.scalar(select(func.count()).select_from(sent_messages)) or 1
        stride = max(1, total // hits)
        k = sent_messages.c.k
        hit_kind = case(
            (k % 10 < 5, TrackingKind.OPEN.value),
            (k % 10 < 9, TrackingKind.CLICK.value),
            else_=TrackingKind.UNSUBSCRIBE.value,
        )
        machine = (k % 10 == 0) | (k % 10 == 8)
        link_index = case((hit_kind == TrackingKind.CLICK.value, k % 3 + 1))
        later = (k * 7919) % (3 * 86400)
        occurred = (
            sent_messages.c.sent_at + func.make_interval(0, 0, 0, 0, 0, 0, later)
            if pg
            else func.datetime(sent_messages.c.sent_at, func.printf("+%d seconds", later))
        )
        conn.execute(
            insert(tracking_events).from_select(
                ["message_id", "kind", "link_index", "is_machine", "machine_reason", "occurred_at"],
                select(sent_messages.c.id, hit_kind, link_index, machine, case((machine, "proxy")), occurred)
                .where(k % stride == 0)
                .limit(hits),
            )
        )
        sources = [s.value for s in RegistrationSource]
        conn.execute(
            insert(registrations).from_select(
                ["event_id", "contact_id", "source", "registered_at", "created_at"],
                select(literal(event_id), contacts.c.id,
                       case((contacts.c.id % 10 < 6, sources[0]), (contacts.c.id % 10 < 9, sources[1]),
                            else_=sources[2]),
                       when(SENT_AT + timedelta(days=1)), when(SENT_AT))
                .where(contacts.c.id % 6 == 0),
            )
        )  # fmt: skip
    if pg:
        with db.write() as conn:
            conn.execute(text("ANALYZE"))


def full_report(db: Database, by: str | tuple[str, ...] | None = None) -> Callable[[], int]:
    def run() -> int:
        report = campaign_report(db, "c", by=by)
        return report.totals.targeted

    return run


def floor_counts(db: Database) -> Callable[[], int]:
    def run() -> int:
        with db.read() as conn:
            stmt = select(messages.c.wave_id, messages.c.status, func.count()).group_by(
                messages.c.wave_id, messages.c.status
            )
            return sum(row[2] for row in conn.execute(stmt))

    return run


def floor_events(db: Database) -> Callable[[], int]:
    def run() -> int:
        with db.read() as conn:
            stmt = (
                select(messages.c.wave_id, func.count(func.distinct(tracking_events.c.message_id)))
                .join(messages, messages.c.id == tracking_events.c.message_id)
                .group_by(messages.c.wave_id)
            )
            return sum(row[1] for row in conn.execute(stmt))

    return run


def timed(work: Callable[[], int], repeat: int, clock: Callable[[], float] = time.perf_counter) -> float:
    seconds = []
    for _ in range(repeat):
        began = clock()
        work()
        seconds.append(clock() - began)
    return statistics.median(seconds)


def measure(db: Database, repeat: int) -> dict[str, float]:
    figures = {
        "floor_counts": timed(floor_counts(db), repeat),
        "floor_events": timed(floor_events(db), repeat),
        "report": timed(full_report(db), repeat),
    }
    if db.backend == "sqlite":  # SQLite counts in this process: other work on a busy machine barely moves this
        figures["report_cpu"] = timed(full_report(db), repeat, time.process_time)
    for by in BREAKDOWNS:
        figures[f"report_by_{by}"] = timed(full_report(db, by), repeat)
    figures["every_breakdown"] = timed(full_report(db, BREAKDOWNS), repeat)
    if db.backend == "sqlite":
        figures["every_breakdown_cpu"] = timed(full_report(db, BREAKDOWNS), repeat, time.process_time)
    # Asked one by one, each breakdown's own cost is what it adds to the report.
    figures["every_breakdown_apart"] = figures["report"] + sum(
        max(0.0, figures[f"report_by_{b}"] - figures["report"]) for b in BREAKDOWNS
    )
    return figures


def ratios(figures: dict[str, float]) -> dict[str, float]:
    """The full report against the floors measured in the same run, and against its breakdowns asked apart."""
    floor = figures["floor_counts"] + figures["floor_events"]
    return {
        "every_breakdown_over_report": figures["every_breakdown"] / figures["report"],
        "every_breakdown_over_apart": figures["every_breakdown"] / figures["every_breakdown_apart"],
        "every_breakdown_over_floors": figures["every_breakdown"] / floor,
    }


def page_times(db: Database, folder: Path) -> dict[str, float]:
    """The dashboard's pages over HTTP from ``campaign web`` (see the module doc): seconds, first and median."""
    config = folder / "config.toml"
    url = db.url.render_as_string(hide_password=False)
    config.write_text(
        f'[database]\nurl = "{url}"\n[paths]\ndata = "{folder}"\n[links]\npublic_url = "http://127.0.0.1"\n'
    )
    settings = load_settings(config, environ={})
    signing_key(settings.data_dir, environ={}, create=True)
    password = "a bench passphrase"
    add_user(db, "bench", Role.ANALYST, password)
    token = Logins(db, settings.web).login("bench", password, None, datetime.now(UTC)).token
    assert token is not None, "the bench user could not log in"
    with db.read() as conn:
        campaign_id = conn.scalar(select(campaigns.c.id).where(campaigns.c.name == "c"))
    command = [sys.executable, "-m", "campaign", "--config", str(config), "web", "--port", "0"]
    page = f"/dashboard/campaigns/{campaign_id}"
    figures = {}
    with served(command, token) as get:
        figures["campaign_page_cold"] = get(page)
        figures["campaign_page_cached"] = statistics.median(get(page) for _ in range(20))
        figures["dashboard_first"] = get("/dashboard")
        figures["dashboard_cached"] = statistics.median(get("/dashboard") for _ in range(20))
    with served(command, token) as get:
        figures["campaign_page_first"] = get(page)
    return figures


@contextlib.contextmanager
def served(command: list[str], token: str) -> Iterator[Callable[[str], float]]:
    """``campaign web`` run as a process until the block ends; the block gets a function that asks for a page with
    the session ``token`` and says how many seconds the answer took."""
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as server:
        try:
            assert server.stdout is not None
            listening = server.stdout.readline()  # "Listening on http://127.0.0.1:PORT"
            port = int(listening.rsplit(":", 1)[1])

            def get(path: str) -> float:
                began = time.perf_counter()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                conn.request("GET", path, headers={"Cookie": f"campaign-session={token}"})
                reply = conn.getresponse()
                reply.read()
                conn.close()
                assert reply.status == 200, (path, reply.status)
                return time.perf_counter() - began

            yield get
        finally:
            server.terminate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=600_000)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pages", action="store_true", help="also the dashboard's pages, over HTTP")
    parser.add_argument("--postgres", help="also on PostgreSQL: a postgresql+psycopg:// URL of an empty database")
    args = parser.parse_args()
    result: dict[str, object] = {"contacts": args.contacts}
    with tempfile.TemporaryDirectory() as tmp:
        targets = [("sqlite", Database(f"sqlite:///{Path(tmp) / 'bench.db'}"))]
        if args.postgres:
            targets.append(("postgresql", Database(args.postgres)))
        for name, db in targets:
            began = time.perf_counter()
            setup(db, args.contacts, args.events)
            with db.read() as conn:
                count = conn.scalar(select(func.count()).select_from(messages))
                hits = conn.scalar(select(func.count()).select_from(tracking_events))
            print(f"{name}: {count:,} messages, {hits:,} tracking events (setup {time.perf_counter() - began:.0f} s)")
            figures = measure(db, args.repeat)
            if args.pages:
                pages = Path(tmp) / f"{name}-web"
                pages.mkdir()
                figures |= page_times(db, pages)
            for key, seconds in figures.items():
                print(f"  {key:<28} {seconds:6.2f} s")
            against = ratios(figures)
            for key, ratio in against.items():
                print(f"  {key:<28} {ratio:6.2f} x")
            result[name] = {
                "messages": count,
                "events": hits,
                **{k: round(v, 3) for k, v in figures.items()},
                **{k: round(v, 2) for k, v in against.items()},
            }
            db.dispose()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
