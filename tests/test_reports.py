"""Reports (store.reports, services.reports, ``campaign report``): every number equals a count this test computes
itself from the rows it inserted, on SQLite and PostgreSQL.

The rows are inserted directly (a campaign with two waves, messages in every state, tracking events by people and
machines, registrations from every source, some before the campaign reached the person, some for another event),
so each rule of :mod:`campaign.store.reports` is checked against an independent computation here.
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
import shutil
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, event, insert, select

from campaign.cli import cli
from campaign.config import TrackingSettings
from campaign.models import FunnelRegistrations, MessageStatus, RegistrationSource, TrackingKind
from campaign.services.report_documents import report_document, write_report_csv
from campaign.services.report_model import CampaignReport, Tally
from campaign.services.reports import campaign_lines, campaign_report, parse_moment
from campaign.services.tracking import REGISTER_LINK, Hit, HitRecorder
from campaign.store.engine import Database
from campaign.store.tables import (
    campaigns,
    contacts,
    events,
    links,
    list_members,
    lists,
    messages,
    registrations,
    tracking_events,
    waves,
)
from tests.conftest import DATA, cli_ok

ZURICH = "Europe/Zurich"
BASE = datetime(2026, 6, 1, 7, 0, tzinfo=UTC)
LINK_NAMES = {1: REGISTER_LINK, 2: "join", 3: "calendar_google"}
FORMULA = '=HYPERLINK("http://evil.example","x")'
CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"


@dataclass
class World:
    """What the test inserted, as the test knows it (never read back from the database)."""

    event_id: int = 0
    campaign: str = "c"
    contacts: dict[int, dict[str, Any]] = field(default_factory=dict)
    waves: dict[int, str] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    hits: list[dict[str, Any]] = field(default_factory=list)
    registrations: list[dict[str, Any]] = field(default_factory=list)


def _insert(conn: Any, table: Any, rows: list[dict[str, Any]]) -> list[int]:
    return [conn.execute(insert(table).values(**row).returning(table.c.id)).scalar_one() for row in rows]


def add_event(conn: Any, slug: str, zone: str = ZURICH) -> int:
    start = BASE + timedelta(days=10)
    row = {
        "slug": slug,
        "title": "A talk",
        "starts_at": start,
        "ends_at": start + timedelta(hours=1),
        "timezone": zone,
        "created_at": BASE,
        "updated_at": BASE,
    }
    return _insert(conn, events, [row])[0]


def add_campaign(conn: Any, name: str, event_id: int, list_id: int, wave_names: list[str]) -> dict[int, str]:
    """A sending campaign with these waves, each with the three links of :data:`LINK_NAMES`."""
    (campaign_id,) = _insert(
        conn,
        campaigns,
        [
            {
                "name": name,
                "event_id": event_id,
                "list_id": list_id,
                "status": "sending",
                "created_at": BASE,
                "updated_at": BASE,
            }
        ],
    )
    found = {}
    for name_ in wave_names:
        kind = "invitation" if name_ == "invitation" else "reminder"
        row = {
            "campaign_id": campaign_id,
            "name": name_,
            "kind": kind,
            "template": kind,
            "status": "enqueued",
            "created_at": BASE,
        }
        (wave_id,) = _insert(conn, waves, [row])
        found[wave_id] = name_
        for index, link in LINK_NAMES.items():
            conn.execute(
                insert(links).values(
                    wave_id=wave_id,
                    link_index=index,
                    name=link,
                    url=f"https://x.example/{link}",
                    url_key=f"{wave_id}-{index}",
                    created_at=BASE,
                )
            )
    return found


STATUS_WEIGHTS = {
    MessageStatus.SENT: 12,
    MessageStatus.QUEUED: 1,
    MessageStatus.SENDING: 1,
    MessageStatus.DEFERRED: 2,
    MessageStatus.BOUNCED: 2,
    MessageStatus.FAILED: 1,
    MessageStatus.EXPIRED: 1,
    MessageStatus.SUPPRESSED: 1,
    MessageStatus.CANCELLED: 1,
}


def seed(db: Database, people: int = 48, seed_value: int = 7) -> World:
    """A campaign ``c`` (invitation to all, a reminder to half) with everything a report counts, and beside it a
    campaign ``other`` and an event ``elsewhere`` whose rows must never be counted in ``c``."""
    rnd = random.Random(seed_value)
    world = World()
    zones = [ZURICH, "Asia/Kolkata", "America/New_York", None]
    countries = ["CH", "IN", "US", None]
    titles = ["Analyst", FORMULA, "Director", None]
    with db.write() as conn:
        world.event_id = add_event(conn, "talk")
        other_event = add_event(conn, "elsewhere")
        (list_id,) = _insert(conn, lists, [{"name": "guests", "created_at": BASE}])
        for i in range(people):
            attributes = {} if titles[i % 4] is None else {"job_title": titles[i % 4]}
            row = {
                "email": f"p{i}@example.org",
                "email_key": f"p{i}@example.org",
                "timezone": zones[i % 4],
                "country": countries[(i // 4) % 4],
                "organisation": f"org{i % 3}",
                "locale": ["en", "es", "fr"][i % 3],
                "attributes": attributes,
                "created_at": BASE,
                "updated_at": BASE,
            }
            (contact_id,) = _insert(conn, contacts, [row])
            world.contacts[contact_id] = row
            conn.execute(insert(list_members).values(list_id=list_id, contact_id=contact_id, added_at=BASE))
        world.waves = add_campaign(conn, "c", world.event_id, list_id, ["invitation", "reminder"])
        other_waves = add_campaign(conn, "other", other_event, list_id, ["invitation"])
        statuses = [s for s, w in STATUS_WEIGHTS.items() for _ in range(w)]
        contact_ids = list(world.contacts)
        for wave_id in [*world.waves, *other_waves]:
            first = wave_id == min(world.waves)
            for n, contact_id in enumerate(contact_ids):
                if wave_id in world.waves and not first and n % 2:
                    continue  # the reminder goes to half of them
                # Each status at least once, then at random.
                status = list(STATUS_WEIGHTS)[n] if first and n < len(STATUS_WEIGHTS) else rnd.choice(statuses)
                scheduled = BASE + timedelta(hours=0 if first else 30, minutes=rnd.randrange(0, 600))
                sent_at = scheduled + timedelta(seconds=rnd.randrange(0, 300)) if status is MessageStatus.SENT else None
                unsent = status in (
                    MessageStatus.DEFERRED,
                    MessageStatus.BOUNCED,
                    MessageStatus.FAILED,
                    MessageStatus.EXPIRED,
                )
                message: dict[str, Any] = {
                    "wave_id": wave_id,
                    "contact_id": contact_id,
                    "status": status.value,
                    "scheduled_at": scheduled,
                    "sent_at": sent_at,
                    "attempts": rnd.randrange(1, 4) if unsent or sent_at else 0,
                    "smtp_reply": f"550 5.1.1 <p{n}> unknown" if status is MessageStatus.BOUNCED else None,
                    "last_error": f"error {n}" if unsent else None,
                    "created_at": BASE,
                    "updated_at": BASE + timedelta(minutes=n, seconds=wave_id),
                }
                (message_id,) = _insert(conn, messages, [message])
                if wave_id in world.waves:
                    world.messages.append({**message, "id": message_id})
                if sent_at is not None:
                    world.hits += _hits(rnd, message_id, wave_id, sent_at)
        conn.execute(insert(tracking_events), world.hits)
        world.hits = [h for h in world.hits if h["message_id"] in {m["id"] for m in world.messages}]
        # Registrations: by the link after the message, imported before the campaign reached them (not counted),
        # by webhook later; some of people the campaign never reached, some for another event.
        for n, contact_id in enumerate(contact_ids):
            firsts = [m["sent_at"] for m in world.messages if m["contact_id"] == contact_id and m["sent_at"]]
            anchor = min(firsts) if firsts else BASE
            choice = n % 5
            rows = []
            if choice == 0:
                rows.append(("link", anchor + timedelta(minutes=rnd.randrange(1, 4000))))
            elif choice == 1:
                rows.append(("import", anchor - timedelta(hours=1)))
            elif choice == 2:
                rows += [("webhook", anchor + timedelta(hours=40)), ("import", anchor + timedelta(hours=41))]
            elif choice == 3 and n % 2:
                rows.append(("link", anchor))  # the same second as the message: counted
            for source, at in rows:
                world.registrations.append(
                    {"event_id": world.event_id, "contact_id": contact_id, "source": source, "registered_at": at}
                )
            if n % 7 == 0:
                conn.execute(
                    insert(registrations).values(
                        event_id=other_event,
                        contact_id=contact_id,
                        source="link",
                        registered_at=anchor,
                        created_at=BASE,
                    )
                )
        # People who clicked Register (a person's click) and whom the platform confirmed minutes later: the path the
        # funnel follows, step by step (the registrations above are made without regard to clicks).
        webhooks = {r["contact_id"] for r in world.registrations if r["source"] == "webhook"}
        owner = {m["id"]: m["contact_id"] for m in world.messages}
        for h in sorted(world.hits, key=lambda h: h["occurred_at"]):
            contact_id = owner[h["message_id"]]
            person_registering = (
                h["kind"] == "click" and not h["is_machine"] and LINK_NAMES[h["link_index"]] == REGISTER_LINK
            )
            if person_registering and contact_id not in webhooks:
                webhooks.add(contact_id)
                at = h["occurred_at"] + timedelta(minutes=5)
                world.registrations.append(
                    {"event_id": world.event_id, "contact_id": contact_id, "source": "webhook", "registered_at": at}
                )
        conn.execute(insert(registrations), [{**r, "created_at": BASE} for r in world.registrations])
    return world


def _hits(rnd: random.Random, message_id: int, wave_id: int, sent_at: datetime) -> list[dict[str, Any]]:
    """Some tracking events on a sent message: opens and clicks by people and machines, an unsubscribe."""
    found = []

    def hit(kind: TrackingKind, after: int, machine: bool = False, link: int | None = None) -> None:
        found.append(
            {
                "message_id": message_id,
                "kind": kind.value,
                "link_index": link,
                "is_machine": machine,
                "machine_reason": "proxy" if machine else None,
                "occurred_at": sent_at + timedelta(seconds=after, microseconds=rnd.randrange(0, 999_999)),
            }
        )

    roll = rnd.random()
    if roll < 0.25:
        hit(TrackingKind.OPEN, 1, machine=True)  # an image proxy at delivery
    if roll < 0.6:
        for _ in range(rnd.randrange(1, 3)):
            hit(TrackingKind.OPEN, rnd.randrange(30, 20_000))
    if 0.5 < roll < 0.8:
        hit(TrackingKind.CLICK, rnd.randrange(30, 30_000), link=rnd.choice([1, 2, 3]))  # a click without an open
    if roll < 0.3:
        hit(TrackingKind.CLICK, 2, machine=True, link=rnd.choice([1, 2]))
    if rnd.random() < 0.1:
        hit(TrackingKind.UNSUBSCRIBE, rnd.randrange(60, 9000))
    if rnd.random() < 0.05:
        hit(TrackingKind.CALENDAR, 90)
    return found


# --- what the test expects, computed from World alone ------------------------------------------------------------


def in_window(m: dict[str, Any], since: datetime | None, until: datetime | None) -> bool:
    when = m["sent_at"] or m["scheduled_at"]
    return (since is None or when >= since) and (until is None or when < until)


def expected_tally(world: World, chosen: list[dict[str, Any]]) -> dict[str, Any]:
    """The numbers of a tally over the messages ``chosen``: registrations after the person's first delivered
    message among them (for one wave, its message)."""
    ids = {m["id"] for m in chosen}
    hits = [h for h in world.hits if h["message_id"] in ids]

    def messages_with(test: Any) -> int:
        return len({h["message_id"] for h in hits if test(h)})

    human_opened = messages_with(lambda h: not h["is_machine"] and h["kind"] in ("open", "click"))
    register = messages_with(
        lambda h: not h["is_machine"] and h["kind"] == "click" and LINK_NAMES[h["link_index"]] == REGISTER_LINK
    )
    first_sent: dict[int, datetime] = {}
    for m in chosen:
        if m["sent_at"]:
            first_sent[m["contact_id"]] = min(first_sent.get(m["contact_id"], m["sent_at"]), m["sent_at"])
    by_source: Counter[str] = Counter()
    registered: set[int] = set()
    confirmed: set[int] = set()  # by the platform: imported or by its webhook
    for source in ("link", "import", "webhook"):
        people = {
            r["contact_id"]
            for r in world.registrations
            if r["source"] == source
            and r["contact_id"] in first_sent
            and r["registered_at"] >= first_sent[r["contact_id"]]
        }
        by_source[source] = len(people)
        registered |= people
        if source != "link":
            confirmed |= people
    statuses = Counter(m["status"] for m in chosen)
    return {
        "statuses": {s.value: statuses.get(s.value, 0) for s in MessageStatus},
        "human_opened": human_opened,
        "machine_opened": messages_with(lambda h: h["is_machine"] and h["kind"] == "open"),
        "human_clicked": messages_with(lambda h: not h["is_machine"] and h["kind"] == "click"),
        "machine_clicked": messages_with(lambda h: h["is_machine"] and h["kind"] == "click"),
        "register_clicked": register,
        "unsubscribed": messages_with(lambda h: h["kind"] == "unsubscribe"),
        "registered": len(registered),
        "by_source": dict(by_source),
        "confirmed": len(confirmed),
        "expired_after_attempts": sum(1 for m in chosen if m["status"] == "expired" and m["attempts"] > 0),
    }


def through_link(world: World, wave: list[dict[str, Any]]) -> tuple[set[int], set[int]]:
    """Of one wave's recipients who clicked its Register link (a person's click), those who registered after their
    message (any source), and those the platform confirmed: the funnel's registered step, each way."""
    clicks = {
        h["message_id"]
        for h in world.hits
        if not h["is_machine"] and h["kind"] == "click" and LINK_NAMES[h["link_index"]] == REGISTER_LINK
    }
    sent = {m["contact_id"]: m["sent_at"] for m in wave if m["sent_at"] and m["id"] in clicks}
    after = [r for r in world.registrations if r["contact_id"] in sent and r["registered_at"] >= sent[r["contact_id"]]]
    return {r["contact_id"] for r in after}, {r["contact_id"] for r in after if r["source"] != "link"}


def actual(tally: Tally) -> dict[str, Any]:
    return {
        "statuses": {s.value: n for s, n in tally.statuses.items()},
        "human_opened": tally.human_opened,
        "machine_opened": tally.machine_opened,
        "human_clicked": tally.human_clicked,
        "machine_clicked": tally.machine_clicked,
        "register_clicked": tally.register_clicked,
        "unsubscribed": tally.unsubscribed,
        "registered": tally.registered,
        "by_source": {s.value: n for s, n in tally.registered_by_source.items()},
        "confirmed": tally.registered_confirmed,
        "expired_after_attempts": tally.expired_after_attempts,
    }


def nearest_rank(values: list[int]) -> tuple[int, int | None, int | None]:
    ordered = sorted(values)
    if not ordered:
        return 0, None, None
    n = len(ordered)
    return n, ordered[math.ceil(n * 0.5) - 1], ordered[math.ceil(n * 0.9) - 1]


def seconds_between(later: datetime, earlier: datetime) -> int:
    return max(0, int(later.timestamp()) - int(earlier.timestamp()))


def first_opens(hits: list[dict[str, Any]]) -> dict[int, datetime]:
    """When each message of ``hits`` was first opened by a person (a click counts)."""
    opened: dict[int, datetime] = {}
    for h in hits:
        if not h["is_machine"] and h["kind"] in ("open", "click"):
            opened[h["message_id"]] = min(opened.get(h["message_id"], h["occurred_at"]), h["occurred_at"])
    return opened


def first_registrations(
    messages: list[dict[str, Any]], registrations: list[dict[str, Any]]
) -> tuple[dict[int, datetime], dict[int, datetime]]:
    """When each recipient of ``messages`` was first sent one, and when they registered first from then on."""
    first_sent: dict[int, datetime] = {}
    for m in messages:
        if m["sent_at"]:
            first_sent[m["contact_id"]] = min(first_sent.get(m["contact_id"], m["sent_at"]), m["sent_at"])
    joined: dict[int, datetime] = {}
    for r in registrations:
        c = r["contact_id"]
        if c in first_sent and r["registered_at"] >= first_sent[c]:
            joined[c] = min(joined.get(c, r["registered_at"]), r["registered_at"])
    return first_sent, joined


def check_report(
    world: World, report: CampaignReport, since: datetime | None = None, until: datetime | None = None
) -> None:
    chosen = [m for m in world.messages if in_window(m, since, until)]
    assert chosen, "the window must hold messages"
    assert actual(report.totals) == expected_tally(world, chosen)
    for line in report.waves:
        wave_messages = [m for m in chosen if world.waves[m["wave_id"]] == line.wave.name]
        expected = expected_tally(world, wave_messages)
        assert actual(line.tally) == expected, line.wave.name
    # Messages partition into waves; registrations do not add up (one person gets several waves).
    assert report.totals.targeted == len(chosen) == sum(w.tally.targeted for w in report.waves)

    # The funnel: the invitation's (or the one wave's), from its tally, which was checked above.
    ids = {m["id"]: m for m in chosen}
    hits = [h for h in world.hits if h["message_id"] in ids]
    kinds = [w.wave.kind.value for w in report.waves]
    funnel_wave = report.waves[kinds.index("invitation") if "invitation" in kinds else 0]
    assert report.funnel_wave == funnel_wave.wave.name
    t = funnel_wave.tally
    steps = {s.step: s.count for s in report.funnel}
    # The platform's registrations are known (imported, webhook): the last step counts only those it confirmed,
    # of the recipients who clicked Register in the wave (each step part of the one before); whatever wave or
    # dates the report is kept to.
    assert report.funnel_registered is FunnelRegistrations.CONFIRMED
    _, confirmed = through_link(world, [m for m in chosen if m["wave_id"] == funnel_wave.wave.id])
    assert steps == {
        "delivered": t.delivered,
        "opened": t.human_opened,
        "clicked_register": t.register_clicked,
        "registered": len(confirmed),
    }
    assert report.funnel_elsewhere == (t.registered_confirmed - len(confirmed), 0)
    assert report.funnel[1].of_delivered == pytest.approx(t.human_opened / t.delivered)
    assert report.funnel[2].of_previous == pytest.approx(t.register_clicked / t.human_opened)
    assert all(s.of_previous is None or s.of_previous <= 1 for s in report.funnel)

    # Time to first open (per message) and to registration (per person), nearest rank.
    first_open = first_opens(hits)
    waits = [seconds_between(at, ids[m]["sent_at"]) for m, at in first_open.items()]
    assert (report.to_open.count, report.to_open.median, report.to_open.p90) == nearest_rank(waits)
    first_sent, joined = first_registrations(chosen, world.registrations)
    delays = [seconds_between(at, first_sent[c]) for c, at in joined.items()]
    assert (report.to_registration.count, report.to_registration.median, report.to_registration.p90) == nearest_rank(
        delays
    )

    # Links: messages clicked in by people and by machines, people's clicks.
    expected_links: dict[tuple[str, int], list[Any]] = {}
    for h in hits:
        if h["kind"] != "click":
            continue
        key = (world.waves[ids[h["message_id"]]["wave_id"]], h["link_index"])
        human, machine, clicks = expected_links.setdefault(key, [set(), set(), 0])
        (machine if h["is_machine"] else human).add(h["message_id"])
        expected_links[key][2] = clicks + (0 if h["is_machine"] else 1)
    assert {
        (link.wave, link.index): [link.clicked_human, link.clicked_machine, link.clicks_human] for link in report.links
    } == {key: [len(h), len(m), n] for key, (h, m, n) in expected_links.items()}
    assert {link.name for link in report.links} <= set(LINK_NAMES.values())

    # Who did not get it: the latest first, with the server's reply.
    failed = [m for m in chosen if m["status"] in ("deferred", "bounced", "failed", "expired")]
    failed.sort(key=lambda m: (m["updated_at"], m["id"]), reverse=True)
    assert report.undelivered_total == len(failed)
    shown = [(u.email, u.status, u.smtp_reply, u.error) for u in report.undelivered]
    assert shown == [
        (world.contacts[m["contact_id"]]["email"], m["status"], m["smtp_reply"], m["last_error"])
        for m in failed[: len(shown)]
    ]

    # The hourly series in the organiser's zone, each instant put in its local hour here.
    zone = ZoneInfo(report.filters.zone)
    series: dict[str, Counter[str]] = {}

    def count(at: datetime, what: str) -> None:
        hour = at.astimezone(zone).replace(minute=0, second=0, microsecond=0)
        series.setdefault(hour.isoformat(), Counter())[what] += 1

    for at in first_open.values():
        count(at, "opened")
    first_click: dict[int, datetime] = {}
    for h in hits:
        if not h["is_machine"] and h["kind"] == "click":
            first_click[h["message_id"]] = min(first_click.get(h["message_id"], h["occurred_at"]), h["occurred_at"])
    for at in first_click.values():
        count(at, "clicked")
    for at in joined.values():
        count(at, "registered")
    assert {
        h.start.isoformat(): {"opened": h.opened, "clicked": h.clicked, "registered": h.registered}
        for h in report.hourly
    } == {hour: {k: c.get(k, 0) for k in ("opened", "clicked", "registered")} for hour, c in series.items()}


def test_while_nothing_came_from_the_platform_the_funnel_counts_every_registration(db: Database) -> None:
    world = seed(db)
    with db.write() as conn:
        conn.execute(delete(registrations).where(registrations.c.source != RegistrationSource.LINK.value))
    world.registrations = [r for r in world.registrations if r["source"] == RegistrationSource.LINK.value]
    report = campaign_report(db, "c")
    invitation = next(w for w in report.waves if w.wave.kind.value == "invitation")
    expected = expected_tally(world, [m for m in world.messages if m["wave_id"] == invitation.wave.id])
    assert expected["registered"]
    assert expected["confirmed"] == 0
    assert report.funnel_registered is FunnelRegistrations.ANY
    registered, _ = through_link(world, [m for m in world.messages if m["wave_id"] == invitation.wave.id])
    assert report.funnel[-1].count == len(registered)
    assert report.funnel_elsewhere[0] == expected["registered"] - len(registered)


def test_every_number_of_the_report_equals_an_independent_count(db: Database) -> None:
    world = seed(db)
    report = campaign_report(db, "c", undelivered=5)
    check_report(world, report)
    # The data exercise every rule: something in each status, each kind of hit, each source.
    assert all(report.totals.statuses[s] for s in MessageStatus)
    t = report.totals
    assert (
        min(t.human_opened, t.machine_opened, t.human_clicked, t.machine_clicked, t.register_clicked, t.unsubscribed)
        > 0
    )
    assert all(t.registered_by_source.values())
    assert len(report.undelivered) == 5 < report.undelivered_total
    # A wave alone, and a time window.
    check_report(world, campaign_report(db, "c", wave="reminder"), since=BASE + timedelta(hours=30))
    since, until = BASE + timedelta(hours=2), BASE + timedelta(hours=32)
    windowed = campaign_report(db, "c", since=since.isoformat(), until=until.isoformat(), undelivered=1000)
    check_report(world, windowed, since, until)


def test_rates_are_over_the_right_base(db: Database) -> None:
    world = seed(db)
    t = campaign_report(db, "c").totals
    rates = t.rates()
    s = t.statuses
    # An expired message that had been tried (deferred, then given up) was attempted: left out, a message given up
    # on raised the delivery rate (an analyst's review).
    tried = sum(1 for m in world.messages if m["status"] == "expired" and m["attempts"] > 0)
    assert tried > 0
    assert t.expired_after_attempts == tried
    attempted = s[MessageStatus.SENT] + s[MessageStatus.DEFERRED] + s[MessageStatus.BOUNCED] + s[MessageStatus.FAILED]
    assert t.attempted == attempted + tried
    assert rates["bounced"] == s[MessageStatus.BOUNCED] / (attempted + tried)
    assert rates["delivered"] == s[MessageStatus.SENT] / (attempted + tried)
    assert rates["suppressed"] == s[MessageStatus.SUPPRESSED] / t.targeted
    assert rates["opened_human"] == t.human_opened / s[MessageStatus.SENT]
    assert rates["registered"] == t.registered / s[MessageStatus.SENT]
    assert rates["unsubscribed"] == t.unsubscribed / s[MessageStatus.SENT]


@pytest.mark.parametrize("by", ["zone", "country", "organisation", "locale", "attr:job_title", "attr:Job Title"])
def test_breakdowns_partition_the_campaign(db: Database, by: str) -> None:
    world = seed(db)
    report = campaign_report(db, "c", by=by)
    assert report.breakdown is not None
    field_of: Any = {
        "zone": lambda c: c["timezone"],
        "country": lambda c: c["country"],
        "organisation": lambda c: c["organisation"],
        "locale": lambda c: c["locale"],
    }.get(by, lambda c: c["attributes"].get("job_title"))
    groups: dict[Any, list[dict[str, Any]]] = {}
    for m in world.messages:
        groups.setdefault(field_of(world.contacts[m["contact_id"]]), []).append(m)
    assert {g.key: actual(g.tally) for g in report.breakdown} == {
        key: expected_tally(world, chosen) for key, chosen in groups.items()
    }
    # Largest groups first.
    assert [g.tally.targeted for g in report.breakdown] == sorted(
        (g.tally.targeted for g in report.breakdown), reverse=True
    )


def test_a_custom_attribute_that_is_a_formula_is_neutralised_in_the_csv(db: Database) -> None:
    seed(db)
    report = campaign_report(db, "c", by="attr:job_title")
    out = io.StringIO()
    write_report_csv(report, out)
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    header = rows[0]
    assert header[:3] == ["section", "name", "targeted"]
    names = [row[1] for row in rows if row[0] == "attr:job_title"]
    assert "'" + FORMULA in names
    assert FORMULA not in names
    assert not any(cell.startswith(("=", "+", "@")) for row in rows for cell in row)
    # The numbers are numbers, the same as the model's.
    total = next(row for row in rows if row[0] == "total")
    assert dict(zip(header[2:], total[2:], strict=True)) == {
        k: "" if v is None else str(v) for k, v in report.totals.columns().items()
    }


def test_the_json_shape_is_stable(db: Database) -> None:
    seed(db)
    doc = report_document(campaign_report(db, "c", by="zone", local_hours=True))
    assert list(doc) == [
        "schema", "generated_at", "campaign", "filters", "totals", "waves", "funnel_wave", "funnel", "breakdown",
        "links", "hourly", "timing", "undelivered", "local_hours", "funnel_registered", "attendees", "breakdowns",
        "funnel_elsewhere",
    ]  # fmt: skip
    assert list(doc["funnel_elsewhere"]) == ["registered", "joined"]
    assert list(doc["local_hours"][0]) == ["zone", "opened", "registered", "peak_open_hour", "peak_registration_hour"]
    assert doc["schema"] == "campaign-report/1"
    tally_keys = [
        "messages", "attempted", "delivered", "opened", "clicked", "registered", "unsubscribed", "rates", "joined",
        "expired_after_attempts",
    ]  # fmt: skip
    assert list(doc["totals"]) == tally_keys
    assert list(doc["totals"]["messages"]) == ["targeted", *(s.value for s in MessageStatus)]
    assert list(doc["totals"]["opened"]) == ["human", "machine"]
    assert list(doc["totals"]["clicked"]) == ["human", "machine", "register"]
    assert list(doc["totals"]["registered"]) == ["total", "link", "import", "webhook", "confirmed"]
    assert list(doc["totals"]["rates"]) == [
        "delivered", "deferred", "bounced", "failed", "suppressed", "opened_human", "opened_machine", "clicked_human",
        "clicked_machine", "clicked_register", "registered", "unsubscribed", "joined",
    ]  # fmt: skip
    assert list(doc["waves"][0]) == ["name", "kind", "status", *tally_keys]
    assert list(doc["campaign"]) == ["id", "name", "status", "list", "launched_at", "event"]
    assert list(doc["filters"]) == ["wave", "since", "until", "by", "zone"]
    assert [s["step"] for s in doc["funnel"]] == ["delivered", "opened", "clicked_register", "registered"]
    assert list(doc["funnel"][0]) == ["step", "count", "of_delivered", "of_previous"]
    assert list(doc["breakdown"]) == ["by", "rows"]
    assert list(doc["breakdown"]["rows"][0]) == ["key", *tally_keys]
    assert doc["breakdowns"] == [doc["breakdown"]]
    assert list(doc["links"][0]) == ["wave", "index", "name", "url", "clicked_human", "clicked_machine", "clicks_human"]
    assert list(doc["hourly"]) == ["zone", "rows"]
    assert list(doc["hourly"]["rows"][0]) == ["hour", "opened", "clicked", "registered"]
    assert list(doc["timing"]) == ["to_open", "to_registration"]
    assert list(doc["timing"]["to_open"]) == ["count", "median_seconds", "p90_seconds"]
    assert list(doc["undelivered"]) == ["total", "rows"]
    assert list(doc["undelivered"]["rows"][0]) == ["email", "wave", "status", "attempts", "smtp_reply", "error", "at"]
    json.dumps(doc)  # nothing that JSON cannot hold


def test_the_costly_reads_follow_the_tracking_events_and_registrations_through_indexes(sqlite_db: Database) -> None:
    # What each message's recipient did is one pass over message_activity (kept by triggers from the tracking
    # events), each message then found by its key; the registrations' messages are found by contact. Neither reads
    # every message of the campaign (a million rows: bench/report.py). On SQLite: its query planner is what is
    # checked (EXPLAIN QUERY PLAN).
    seed(sqlite_db, people=8)
    executed: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO REPORT_"):
            executed.append((statement, parameters))

    event.listen(sqlite_db.engine, "before_cursor_execute", record)
    try:
        campaign_report(sqlite_db, "c")
    finally:
        event.remove(sqlite_db.engine, "before_cursor_execute", record)
    plans = {}
    with sqlite_db.read() as conn:
        for statement, parameters in executed:
            # The SELECT alone: the temporary tables it filled are gone with the report.
            table, rows = statement.split()[2], statement[statement.index(") SELECT ") + 2 :]
            if table != "report_people":  # it reads report_pairs
                plans[table] = [str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {rows}", parameters)]
    assert set(plans) == {"report_facts", "report_pairs"}
    facts, pairs = plans["report_facts"], plans["report_pairs"]
    assert "SCAN message_activity" in facts, facts
    assert "SEARCH messages USING INTEGER PRIMARY KEY (rowid=?)" in facts, facts
    assert any(step.startswith("SEARCH registrations USING INDEX") for step in pairs), pairs
    assert not [step for step in facts + pairs if step.startswith("SCAN messages")], (facts, pairs)


# --- the hourly series: half-hour zones, DST ---------------------------------------------------------------------


def campaign_of(db: Database, zone: str, people: list[tuple[datetime, datetime]]) -> None:
    """Campaign ``c`` for an event in ``zone``, with a message to each of ``people`` sent an hour before the
    first of their two instants: when they opened it, and when they registered (by the webhook)."""
    with db.write() as conn:
        event_id = add_event(conn, "talk", zone)
        (list_id,) = _insert(conn, lists, [{"name": "guests", "created_at": BASE}])
        (wave_id,) = add_campaign(conn, "c", event_id, list_id, ["invitation"])
        for n, (opened_at, registered_at) in enumerate(people):
            person = {
                "email": f"p{n}@example.org",
                "email_key": f"p{n}@example.org",
                "created_at": BASE,
                "updated_at": BASE,
            }
            (contact_id,) = _insert(conn, contacts, [person])
            sent_at = min(opened_at, registered_at) - timedelta(hours=1)
            message = {
                "wave_id": wave_id,
                "contact_id": contact_id,
                "status": "sent",
                "scheduled_at": sent_at,
                "sent_at": sent_at,
                "created_at": BASE,
                "updated_at": BASE,
            }
            (message_id,) = _insert(conn, messages, [message])
            conn.execute(
                insert(tracking_events).values(
                    message_id=message_id, kind="open", is_machine=False, occurred_at=opened_at
                )
            )
            conn.execute(
                insert(registrations).values(
                    event_id=event_id,
                    contact_id=contact_id,
                    source="webhook",
                    registered_at=registered_at,
                    created_at=BASE,
                )
            )


def hours(report: CampaignReport) -> dict[str, tuple[int, int]]:
    """(opened, registered) by local hour."""
    return {h.start.isoformat(): (h.opened, h.registered) for h in report.hourly}


def test_hours_of_a_half_hour_zone_start_on_its_own_hour(db: Database) -> None:
    def utc(hour: int, minute: int) -> datetime:
        return datetime(2026, 6, 1, hour, minute, tzinfo=UTC)

    # In Kolkata (+05:30) 10:10 UTC is 15:40, 10:15 is 15:45, 10:40 is 16:10 and 11:30 is 17:00: UTC's 10:00 hour
    # spans two of its hours.
    campaign_of(db, "Asia/Kolkata", [(utc(10, 15), utc(10, 40)), (utc(11, 30), utc(10, 10))])
    assert hours(campaign_report(db, "c")) == {
        "2026-06-01T15:00:00+05:30": (1, 1),
        "2026-06-01T16:00:00+05:30": (0, 1),
        "2026-06-01T17:00:00+05:30": (1, 0),
    }
    # Kathmandu is +05:45: 10:10 UTC is 15:55, 10:15 is 16:00, 10:40 is 16:25, 11:30 is 17:15.
    kathmandu = campaign_report(db, "c", zone="asia/kathmandu")
    assert kathmandu.filters.zone == "Asia/Kathmandu"
    assert hours(kathmandu) == {
        "2026-06-01T15:00:00+05:45": (0, 1),
        "2026-06-01T16:00:00+05:45": (1, 1),
        "2026-06-01T17:00:00+05:45": (1, 0),
    }


def test_an_hourly_series_across_dst_changes_keeps_every_local_hour_apart(db: Database) -> None:
    # Zurich, 25 October 2026: 02:00-03:00 happens twice (CEST, then CET); 29 March 2026: 02:00 never happens.
    back = datetime(2026, 10, 25, 0, 40, tzinfo=UTC)  # 02:40 CEST
    forward = datetime(2026, 3, 29, 0, 50, tzinfo=UTC)  # 01:50 CET
    instants = [back, back + timedelta(hours=1), forward, forward + timedelta(hours=1)]
    campaign_of(db, ZURICH, [(at, at) for at in instants])
    assert hours(campaign_report(db, "c")) == {
        "2026-03-29T01:00:00+01:00": (1, 1),
        "2026-03-29T03:00:00+02:00": (1, 1),  # 01:50 UTC: the hour after 01:00 CET is 03:00 CEST
        "2026-10-25T02:00:00+02:00": (1, 1),
        "2026-10-25T02:00:00+01:00": (1, 1),  # the second 02:00, an hour later
    }
    # The same instants in UTC, as another zone sees them.
    assert list(hours(campaign_report(db, "c", zone="UTC"))) == [
        "2026-03-29T00:00:00+00:00",
        "2026-03-29T01:00:00+00:00",
        "2026-10-25T00:00:00+00:00",
        "2026-10-25T01:00:00+00:00",
    ]


def test_dates_without_an_offset_are_in_the_reports_zone() -> None:
    assert parse_moment("2026-06-01", "Asia/Kolkata", "--since") == datetime(2026, 5, 31, 18, 30, tzinfo=UTC)
    assert parse_moment("2026-06-01T09:00", ZURICH, "--since") == datetime(2026, 6, 1, 7, tzinfo=UTC)
    assert parse_moment("2026-06-01T09:00Z", ZURICH, "--since") == datetime(2026, 6, 1, 9, tzinfo=UTC)


# --- --all, and the command line -----------------------------------------------------------------------------------


def test_all_gives_one_line_per_campaign_with_its_own_numbers(db: Database) -> None:
    world = seed(db)
    lines = {line.campaign.name: line for line in campaign_lines(db)}
    assert set(lines) == {"c", "other"}
    assert actual(lines["c"].tally) == expected_tally(world, world.messages)
    assert lines["other"].tally.targeted == len(world.contacts)


def config_for(tmp_path: Path, db: Database) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[database]\nurl = "{db.url.render_as_string(hide_password=False)}"\n')
    return path


def test_the_command_prints_tables_csv_and_json_of_the_same_numbers(db: Database, tmp_path: Path) -> None:
    world = seed(db)
    run = cli_ok(config_for(tmp_path, db))
    table = run("report", "c", "--by", "attr:job_title")
    # 80 columns where the numbers fit beside the names folded; the breakdown's do not (a long job title folded to
    # 20 characters): printed wider, its last column (unsubscribed) whole, where Rich cut it away in 80.
    lines = table.splitlines()
    breakdown = next(i for i, line in enumerate(lines) if line.startswith("By "))
    assert max(len(line) for line in lines[:breakdown]) <= 80
    analyst = next(line for line in lines if line.lstrip().startswith("Analyst "))
    assert len(analyst.split()) == 11, analyst  # the name, 4 counts and 3 counts with their rates
    assert "scribed" in table
    assert "Delivery (messages" in table
    assert "Funnel of invitation" in table
    assert FORMULA[:12] in table  # shown as it is (folded in its column), and harmless on a terminal
    doc = json.loads(run("report", "c", "--format", "json"))
    expected = expected_tally(world, world.messages)
    assert doc["totals"]["messages"]["sent"] == expected["statuses"]["sent"]
    assert doc["totals"]["opened"] == {"human": expected["human_opened"], "machine": expected["machine_opened"]}
    assert doc["totals"]["registered"]["total"] == expected["registered"]
    rows = list(csv.DictReader(io.StringIO(run("report", "c", "--format", "csv", "--wave", "invitation"))))
    assert [r["section"] for r in rows] == ["wave", "total"]
    assert rows[0]["sent"] == rows[1]["sent"] == str(doc["waves"][0]["messages"]["sent"])

    out = tmp_path / "report.json"
    run("report", "c", "--format", "json", "-o", str(out))
    assert json.loads(out.read_text())["totals"] == doc["totals"]
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    again = CliRunner().invoke(cli, ["--config", str(config_for(tmp_path, db)), "report", "c", "-o", str(out)])
    assert again.exit_code == 1
    assert "already exists" in again.output
    run("report", "c", "-o", str(out), "--force")
    assert "Delivery (messages" in out.read_text()

    everything = list(csv.DictReader(io.StringIO(run("report", "--all", "--format", "csv"))))
    assert {r["campaign"]: r["targeted"] for r in everything} == {
        "c": str(len(world.messages)),
        "other": str(len(world.contacts)),
    }
    assert "other" in run("report", "--all")


def test_the_campaigns_table_keeps_every_column_when_it_cannot_fit_80(db: Database, tmp_path: Path) -> None:
    # Eight columns of counts with their rates, beside a long name folded to 20 characters, are wider than 80:
    # Rich squeezed the last one (the bounces) to nothing in a pipe or a file. Wider, then, with every column.
    seed(db)
    with db.write() as conn:
        conn.execute(
            campaigns.update()
            .where(campaigns.c.name == "other")
            .values(name="spring-webinar-for-migrant-workers-europe")
        )
    run = cli_ok(config_for(tmp_path, db))
    table = run("report", "--all")
    header = next(line for line in table.splitlines() if line.lstrip().startswith("campaign"))
    assert header.split() == [
        "campaign",
        "status",
        "targeted",
        "delivered",
        "opened",
        "clicked",
        "registered",
        "bounced",
    ]
    assert len(header) > 80
    bounced = {
        r["campaign"]: r["bounced"] for r in csv.DictReader(io.StringIO(run("report", "--all", "--format", "csv")))
    }
    row = next(line for line in table.splitlines() if line.lstrip().startswith("c "))
    assert row.split()[-1] == bounced["c"]


def test_several_by_give_each_breakdown_in_every_format_in_the_order_asked(db: Database, tmp_path: Path) -> None:
    seed(db)
    run = cli_ok(config_for(tmp_path, db))
    asked = ("attr:job_title", "zone", "country")
    by = [arg for name in asked for arg in ("--by", name)]
    alone = {name: campaign_report(db, "c", by=name).breakdown for name in asked}
    doc = json.loads(run("report", "c", "--format", "json", *by))
    assert [b["by"] for b in doc["breakdowns"]] == list(asked)
    assert doc["breakdown"] == doc["breakdowns"][0]
    assert doc["filters"]["by"] == asked[0]
    for breakdown in doc["breakdowns"]:
        expected = alone[breakdown["by"]]
        assert expected is not None
        assert [(r["key"], r["messages"]["targeted"]) for r in breakdown["rows"]] == [
            (g.key, g.tally.targeted) for g in expected
        ]
    rows = list(csv.DictReader(io.StringIO(run("report", "c", "--format", "csv", *by))))
    sections = [r["section"] for r in rows if r["section"] not in ("wave", "total")]
    assert sections == [name for name in asked for _ in alone[name] or ()]
    table = run("report", "c", *by)
    assert [table.index(f"By {name}") for name in asked] == sorted(table.index(f"By {name}") for name in asked)
    out = tmp_path / "several.html"
    run("report", "c", "--format", "html", "-o", str(out), *by)
    html = out.read_text(encoding="utf-8")
    sections = [html.index(f'id="{section}"') for section in ("breakdown", "breakdown-2", "breakdown-3")]
    assert sections == sorted(sections)
    assert html.index("By attr:job_title") < html.index("By zone") < html.index("By country")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["nope"], "no campaign 'nope'"),
        (["c", "--wave", "nope"], "no wave 'nope'"),
        (["c", "--by", "colour"], "--by 'colour' is not one of zone, country, organisation, locale, attr:NAME"),
        (["c", "--by", "attr:"], "name the custom attribute"),
        (["c", "--zone", "Mars/Base"], "zone 'Mars/Base' is not an IANA time zone"),
        (["c", "--since", "yesterday"], "--since 'yesterday' is not a date or time"),
        # A traceback (an overflow converting to UTC) before.
        (["c", "--since", "0001-01-01"], "--since: 0001-01-01 is out of range: the year must be 1900 to 2999"),
        (["c", "--until", "9999-12-31T23:59-01:00"], "--until: 9999-12-31 is out of range"),
        (["c", "--since", "2026-06-02", "--until", "2026-06-01"], "--until must be later than --since"),
        (["c", "-o", "/nonexistent/dir/r.csv"], "does not exist"),
    ],
)
def test_bad_requests_are_one_line(db: Database, tmp_path: Path, args: list[str], says: str) -> None:
    seed(db, people=4)
    result = CliRunner().invoke(cli, ["--config", str(config_for(tmp_path, db)), "report", *args])
    assert result.exit_code == 1
    assert says in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_campaign_without_messages_or_waves_reports_nothing_happened(db: Database, tmp_path: Path) -> None:
    with db.write() as conn:
        event_id = add_event(conn, "talk")
        (list_id,) = _insert(conn, lists, [{"name": "guests", "created_at": BASE}])
        add_campaign(conn, "draft", event_id, list_id, ["invitation"])
        add_campaign(conn, "empty", event_id, list_id, [])
    draft = campaign_report(db, "draft")
    assert draft.totals.targeted == 0
    assert draft.funnel_wave == "invitation"
    assert [s.of_delivered for s in draft.funnel] == [None] * 4
    assert campaign_report(db, "empty").funnel == ()
    run = cli_ok(config_for(tmp_path, db))
    for name in ("draft", "empty"):
        for fmt in ("table", "csv", "json"):
            run("report", name, "--format", fmt)
    assert json.loads(run("report", "empty", "--format", "json"))["funnel_wave"] is None
    lines = json.loads(run("report", "--all", "--format", "json"))["campaigns"]
    assert [(c["name"], c["totals"]["messages"]["targeted"]) for c in lines] == [("empty", 0), ("draft", 0)]


def test_a_campaign_or_all_is_asked_for(db: Database, tmp_path: Path) -> None:
    config = config_for(tmp_path, db)
    for args in ([], ["c", "--all"], ["--all", "--by", "zone"]):
        result = CliRunner().invoke(cli, ["--config", str(config), "report", *args])
        assert result.exit_code == 2, args


def test_a_real_campaign_sent_and_clicked_end_to_end(tmp_path: Path) -> None:
    """The demo sends a real campaign through the capture server; then a person clicks Register in one message
    (the tracking recorder's own code). The report agrees with the demo and the mailbox."""
    shutil.copytree(DATA / "events", tmp_path / "data" / "events")
    for name in ("contacts.csv", "contacts-with-errors.csv"):
        shutil.copy(DATA / name, tmp_path / "data" / name)
    demo_config = tmp_path / "config.toml"
    demo_config.write_text(f'[paths]\ntemplates = "{Path(__file__).resolve().parent.parent / "templates" / "email"}"\n')
    cli_ok(demo_config)("demo")
    db = Database(f"sqlite:///{tmp_path / 'data' / 'demo' / 'campaign.db'}")
    try:
        with db.read() as conn:
            (message_id, sent_at) = conn.execute(
                select(messages.c.id, messages.c.sent_at)
                .join(waves, waves.c.id == messages.c.wave_id)
                .where(waves.c.name == "invitation", messages.c.contact_id.not_in(select(registrations.c.contact_id)))
                .limit(1)
            ).one()
            register = conn.scalar(select(links.c.link_index).where(links.c.name == REGISTER_LINK).limit(1))
        recorder = HitRecorder(db, TrackingSettings(), clock=lambda: sent_at + timedelta(hours=2))
        ip = "203.0.113.9"
        hits = [
            Hit(TrackingKind.OPEN, message_id, sent_at + timedelta(hours=1), user_agent=CHROME, ip=ip),
            Hit(
                TrackingKind.CLICK,
                message_id,
                sent_at + timedelta(hours=2),
                link_index=register,
                link_name=REGISTER_LINK,
                user_agent=CHROME,
                ip=ip,
            ),
        ]
        assert recorder.write(hits) == 2
        report = campaign_report(db, "demo-invitation")
    finally:
        db.dispose()
    mailbox = list((tmp_path / "data" / "demo" / "mailbox").glob("*.eml"))
    assert report.totals.delivered == len(mailbox) == 137
    assert {w.wave.name: w.tally.delivered for w in report.waves} == {
        "invitation": 41, "last-chance": 27, "reminder-1d": 14, "reminder-1h": 14, "follow-up": 41,
    }  # fmt: skip
    # 14 registered by the link after the invitation, and the one who clicked now; the reminders went to people
    # already registered, so no registration follows them.
    assert report.totals.registered == 15 == report.totals.registered_by_source[RegistrationSource.LINK]
    assert {w.wave.name: w.tally.registered for w in report.waves}["invitation"] == 15
    assert {w.wave.name: w.tally.registered for w in report.waves}["reminder-1d"] == 0
    # The funnel goes through the link: of the one who clicked Register, one registered; the 14 others registered
    # without a click in it (the demo's), beside the funnel, not 1,500% of the step before.
    assert [s.count for s in report.funnel] == [41, 1, 1, 1]
    assert report.funnel_elsewhere == (14, 0)
    assert report.to_registration.count == 15
    assert report.to_open.count == 1
    assert report.to_open.median == 3600


def test_the_time_window_is_shown_on_the_clock_it_was_given_in(db: Database, tmp_path: Path) -> None:
    # It was shown in UTC (2026-05-31 18:30 for a --since of 2026-06-01 in Kolkata): not the day asked for.
    seed(db, people=4)
    table = cli_ok(config_for(tmp_path, db))(
        "report", "c", "--zone", "Asia/Kolkata", "--since", "2026-06-01", "--until", "2026-06-02T09:30"
    )
    words = " ".join(table.split())  # the line is folded at 80 columns
    assert "all waves, from 2026-06-01 00:00 +05:30, until 2026-06-02 09:30 +05:30 · hours in Asia/Kolkata" in words
