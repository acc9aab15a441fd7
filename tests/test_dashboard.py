"""The analyst dashboard through real HTTP: the app on a real uvicorn server on 127.0.0.1 port 0, against a real
database (SQLite and PostgreSQL), spoken to by test_auth's cookie-keeping client; messages captured by the real
capture server over SMTP; a real headless Chromium for the pages a person uses.

Every number a page shows is compared with a count this test makes itself from the rows it inserted
(test_reports' ``seed`` and ``expected_tally``), never with what the report service says.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import smtplib
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from functools import cache
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait
from sqlalchemy import func, insert, select, update

from campaign.mail.capture import CaptureServer
from campaign.models import AuditAction, Role
from campaign.render.figures import percent
from campaign.rules.access import user_name_key
from campaign.rules.zone_offsets import offset_spans
from campaign.services.report_snapshots import KEPT_FOR, Snapshots
from campaign.services.reports import campaign_report
from campaign.services.users import PASSWORDS as HASHER
from campaign.store import users as user_store
from campaign.store.engine import Database
from campaign.store.tables import campaigns, contacts, messages, report_snapshots, waves
from campaign.web.auth import CSRF_REFUSED, MAX_FORM_BODY
from campaign.web.dashboard import PageNumbers
from campaign.web.mailbox import CAPTURED_HTML_POLICY
from campaign.web.pages import PAGE_POLICY, SCRIPT_PAGE_POLICY, local_time
from campaign.web.report_cache import ReportCache
from tests import test_reports
from tests.conftest import cli_ok
from tests.test_auth import PASSWORDS, Client, Site, staff_config
from tests.test_browser import WAIT_SECONDS, browser, log_in_on_the_way
from tests.test_delivery import TEMPLATES, prepare
from tests.test_report_html import console
from tests.test_reports import (
    BASE,
    LINK_NAMES,
    ZURICH,
    World,
    expected_tally,
    first_opens,
    first_registrations,
    seed,
    through_link,
)
from tests.test_web import running

__all__ = ["browser"]  # a fixture used here

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
UNDELIVERED = ("deferred", "bounced", "failed", "expired")
LATER_WAVE = "last-call"
HOSTILE = '<script>alert("x")</script>'
CHART_TAGS = re.compile(
    r'<script defer src="/static/(uPlot\.iife\.min|charts)\.js"></script>'
    r'|<script type="application/json" id="hourly-chart-data">[^<]*</script>'
)
"""The campaign page's only scripts: the chart's files, and its data island (JSON, every ``<`` escaped)."""


# ---------------------------------------------------------------------------------------------------------
# The site: campaign c of test_reports, a wave still to come, staff ann, admin bob, analyst ana
# ---------------------------------------------------------------------------------------------------------


@cache
def password_hash(name: str) -> str:
    """The argon2id hash of ``name``'s password, made once per run (each takes a quarter of a second)."""
    return HASHER.hash(PASSWORDS[name])


def add_users(db: Database, **roles: Role) -> None:
    """Users with test_auth's passwords, their hashes made once (as ``add_user`` would store them)."""
    with db.write() as conn:
        for name, role in roles.items():
            user_store.insert_user(conn, name, user_name_key(name), role, password_hash(name), datetime.now(UTC))


@dataclass
class Seeded:
    site: Site
    world: World
    campaign_id: int

    @property
    def db(self) -> Database:
        return self.site.db

    @property
    def page(self) -> str:
        return f"/dashboard/campaigns/{self.campaign_id}"

    def client(self, name: str) -> Client:
        client = self.site.client()
        assert client.log_in(name).status == 303
        return client

    def statuses(self) -> Counter[str]:
        """Campaign c's messages by status, as the database has them now."""
        stmt = (
            select(messages.c.status, func.count())
            .join(waves, waves.c.id == messages.c.wave_id)
            .where(waves.c.campaign_id == self.campaign_id)
            .group_by(messages.c.status)
        )
        with self.db.read() as conn:
            return Counter(dict(conn.execute(stmt).all()))


def make_seeded(db: Database, tmp_path: Path, public_url: str = "https://campaign.example.org") -> Iterator[Seeded]:
    config = staff_config(tmp_path, db, public_url)
    with config.open("a") as fh:
        fh.write(f'[paths]\ntemplates = "{TEMPLATES}"\n')
    world = seed(db)
    with db.write() as conn:
        campaign_id = conn.execute(select(campaigns.c.id).where(campaigns.c.name == "c")).scalar_one()
        # Launched before its waves went out, with one wave still to come: the dashboard's "next wave".
        conn.execute(update(campaigns).where(campaigns.c.id == campaign_id).values(launched_at=BASE))
        conn.execute(
            insert(waves).values(
                campaign_id=campaign_id,
                name=LATER_WAVE,
                kind="reminder",
                template="reminder",
                status="pending",
                send_at=BASE + timedelta(days=5),
                created_at=BASE,
            )
        )
    add_users(db, ann=Role.STAFF, bob=Role.ADMIN, ana=Role.ANALYST)
    with running(config) as web:
        yield Seeded(Site(db, config, web, []), world, campaign_id)


@pytest.fixture
def seeded(db: Database, tmp_path: Path) -> Iterator[Seeded]:
    yield from make_seeded(db, tmp_path)


# ---------------------------------------------------------------------------------------------------------
# Reading a page's tables
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Row:
    key: str | None  # the row's data-wave, data-step, data-campaign or data-zone
    cells: list[str] = field(default_factory=list)  # each cell's text, spaces collapsed
    counts: dict[str, int] = field(default_factory=dict)  # each data-count cell's number (before its rate)


class _TableReader(HTMLParser):
    KEYS = ("data-wave", "data-step", "data-campaign", "data-zone")

    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id = table_id
        self.inside = False
        self.rows: list[Row] = []
        self.cell: list[str] | None = None
        self.count: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "table" and found.get("id") == self.table_id:
            self.inside = True
        elif self.inside and tag == "tr":
            self.rows.append(Row(next((found[k] for k in self.KEYS if k in found), None)))
        elif self.inside and tag in ("td", "th"):
            self.cell, self.count = [], found.get("data-count")

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.inside = False
        elif self.inside and tag in ("td", "th") and self.cell is not None:
            text = " ".join("".join(self.cell).split())
            self.rows[-1].cells.append(text)
            if self.count is not None:
                self.rows[-1].counts[self.count] = int(text.split()[0])
            self.cell = None


def table(body: str, table_id: str) -> list[Row]:
    """The rows of the page's table ``table_id`` (its header row first)."""
    reader = _TableReader(table_id)
    reader.feed(body)
    assert reader.rows, f"no table {table_id!r}"
    return reader.rows


def keyed(body: str, table_id: str) -> dict[str | None, Row]:
    return {row.key: row for row in table(body, table_id)[1:]}


# ---------------------------------------------------------------------------------------------------------
# What the pages must show, from the inserted rows alone
# ---------------------------------------------------------------------------------------------------------


def wave_messages(world: World, name: str) -> list[dict[str, Any]]:
    return [m for m in world.messages if world.waves[m["wave_id"]] == name]


def firsts(world: World) -> tuple[dict[int, datetime], dict[int, datetime]]:
    """When each of campaign c's messages was first opened by a person (a click counts), and when each recipient
    registered first, from their first delivered message on: the instants the time tables count."""
    _, joined = first_registrations(world.messages, world.registrations)
    return first_opens(world.hits), joined


def expected_zone_hours(world: World) -> dict[str | None, tuple[Counter[int], Counter[int]]]:
    """People's first opens and registrations by contact zone and local hour there (none: the organiser's)."""
    by_id = {m["id"]: m for m in world.messages}
    opened, joined = firsts(world)
    found: dict[str | None, tuple[Counter[int], Counter[int]]] = {}

    def count(contact_id: int, at: datetime, series: int) -> None:
        zone = world.contacts[contact_id]["timezone"]
        found.setdefault(zone, (Counter(), Counter()))[series][at.astimezone(ZoneInfo(zone or ZURICH)).hour] += 1

    for message_id, at in opened.items():
        count(by_id[message_id]["contact_id"], at, 0)
    for contact_id, at in joined.items():
        count(contact_id, at, 1)
    return found


def peak(counts: Counter[int]) -> str:
    if not counts:
        return "–"
    best = max(counts.values())
    return f"{min(h for h, n in counts.items() if n == best):02d}:00"


# ---------------------------------------------------------------------------------------------------------
# The numbers
# ---------------------------------------------------------------------------------------------------------


def test_the_dashboard_shows_each_campaigns_counts_equal_to_the_rows_inserted(seeded: Seeded) -> None:
    world = seeded.world
    body = seeded.client("ana").get("/dashboard").body  # an analyst sees reports
    rows = keyed(body, "campaigns")
    row = rows[str(seeded.campaign_id)]
    everything = expected_tally(world, world.messages)
    sent = everything["statuses"]["sent"]
    assert row.counts == {"sent": sent, "opened": everything["human_opened"], "registered": everything["registered"]}
    assert row.cells[:3] == ["c", "sending", "guests 48"]
    assert row.cells[4] == f"{everything['human_opened']} {percent(everything['human_opened'] / sent)}"
    assert row.cells[5] == f"{everything['registered']} {percent(everything['registered'] / sent)}"
    # BASE + 5 days, in the organiser's zone
    assert row.cells[6] == f"{LATER_WAVE} 2026-06-06 09:00 Central European Summer Time"
    assert f'href="/dashboard/campaigns/{seeded.campaign_id}"' in body
    assert len(rows) == 2  # and "other"
    assert re.search(r"As of \d\d:\d\d:\d\d Coordinated Universal Time", body)  # logged in without a zone


def test_the_campaign_page_counts_as_of_the_viewers_clock_and_its_hours_in_the_zone_asked(seeded: Seeded) -> None:
    # Two reviews saw "As of" on the organiser's clock here while the dashboard gave the viewer's own.
    client = seeded.site.client()
    assert client.log_in("ana", zone="Asia/Tokyo").status == 303
    body = client.get(seeded.page + "?zone=Asia/Kolkata").body
    assert re.search(r"As of \d\d:\d\d:\d\d Japan Standard Time", body)
    assert "per hour in Asia/Kolkata" in body


def test_the_campaign_page_shows_the_funnel_waves_hours_zones_links_and_failures_of_the_rows_inserted(
    seeded: Seeded,
) -> None:
    world = seeded.world
    client = seeded.client("ana")
    answer = client.get(seeded.page)
    assert answer.status == 200
    assert answer.headers["content-security-policy"] == SCRIPT_PAGE_POLICY
    assert answer.headers["cache-control"] == "no-store"
    body = answer.body
    per_wave = {name: expected_tally(world, wave_messages(world, name)) for name in [*world.waves.values(), LATER_WAVE]}
    everything = expected_tally(world, world.messages)

    # Delivery: every state of every wave, and the total.
    delivery = keyed(body, "delivery")
    for name, expected in per_wave.items():
        assert delivery[name].counts == {
            "targeted": sum(expected["statuses"].values()),
            **expected["statuses"],
        }, name
    assert delivery[None].counts["targeted"] == len(world.messages)
    # Engagement by people, then by machines (a link, not a script).
    people = {
        "delivered": "sent",
        "opened_human": "human_opened",
        "clicked_human": "human_clicked",
        "clicked_register": "register_clicked",
        "registered": "registered",
        "unsubscribed": "unsubscribed",
    }
    engagement = keyed(body, "engagement")
    for name, expected in [*per_wave.items(), ("total", everything)]:
        shown = engagement[name].counts
        assert shown == {k: expected["statuses"][v] if v == "sent" else expected[v] for k, v in people.items()}, name
    assert f'href="{seeded.page}?who=machines"' in body
    machines = keyed(client.get(f"{seeded.page}?who=machines").body, "engagement")
    for name, expected in [*per_wave.items(), ("total", everything)]:
        assert machines[name].counts == {
            "delivered": expected["statuses"]["sent"],
            "opened_machine": expected["machine_opened"],
            "clicked_machine": expected["machine_clicked"],
        }, name

    # The funnel of the invitation.
    invitation = per_wave["invitation"]
    funnel = keyed(body, "funnel")
    delivered = invitation["statuses"]["sent"]
    # The platform's registrations are known: only those, of the people who clicked Register in the wave.
    _, confirmed = through_link(world, wave_messages(world, "invitation"))
    assert {step: int(row.cells[1]) for step, row in funnel.items()} == {
        "delivered": delivered,
        "opened": invitation["human_opened"],
        "clicked_register": invitation["register_clicked"],
        "registered": len(confirmed),
    }
    assert funnel["opened"].cells[2] == percent(invitation["human_opened"] / delivered)
    assert funnel["registered"].cells[3] == percent(len(confirmed) / invitation["register_clicked"])
    assert "Registered: confirmed by the webinar platform" in body
    elsewhere = invitation["confirmed"] - len(confirmed)
    assert elsewhere  # the data have people who registered without clicking: said beside the funnel
    assert f"Not in the funnel: {elsewhere} more registered after it without clicking Register in it" in body

    # Per hour in the organiser's zone; and in another zone, asked for.
    opened, joined = firsts(world)
    clicked: dict[int, datetime] = {}
    for h in world.hits:
        if not h["is_machine"] and h["kind"] == "click":
            clicked[h["message_id"]] = min(clicked.get(h["message_id"], h["occurred_at"]), h["occurred_at"])
    for hours_zone in (ZURICH, "Asia/Kathmandu"):
        hours: dict[str, Counter[str]] = {}
        for series, instants in (("opened", opened), ("clicked", clicked), ("registered", joined)):
            for at in instants.values():
                hour = at.astimezone(ZoneInfo(hours_zone)).replace(minute=0, second=0, microsecond=0)
                hours.setdefault(hour.strftime("%Y-%m-%d %H:%M %z"), Counter())[series] += 1
        page = body if hours_zone == ZURICH else client.get(f"{seeded.page}?zone={hours_zone}").body
        hourly = {row.cells[0]: [int(n) for n in row.cells[1:]] for row in table(page, "hourly")[1:]}
        assert hourly == {h: [c["opened"], c["clicked"], c["registered"]] for h, c in sorted(hours.items())}, hours_zone
        assert list(hourly) == sorted(hourly)  # in order of time
        assert any(label.endswith("+0545") for label in hourly) == (hours_zone == "Asia/Kathmandu")

    # People's own zones and local hours: every zone, its totals, peaks and four-hour columns of opens.
    zones = keyed(body, "zones")
    expected_zones = expected_zone_hours(world)
    assert set(zones) == {zone or "" for zone in expected_zones}
    for zone, (opens, registrations) in expected_zones.items():
        cells = zones[zone or ""].cells
        assert cells[1:5] == [str(opens.total()), peak(opens), str(registrations.total()), peak(registrations)], zone
        assert cells[5:] == [str(sum(opens[h] for h in range(b, b + 4))) for b in range(0, 24, 4)], zone
    assert zones[""].cells[0] == f"no zone (the organiser's, {ZURICH})"
    together: Counter[int] = sum((opens for opens, _ in expected_zones.values()), Counter())
    best = peak(together)
    said = " ".join(re.sub("<[^>]+>", "", body.split('<p id="best-hours">')[1].split("</p>")[0]).split())
    assert said.startswith(f"People opened most between {best} and ")

    # Links: messages clicked in by people and by machines, people's clicks.
    ids = {m["id"]: m for m in world.messages}
    expected_links: dict[tuple[str, str], list[Any]] = {}
    for h in world.hits:
        if h["kind"] == "click":
            key = (world.waves[ids[h["message_id"]]["wave_id"]], LINK_NAMES[h["link_index"]])
            human, machine, clicks = expected_links.setdefault(key, [set(), set(), 0])
            (machine if h["is_machine"] else human).add(h["message_id"])
            expected_links[key][2] = clicks + (0 if h["is_machine"] else 1)
    shown_links = {
        (row.cells[0], row.cells[1].split()[0]): [int(n) for n in row.cells[2:]] for row in table(body, "links")[1:]
    }
    assert shown_links == {key: [len(h), len(m), n] for key, (h, m, n) in expected_links.items()}

    # Who did not get it: how many, and the latest with the server's reply.
    failed = [m for m in world.messages if m["status"] in UNDELIVERED]
    assert f"Not delivered: {len(failed)}</h2>" in body
    failed.sort(key=lambda m: (m["updated_at"], m["id"]), reverse=True)
    shown_failed = [(row.cells[0], row.cells[2], row.cells[4]) for row in table(body, "undelivered")[1:]]
    assert shown_failed == [
        (
            world.contacts[m["contact_id"]]["email"],
            m["status"],
            " ".join(filter(None, [m["smtp_reply"], m["last_error"]])),
        )
        for m in failed[:20]
    ]


def test_one_wave_of_the_campaign_page_counts_its_messages_alone(seeded: Seeded) -> None:
    world = seeded.world
    body = seeded.client("ana").get(f"{seeded.page}?wave=reminder").body
    expected = expected_tally(world, wave_messages(world, "reminder"))
    delivery = keyed(body, "delivery")
    assert set(delivery) == {"reminder", None}
    assert delivery["reminder"].counts == {"targeted": sum(expected["statuses"].values()), **expected["statuses"]}
    assert "<h2>Funnel of reminder</h2>" in body
    # The platform's registrations are known for the event, whatever wave the page is kept to.
    _, confirmed = through_link(world, wave_messages(world, "reminder"))
    assert int(keyed(body, "funnel")["registered"].cells[1]) == len(confirmed)
    assert "Registered: confirmed by the webinar platform" in body
    assert '<option value="reminder" selected>reminder</option>' in body
    assert f'href="{seeded.page}?wave=reminder&amp;who=machines"' in body


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/dashboard/campaigns/999", 404, "no campaign &#39;999&#39;"),
        (
            "/dashboard/campaigns/c?wave=nope",
            404,
            "campaign c has no wave &#39;nope&#39; (its waves: invitation, reminder, last-call)",
        ),
        ("/dashboard/campaigns/c?zone=Mars/Olympus", 400, "zone &#39;Mars/Olympus&#39; is not an IANA time zone"),
    ],
)
def test_a_bad_address_is_a_page_with_one_line_saying_what_to_fix(
    seeded: Seeded, path: str, status: int, says: str
) -> None:
    answer = seeded.client("ana").get(path)
    assert answer.status == status
    assert '<p class="error" role="alert">' in answer.body
    assert says in answer.body
    assert "Traceback" not in answer.body


# ---------------------------------------------------------------------------------------------------------
# Access and the retry action
# ---------------------------------------------------------------------------------------------------------


def test_a_visitor_not_logged_in_is_sent_to_the_login_page_from_every_dashboard_page_and_action(
    seeded: Seeded,
) -> None:
    anonymous = seeded.site.client()
    for page in (seeded.page, "/dashboard/mailbox", "/dashboard/mailbox/1-2-000003"):
        answer = anonymous.get(page)
        assert answer.status == 303
        assert answer.headers["location"].startswith("/login?next=")
        assert "campaign" not in answer.body
    before = seeded.statuses()
    answer = anonymous.post(f"{seeded.page}/retry", {"what": "failed", "csrf_token": "x"})
    assert (answer.status, answer.headers["location"]) == (303, "/login")
    # After the login, the page asked for.
    client = seeded.site.client()
    assert client.log_in("ana", next_page=seeded.page).headers["location"] == seeded.page
    assert seeded.statuses() == before


def test_an_analyst_sees_no_retry_button_and_a_retry_posted_anyway_is_a_403_that_changes_nothing(
    seeded: Seeded,
) -> None:
    analyst = seeded.client("ana")
    page = analyst.get(seeded.page).body
    assert "Not delivered:" in page
    assert "/retry" not in page
    assert "Retry failed" not in page
    assert "Send deferred" not in page
    before = seeded.statuses()
    for what in ("failed", "deferred"):
        answer = analyst.post(f"{seeded.page}/retry", {"what": what, "csrf_token": analyst.csrf()})
        assert answer.status == 403
        assert "whose role (analyst) may not do this" in answer.body
    assert seeded.statuses() == before
    assert not [a for a, *_ in seeded.site.audit() if a.startswith("retry")]


def test_a_retry_without_its_csrf_token_is_refused_and_changes_nothing(seeded: Seeded) -> None:
    staff = seeded.client("ann")
    other = seeded.client("bob")
    before = seeded.statuses()
    for form in ({"what": "failed"}, {"what": "failed", "csrf_token": other.csrf()}):
        answer = staff.post(f"{seeded.page}/retry", form)
        assert (answer.status, answer.body) == (403, CSRF_REFUSED)
    assert seeded.statuses() == before


def test_a_staff_form_over_the_size_limit_is_a_413_before_it_is_read_and_changes_nothing(
    seeded: Seeded,
) -> None:
    staff = seeded.client("ann")
    before = seeded.statuses()
    padding = "x" * (MAX_FORM_BODY + 1)
    answer = staff.post(f"{seeded.page}/retry", {"what": "failed", "csrf_token": staff.csrf(), "p": padding})
    assert answer.status == 413
    assert seeded.statuses() == before
    # Within the limit the same form is read, and acted on.
    assert staff.post(f"{seeded.page}/retry", {"what": "failed", "csrf_token": staff.csrf()}).status == 303


def test_staff_retry_failed_then_deferred_messages_and_each_retry_is_in_the_audit_log(seeded: Seeded) -> None:
    world = seeded.world
    gave_up = sum(1 for m in world.messages if m["status"] in ("failed", "expired"))
    deferred = sum(1 for m in world.messages if m["status"] == "deferred")
    queued = sum(1 for m in world.messages if m["status"] == "queued")
    staff = seeded.client("ann")
    page = staff.get(seeded.page)
    assert "Retry failed and expired messages" in page.body
    assert "Send deferred messages now" in page.body
    token = page.hidden("csrf_token")
    before = seeded.statuses()

    answer = staff.post(f"{seeded.page}/retry", {"what": "failed", "csrf_token": token})
    assert answer.status == 303
    assert answer.headers["location"] == f"{seeded.page}?retried=failed&count={gave_up}"
    after = seeded.statuses()
    assert after["failed"] == after["expired"] == 0
    assert after["queued"] == before["queued"] + gave_up
    # The page counts again at once (the cache forgot), and says what the retry did.
    again = staff.get(answer.headers["location"]).body
    assert f"{gave_up} failed or expired messages queued again" in again
    assert keyed(again, "delivery")[None].counts["queued"] == queued + gave_up

    answer = staff.post(f"{seeded.page}/retry", {"what": "deferred", "csrf_token": token})
    assert answer.headers["location"] == f"{seeded.page}?retried=deferred&count={deferred}"
    assert f"{deferred} deferred messages are due now" in staff.get(answer.headers["location"]).body
    audited = [(a, user, target) for a, user, target in seeded.site.audit() if a.startswith("retry")]
    assert audited == [(AuditAction.RETRY_FAILED, "ann", "c"), (AuditAction.RETRY_DEFERRED, "ann", "c")]
    # Something the form never offers is a one-line page, and does nothing.
    assert staff.post(f"{seeded.page}/retry", {"what": "everything", "csrf_token": token}).status == 400


# ---------------------------------------------------------------------------------------------------------
# Unsafe text
# ---------------------------------------------------------------------------------------------------------


def test_text_from_data_is_escaped_on_every_page(seeded: Seeded) -> None:
    db = seeded.db
    world = seeded.world
    failed = next(m for m in world.messages if m["status"] == "bounced")
    with db.write() as conn:
        conn.execute(update(waves).where(waves.c.name == "reminder").values(name=f"reminder{HOSTILE}"))
        conn.execute(update(campaigns).where(campaigns.c.name == "c").values(name=f"c{HOSTILE}"))
        conn.execute(update(messages).where(messages.c.id == failed["id"]).values(smtp_reply=f"550 {HOSTILE}"))
        # A zone no time zone database knows (counted in UTC) and an address no import would let in.
        conn.execute(
            update(contacts)
            .where(contacts.c.timezone == "Asia/Kolkata")
            .values(timezone="<img src=x onerror=alert(1)>")
        )
        conn.execute(update(contacts).where(contacts.c.id == failed["contact_id"]).values(email=f"a{HOSTILE}@x.org"))
    client = seeded.client("ana")
    for path in ("/dashboard", seeded.page, f"{seeded.page}?who=machines"):
        body = client.get(path).body
        assert "<script" not in CHART_TAGS.sub("", body), path  # the chart's files and data island alone
        assert "<img" not in body, path
    body = client.get(seeded.page).body
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in body
    assert "550 &lt;script&gt;" in body
    assert 'data-zone="&lt;img src=x onerror=alert(1)&gt;"' in body
    assert '<option value="reminder&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;">' in body


def test_the_campaign_page_alone_runs_scripts_and_only_this_sites_chart_files(seeded: Seeded) -> None:
    client = seeded.client("ana")
    for path in (seeded.page, f"{seeded.page}?who=machines&zone=Asia/Kolkata"):
        answer = client.get(path)
        policy = dict(d.split(" ", 1) for d in answer.headers["content-security-policy"].split("; "))
        assert policy["script-src"] == "'self'"  # no inline script, nothing from elsewhere
        assert policy["default-src"] == "'none'"
        assert all(value in ("'self'", "'none'") for value in policy.values()), policy
        scripts = re.findall(r"<script[^>]*>", answer.body)
        assert scripts == [
            '<script defer src="/static/uPlot.iife.min.js">',
            '<script defer src="/static/charts.js">',
            '<script type="application/json" id="hourly-chart-data">',
        ]
        assert '<link rel="stylesheet" href="/static/uPlot.min.css">' in answer.body
        assert '<link rel="stylesheet" href="/static/charts.css">' in answer.body
    # The chart draws the hourly table's numbers; with machines shown, its caption says they are people's.
    hourly = table(answer.body, "hourly")[1:]
    data = re.search(r'id="hourly-chart-data">([^<]*)<', answer.body)
    assert data is not None
    chart = json.loads(html.unescape(data.group(1)))
    assert chart["zone"] == "Asia/Kolkata"
    assert {s["label"]: sum(s["values"]) for s in chart["series"]} == {
        label: sum(int(row.cells[i]) for row in hourly)
        for i, label in enumerate(("Opened", "Clicked", "Registered"), 1)
    }
    assert "people&#39;s counts only" in answer.body
    assert "people&#39;s counts only" not in client.get(seeded.page).body
    # Every other staff page still runs no script at all; the login page only its own (the browser's zone).
    for path in ("/dashboard", "/dashboard/campaigns/999999", f"{seeded.page}?zone=Mars/Olympus"):
        answer = client.get(path)
        assert answer.headers["content-security-policy"] == PAGE_POLICY, path
        assert "script-src" not in PAGE_POLICY
        assert "<script" not in answer.body, path
    login = seeded.site.client().get("/login")
    assert login.headers["content-security-policy"] == SCRIPT_PAGE_POLICY
    scripts = re.findall(r"<script[^>]*>", login.body)
    assert len(scripts) == 1
    assert re.fullmatch(r'<script src="/static/zone\.js\?v=\w+" defer>', scripts[0]), scripts


# ---------------------------------------------------------------------------------------------------------
# The mailbox
# ---------------------------------------------------------------------------------------------------------


def capture(directory: Path, message: EmailMessage) -> str:
    """Send ``message`` to a real capture server over SMTP; the name the mailbox knows it by."""
    with CaptureServer(directory) as server, smtplib.SMTP(server.host, server.port, timeout=10) as smtp:
        smtp.send_message(message, "from@example.org", ["to@example.org"])
    return sorted(directory.glob("*.eml"))[-1].stem


def hostile_message() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Organiser <from@example.org>"
    message["To"] = f'"{HOSTILE}" <to@example.org>'
    message["Subject"] = f"Invitation {HOSTILE}"
    message["X-Note"] = '"><img src=x onerror=alert(1)>'
    message.set_content("Plain text: <b>not bold</b>")
    message.add_alternative(
        f"<html><body><h1>Hello</h1>{HOSTILE}<img src='https://tracker.example/o/abc.gif'></body></html>",
        subtype="html",
    )
    message.add_attachment(
        "BEGIN:VCALENDAR\r\nSUMMARY:<script>\r\nEND:VCALENDAR\r\n", subtype="calendar", filename="invite.ics"
    )
    return message


def test_the_mailbox_lists_captured_messages_and_shows_one_escaped_with_its_html_sandboxed(
    seeded: Seeded,
) -> None:
    directory = seeded.site.config.parent / "data" / "mailbox"
    name = capture(directory, hostile_message())
    client = seeded.client("ana")
    # Capture mode: in the menu of every page (it was on the dashboard's and the mailbox's only: a web review).
    for path in ("/dashboard", "/settings", "/contacts", "/users"):
        assert 'href="/dashboard/mailbox">Mailbox</a>' in seeded.client("ann").get(path).body, path
    assert 'href="/dashboard/mailbox">Mailbox</a>' in client.get("/dashboard").body
    listing = client.get("/dashboard/mailbox")
    assert listing.status == 200
    assert "1 message in" in listing.body
    assert f'href="/dashboard/mailbox/{name}">Invitation &lt;script&gt;' in listing.body
    assert "<script" not in listing.body

    page = client.get(f"/dashboard/mailbox/{name}")
    assert page.status == 200
    assert page.headers["content-security-policy"] == f"{PAGE_POLICY}; frame-src 'self'"
    assert "<script" not in page.body
    assert "<img" not in page.body
    headers = {row.cells[0]: row.cells[1] for row in table(page.body, "headers")}
    assert headers["X-Note"] == '"><img src=x onerror=alert(1)>'  # shown as text
    assert headers["X-Captured-To"] == "to@example.org"
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in page.body
    assert "SUMMARY:&lt;script&gt;" in page.body  # the calendar part, as text
    assert "Plain text: &lt;b&gt;not bold&lt;/b&gt;" in page.body
    frames = re.findall(r"<iframe[^>]*>", page.body)
    assert len(frames) == 1
    assert 'sandbox=""' in frames[0]
    assert f'src="/dashboard/mailbox/{name}/html"' in frames[0]

    html = client.get(f"/dashboard/mailbox/{name}/html")
    assert html.status == 200
    assert html.headers["content-type"] == "text/html; charset=utf-8"
    assert html.headers["content-security-policy"] == CAPTURED_HTML_POLICY
    policy = {directive.split()[0]: directive.split()[1:] for directive in CAPTURED_HTML_POLICY.split(";")}
    assert policy["default-src"] == ["'none'"]  # no script, no connection, nothing fetched
    assert policy["img-src"] == ["data:"]
    assert policy["sandbox"] == []
    assert "script-src" not in policy
    assert html.headers["x-frame-options"] == "SAMEORIGIN"
    assert html.headers["cache-control"] == "no-store"
    assert "<h1>Hello</h1>" in html.body  # the message itself, for the sandbox to show

    # A name that is not one the server gives, or a message that does not exist: the 404 page.
    for wrong in ("..%2F..%2Fconfig.toml", "1-2-3", "1-2-000003"):
        assert client.get(f"/dashboard/mailbox/{wrong}").status == 404
        assert client.get(f"/dashboard/mailbox/{wrong}/html").status == 404


def test_without_the_capture_server_there_is_no_mailbox(db: Database, tmp_path: Path) -> None:
    config = staff_config(tmp_path, db)
    with config.open("a") as fh:
        fh.write('[smtp]\nmode = "relay"\n')
    add_users(db, ana=Role.ANALYST)
    with running(config) as web:
        client = Client(web)
        client.log_in("ana")
        assert "Mailbox" not in client.get("/dashboard").body
        answer = client.get("/dashboard/mailbox")
        assert answer.status == 404
        assert "messages go to a relay, not the capture server" in answer.body


# ---------------------------------------------------------------------------------------------------------
# The model underneath: local hours in each person's zone; the cache
# ---------------------------------------------------------------------------------------------------------


def test_a_zones_offsets_change_to_the_second_at_dst_and_not_in_a_zone_without_it() -> None:
    start, end = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 30, tzinfo=UTC)
    spans = offset_spans(ZURICH, int(start.timestamp()), int(end.timestamp()))
    change = int(datetime(2026, 3, 29, 1, 0, tzinfo=UTC).timestamp())
    assert [(s.since, s.until, s.offset) for s in spans] == [
        (int(start.timestamp()), change, 3600),
        (change, int(end.timestamp()) + 1, 7200),
    ]
    [kolkata] = offset_spans("Asia/Kolkata", int(start.timestamp()), int(end.timestamp()))
    assert kolkata.offset == 19800
    with pytest.raises(ValueError, match="unknown time zone"):
        offset_spans("Mars/Olympus", 0, 10)


def test_local_hours_put_each_person_in_their_own_zones_hour_across_dst_and_half_hour_zones(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The campaign sent over the night clocks went back in Zurich (01:00 UTC): opens on both sides of it.
    monkeypatch.setattr(test_reports, "BASE", datetime(2026, 10, 24, 20, 0, tzinfo=UTC))
    world = seed(db)
    report = campaign_report(db, "c", local_hours=True)
    assert report.local_hours is not None
    shown = {
        z.zone: (Counter(dict(enumerate(z.opened))), Counter(dict(enumerate(z.registered)))) for z in report.local_hours
    }
    # (+counter drops the hours with none)
    assert {zone: (+o, +r) for zone, (o, r) in shown.items()} == expected_zone_hours(world)
    assert {"Asia/Kolkata", ZURICH, None} <= set(shown)
    # Most opens first; the report without local_hours has none.
    opens = [sum(z.opened) for z in report.local_hours]
    assert opens == sorted(opens, reverse=True)
    assert campaign_report(db, "c").local_hours is None


def test_the_cache_serves_fresh_values_refreshes_stale_ones_in_the_background_and_forgets_failures() -> None:
    now = [0.0]
    calls: list[str] = []

    def compute(value: str) -> Any:
        def run() -> str:
            calls.append(value)
            if value == "boom":
                raise RuntimeError("boom")
            return value

        return run

    async def scenario() -> None:
        cache = ReportCache(fresh=10, stale=100, size=2, clock=lambda: now[0])
        first = await cache.get("k", compute("one"))
        assert first.value == "one"
        now[0] = 5
        assert (await cache.get("k", compute("two"))).value == "one"  # fresh: not computed again
        now[0] = 50
        assert (await cache.get("k", compute("two"))).value == "one"  # stale: given at once ...
        await asyncio.sleep(0.1)
        assert (await cache.get("k", compute("three"))).value == "two"  # ... while "two" was computed
        now[0] = 500
        with pytest.raises(RuntimeError):  # too old: waited for, and a failure is nobody's value
            await cache.get("k", compute("boom"))
        assert (await cache.get("k", compute("four"))).value == "four"
        # Ten requests at once share one computation.
        await cache.clear()
        results = await asyncio.gather(*(cache.get("k", compute("five")) for _ in range(10)))
        assert {r.value for r in results} == {"five"}
        # At most `size` keys.
        await cache.get("a", compute("a"))
        await cache.get("b", compute("b"))
        assert (await cache.get("k", compute("six"))).value == "six"
        # Warming computes in the background what is not fresh, and nothing that is.
        cache.warm("k", compute("seven"))
        cache.warm("w", compute("warm"))
        await asyncio.sleep(0.1)
        assert (await cache.get("w", compute("never"))).value == "warm"

    asyncio.run(scenario())
    assert calls == ["one", "two", "boom", "four", "five", "a", "b", "six", "warm"]


def test_a_kept_report_reads_back_equal_to_the_one_counted_and_one_of_another_shape_is_not_read(
    seeded: Seeded,
) -> None:
    db = seeded.db
    report = campaign_report(db, "c", local_hours=True, zone="Asia/Kolkata")  # hours labelled at :30 UTC
    numbers = PageNumbers(report, ("invitation", "reminder"))
    kept = Snapshots(db, PageNumbers)
    assert kept.load("k") is None
    counted = datetime(2026, 6, 1, 9, 30, tzinfo=UTC)
    kept.save("k", numbers, counted)
    back, at = kept.load("k") or pytest.fail("nothing kept")
    assert back == numbers
    assert at == counted
    assert back.report.hourly[0].start.tzinfo == ZoneInfo("Asia/Kolkata")  # labelled in its zone, not +05:30
    assert back.report.local_hours
    assert back.report.totals.statuses == report.totals.statuses
    # Written by another version of the program, or not readable as a page's numbers: a miss, never an error.
    with db.write() as conn:
        conn.execute(update(report_snapshots).values(shape="campaign-report-snapshot/0"))
    assert kept.load("k") is None
    kept.save("k", numbers, counted)
    with db.write() as conn:
        conn.execute(update(report_snapshots).values(body='{"report": 1}'))
    assert kept.load("k") is None
    kept.save("other", numbers, counted)
    kept.save("k", numbers, counted + KEPT_FOR + timedelta(seconds=1))  # those not written for a week go
    with db.read() as conn:
        assert conn.scalars(select(report_snapshots.c.key)).all() == ["k"]


def test_a_restarted_server_answers_the_campaign_page_from_the_kept_count_then_counts_again(
    seeded: Seeded,
) -> None:
    first = seeded.client("ana").get(seeded.page).body
    delivery = keyed(first, "delivery")
    key = f"campaign-page/{seeded.campaign_id}//"
    with seeded.db.write() as conn:  # kept by the first server; made an hour old
        assert conn.scalar(select(report_snapshots.c.key)) == key
        long_ago = datetime.now(UTC) - timedelta(hours=1)
        conn.execute(update(report_snapshots).values(computed_at=long_ago))
    with running(seeded.site.config) as web:
        client = replace(seeded.site, web=web).client()
        assert client.log_in("ana").status == 303
        kept = client.get(seeded.page).body
        shown = local_time(long_ago, "UTC", "%H:%M:%S %Z")  # the viewer's clock: logged in without a zone
        assert f"As of {shown} (1h 00m ago, the last count kept)" in kept
        assert keyed(kept, "delivery") == delivery  # the same numbers, not counted again before answering
        for _ in range(100):  # ... while a new count ran in the background, which the next page shows
            if "the last count kept" not in (fresh := client.get(seeded.page).body):
                break
            time.sleep(0.1)
        assert "counted again when over 10 seconds old" in fresh
        assert keyed(fresh, "delivery") == delivery
    with seeded.db.read() as conn:
        recounted = conn.scalar(select(report_snapshots.c.computed_at).where(report_snapshots.c.key == key))
    assert recounted is not None
    assert recounted > long_ago


# ---------------------------------------------------------------------------------------------------------
# In a real browser
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def http_seeded(sqlite_db: Database, tmp_path: Path) -> Iterator[Seeded]:
    """As ``seeded`` on SQLite, published over plain http (a browser keeps no Secure cookie from http://127.0.0.1).
    On SQLite only: the pages' numbers and the retry are checked over HTTP on both backends above; the browser
    adds the page's scripts and layout, the same on either, and costs seconds."""
    yield from make_seeded(sqlite_db, tmp_path, public_url="http://127.0.0.1")


def test_a_person_reads_the_campaign_page_retries_and_views_a_captured_invitation_in_a_browser(
    browser: WebDriver, http_seeded: Seeded, tmp_path: Path
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    site, world = http_seeded.site, http_seeded.world
    base = f"http://{site.web.host}:{site.web.port}"
    wait = WebDriverWait(browser, WAIT_SECONDS)
    console(browser)  # what earlier pages logged
    log_in_on_the_way(browser, wait, f"{base}{http_seeded.page}", "ann", PASSWORDS["ann"], (1280, 1000))

    # The funnel and the waves, read off the page, against the rows in the database.
    invitation = expected_tally(world, wave_messages(world, "invitation"))
    funnel = {
        row.get_attribute("data-step"): int(row.find_elements(By.TAG_NAME, "td")[0].text)
        for row in browser.find_elements(By.CSS_SELECTOR, "#funnel tbody tr")
    }
    assert funnel == {
        "delivered": invitation["statuses"]["sent"],
        "opened": invitation["human_opened"],
        "clicked_register": invitation["register_clicked"],
        "registered": len(through_link(world, wave_messages(world, "invitation"))[1]),
    }
    for name in world.waves.values():
        cells = browser.find_elements(By.CSS_SELECTOR, f"#delivery tbody tr[data-wave='{name}'] td")
        expected = expected_tally(world, wave_messages(world, name))
        shown = {cell.get_attribute("data-count"): int(cell.text.split()[0]) for cell in cells}
        assert shown == {"targeted": sum(expected["statuses"].values()), **expected["statuses"]}, name
    # The hourly chart, drawn by the scripts the page's policy allows, without an error on the console.
    canvas = wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#hourly-chart canvas"))[0]
    assert canvas.size["width"] > 300
    assert canvas.size["height"] > 100
    legend = browser.find_element(By.CSS_SELECTOR, "#hourly-chart .u-legend").text
    assert all(label in legend for label in ("Opened", "Clicked", "Registered"))
    # (the browser's own request for /favicon.ico, which the service does not have, aside)
    assert [e for e in console(browser) if "/favicon.ico " not in e["message"]] == []
    browser.save_screenshot(str(ARTIFACTS / "dashboard-campaign.png"))

    # The retry, as a person does it: the button, then the page again with what it did.
    gave_up = sum(1 for m in world.messages if m["status"] in ("failed", "expired"))
    browser.find_element(By.XPATH, "//button[normalize-space()='Retry failed and expired messages']").click()
    wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".notice")))
    assert browser.find_element(By.CSS_SELECTOR, ".notice").text.startswith(
        f"{gave_up} failed or expired messages queued again"
    )
    after = http_seeded.statuses()
    assert after["failed"] == after["expired"] == 0

    # At phone width nothing is wider than the screen: wide tables scroll on their own.
    browser.set_window_size(375, 740)
    # The hourly chart is drawn again at the new width by its resize handler, which runs at the window's next
    # frame: until then its canvas keeps the old width (1008 px, seen once in CI).

    def fits(b: WebDriver) -> bool:
        width: Any = b.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
        return bool(width[1] < 400 and width[0] <= width[1])  # resized, and nothing wider than the window

    wait.until(fits, "at phone width the page stays wider than the screen")
    browser.save_screenshot(str(ARTIFACTS / "dashboard-campaign-phone.png"))
    browser.set_window_size(1280, 1000)

    # A real invitation, rendered and sent to the capture server by `campaign test-send`, viewed in the mailbox.
    prepare(http_seeded.db, tmp_path, 1, name="real")
    cli_ok(site.config)("test-send", "real", "--to", "staff@example.org")
    browser.get(f"{base}/dashboard")
    browser.find_element(By.LINK_TEXT, "Mailbox").click()
    wait.until(expected_conditions.url_to_be(f"{base}/dashboard/mailbox"))
    browser.find_element(By.CSS_SELECTOR, "#mailbox tbody a").click()
    wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "iframe.message-frame")))
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith("[TEST] ")
    frame = browser.find_element(By.CSS_SELECTOR, "iframe.message-frame")
    assert frame.get_attribute("sandbox") == ""
    browser.switch_to.frame(frame)
    try:
        text = WebDriverWait(browser, WAIT_SECONDS).until(lambda b: b.find_element(By.TAG_NAME, "body").text)
        assert "Register" in text
        # The tracking image is not loaded (images only as data:), so viewing records no open.
        pixel = browser.find_element(By.CSS_SELECTOR, "img[src*='/o/']")
        assert pixel.get_property("naturalWidth") == 0
    finally:
        browser.switch_to.default_content()
    assert "BEGIN:VCALENDAR" in browser.find_element(By.CSS_SELECTOR, "pre.calendar").text
    browser.save_screenshot(str(ARTIFACTS / "dashboard-mailbox-message.png"))
