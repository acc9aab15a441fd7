"""Campaigns on the staff web through real HTTP: the app on a real uvicorn server on 127.0.0.1 port 0 against a real
SQLite database, spoken to by test_auth's cookie-keeping client.

The site: event ``talk`` in ten days (Zurich), list ``guests`` of a Manila, a Kiritimati and two Zurich contacts,
one of whom is suppressed; staff ann and analyst ana. What the pages show is compared with what the services the
command line uses return, and what they do with the rows in the database and the audit log.
"""

from __future__ import annotations

import email
import email.policy
import html
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import func, select, update

from campaign.config import Settings, load_settings
from campaign.models import AuditAction, CampaignStatus, Role
from campaign.services.campaigns import get_campaign, list_campaigns
from campaign.services.context import AppContext
from campaign.services.events import get_event
from campaign.services.mailbox import capture_mailbox, latest_captured
from campaign.services.rendering import preview_contact, preview_zones
from campaign.services.waves import create_with_waves
from campaign.store.engine import Database
from campaign.store.tables import events, messages
from campaign.web.auth import CSRF_REFUSED
from tests.test_auth import Client, Site, staff_config
from tests.test_dashboard import HOSTILE, add_users
from tests.test_delivery import TEMPLATES
from tests.test_event_changes import suppress
from tests.test_scheduling import ZURICH, add_contacts, add_event_at
from tests.test_web import running

MANILA = "manila@example.org"
KIRITIMATI = "kiritimati@example.org"
PEOPLE = {MANILA: "Asia/Manila", KIRITIMATI: "Pacific/Kiritimati", "z1@example.org": ZURICH, "gone@example.org": ZURICH}
SUPPRESSED = 1


@dataclass
class World:
    site: Site
    settings: Settings
    key: bytes


def make_world(db: Database, tmp_path: Path) -> Iterator[World]:
    """Contacts (one suppressed), an event in ten days, staff and an analyst, the site running on ``db``."""
    add_contacts(db, tmp_path, PEOPLE)
    suppress(db, "gone@example.org")
    add_event_at(db, (datetime.now(UTC) + timedelta(days=10)).replace(second=0, microsecond=0))
    config = staff_config(tmp_path, db)  # https: the launch checks refuse http links
    with config.open("a") as fh:
        fh.write(f'[paths]\ntemplates = "{TEMPLATES}"\n')
    add_users(db, ann=Role.STAFF, ana=Role.ANALYST)
    settings = load_settings(config, environ={})
    key = AppContext(settings_given=settings).signing_key()
    with running(config) as web:
        yield World(Site(db, config, web, []), settings, key)


@pytest.fixture
def world(db: Database, tmp_path: Path) -> Iterator[World]:
    """The world on each backend."""
    yield from make_world(db, tmp_path)


@pytest.fixture
def sqlite_world(sqlite_db: Database, tmp_path: Path) -> Iterator[World]:
    """The world on SQLite only, for browser tests: what a browser adds to the HTTP tests (the page's scripts and
    layout) is the same on either backend, and a browser run costs seconds."""
    yield from make_world(sqlite_db, tmp_path)


def logged_in(world: World, name: str = "ann") -> Client:
    client = world.site.client()
    assert client.log_in(name).status == 303
    return client


def draft(world: World, name: str = "c") -> int:
    """A draft made as ``campaign create`` makes it (the default waves)."""
    details = create_with_waves(world.site.db, world.settings, event_ref="talk", list_name="guests", name=name)
    return details.campaign.id


def audit_actions(world: World) -> list[tuple[str, str | None, str | None]]:
    return [entry for entry in world.site.audit() if entry[0].startswith("campaign-")]


def text_between(body: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}"[^>]*>(.*?)</', body, re.S)
    assert found, element_id
    return html.unescape(found.group(1))


def test_the_form_creates_the_campaign_with_the_default_waves_and_audits_it(world: World) -> None:
    client = logged_in(world)
    page = client.get("/campaigns/new")
    assert page.status == 200
    event_id = str(get_campaign_event_id(world))
    assert f'<option value="{event_id}">' in page.body
    assert '<option value="guests">' in page.body

    made = client.post("/campaigns/new", {"csrf_token": client.csrf(), "name": "", "event": event_id, "list": "guests"})

    assert made.status == 303
    [campaign] = list_campaigns(world.site.db)
    assert (campaign.name, campaign.list_name, campaign.status) == ("talk-guests", "guests", CampaignStatus.DRAFT)
    assert made.headers["location"] == f"/campaigns/{campaign.id}"
    waves = [w.name for w in get_campaign(world.site.db, "talk-guests").waves]
    assert waves == ["invitation", *(spec.name for spec in world.settings.waves.specs)]
    assert audit_actions(world) == [(AuditAction.CAMPAIGN_CREATED.value, "ann", "talk-guests")]


def get_campaign_event_id(world: World) -> int:
    return get_event(world.site.db, "talk").id


def test_a_refused_form_says_why_beside_the_field_and_creates_nothing(world: World) -> None:
    client = logged_in(world)
    draft(world, "taken")
    event_id = str(get_campaign_event_id(world))
    token = client.csrf()

    empty = client.post("/campaigns/new", {"csrf_token": token, "name": "x", "event": "", "list": ""})
    taken = client.post("/campaigns/new", {"csrf_token": token, "name": "taken", "event": event_id, "list": "guests"})

    assert empty.status == taken.status == 400
    assert 'id="event-error"' in empty.body
    assert 'id="list-error"' in empty.body
    assert "already exists" in text_between(taken.body, "name-error")
    assert 'value="taken"' in taken.body  # what was typed stays
    assert [c.name for c in list_campaigns(world.site.db)] == ["taken"]
    assert audit_actions(world) == []


def test_the_preview_shows_each_contacts_own_local_time_as_the_command_line_renders_it(world: World) -> None:
    campaign_id = draft(world)
    client = logged_in(world)
    zones = {z.zone: z.line for z in preview_zones(world.site.db, world.settings, "c")}
    texts = {}
    for address in (MANILA, KIRITIMATI):
        page = client.get(f"/campaigns/{campaign_id}?email={quote(address)}")
        assert page.status == 200
        expected = preview_contact(world.site.db, world.settings, world.key, "c", address)
        assert text_between(page.body, "preview-subject") == expected.subject
        parsed = email.message_from_bytes(expected.eml_path.read_bytes(), policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        body = parsed.get_body(preferencelist=("plain",))
        assert body is not None
        texts[address] = text_between(page.body, "preview-text")
        assert texts[address].strip() == str(body.get_content()).strip()
        frame = client.get(f"/campaigns/{campaign_id}/preview.html?email={quote(address)}")
        assert frame.status == 200
        assert "sandbox" in frame.headers["content-security-policy"]
        assert frame.body == expected.html_path.read_text(encoding="utf-8")
        assert f'sandbox="" title="The invitation as {address} sees it"' in page.body
    assert texts[MANILA] != texts[KIRITIMATI]  # their own clocks: 18 hours apart
    # The zones table: what Manila sees and what Kiritimati sees, as `campaign preview --zones` prints it.
    page = client.get(f"/campaigns/{campaign_id}")
    for zone in ("Asia/Manila", "Pacific/Kiritimati"):
        row = re.search(rf'<tr data-zone="{re.escape(zone)}">(.*?)</tr>', page.body, re.S)
        assert row
        assert html.escape(zones[zone], quote=False) in row.group(1)


def test_a_preview_as_someone_outside_the_audience_is_an_error_beside_the_field(world: World) -> None:
    campaign_id = draft(world)
    page = logged_in(world).get(f"/campaigns/{campaign_id}?email=stranger%40example.org")
    assert page.status == 400
    assert "stranger@example.org" in text_between(page.body, "email-error")
    assert 'id="preview-subject"' not in page.body


def test_the_launch_confirmation_states_the_database_counts_and_the_launch_is_audited(world: World) -> None:
    campaign_id = draft(world)
    client = logged_in(world)
    page = client.get(f"/campaigns/{campaign_id}/launch")
    assert page.status == 200
    assert text_between(page.body, "audience") == str(len(PEOPLE))
    assert text_between(page.body, "suppressed") == str(SUPPRESSED)
    assert text_between(page.body, "first-wave").startswith("invitation")
    assert "No errors: 4 contacts checked" in page.body  # the launch checks, inline

    launched = client.post(f"/campaigns/{campaign_id}/launch", {"csrf_token": client.csrf()})

    assert launched.status == 303, re.findall(r"<li>.*?</li>|class=\"error\"[^<]*", launched.body)
    assert get_campaign(world.site.db, "c").campaign.status is CampaignStatus.SENDING
    with world.site.db.read() as conn:
        by_status: dict[str, int] = dict(
            conn.execute(select(messages.c.status, func.count()).group_by(messages.c.status)).all()
        )
    assert by_status == {"queued": len(PEOPLE) - SUPPRESSED, "suppressed": SUPPRESSED}

    paused = client.post(f"/campaigns/{campaign_id}/status", {"csrf_token": client.csrf(), "to": "pause"})
    assert paused.status == 303
    assert get_campaign(world.site.db, "c").campaign.status is CampaignStatus.PAUSED
    assert audit_actions(world) == [
        (AuditAction.CAMPAIGN_LAUNCHED.value, "ann", "c"),
        (AuditAction.CAMPAIGN_PAUSED.value, "ann", "c"),
    ]
    history = client.get(f"/campaigns/{campaign_id}").body
    assert '<tr data-action="campaign-launched">' in history
    assert '<tr data-action="campaign-paused">' in history
    # The page renders the launch checks only when asked: they render every wave for every contact.
    assert "Run the launch checks" in history
    assert "contacts checked" not in history
    assert "No errors: 4 contacts checked" in client.get(f"/campaigns/{campaign_id}?checks=1").body


def test_the_launch_confirmation_says_which_waves_will_not_go_out_and_whether_the_event_is_past(world: World) -> None:
    # A review launched with waves whose time had passed and an event in the past without a word said before.
    campaign_id = draft(world)
    client = logged_in(world)
    soon = datetime.now(UTC) + timedelta(hours=12)  # the -1d reminder's time has passed
    with world.site.db.write() as conn:
        conn.execute(update(events).values(starts_at=soon, ends_at=soon + timedelta(hours=1)))
    page = client.get(f"/campaigns/{campaign_id}/launch").body
    skipped = page.split('id="skipped-waves"', 1)[1].split("</div>", 1)[0]
    assert "not go out if launched now, their time passed" in skipped
    assert re.search(r"<li>reminder-1d: its time \([^<]*\) has already passed</li>", skipped)
    assert 'id="event-passed"' not in page
    past = datetime.now(UTC) - timedelta(hours=1)
    with world.site.db.write() as conn:
        conn.execute(update(events).values(starts_at=past, ends_at=past + timedelta(hours=2)))
    assert "it is over or under way" in text_between(
        client.get(f"/campaigns/{campaign_id}/launch").body, "event-passed"
    )


def test_a_refused_action_leads_back_to_its_campaign(world: World) -> None:
    # A review met a 409 page whose only link led to the dashboard, away from the campaign it was on.
    campaign_id = draft(world)
    client = logged_in(world)
    assert client.post(f"/campaigns/{campaign_id}/launch", {"csrf_token": client.csrf()}).status == 303
    again = client.post(f"/campaigns/{campaign_id}/launch", {"csrf_token": client.csrf()})
    assert again.status == 409
    assert f'<a href="/campaigns/{campaign_id}">Back to the campaign</a>' in again.body
    assert '<a href="/dashboard">Back to the dashboard</a>' in again.body


def test_failing_launch_checks_are_shown_inline_with_template_line_and_contacts_and_block_the_launch(
    world: World, tmp_path: Path
) -> None:
    # The campaign's own templates, the subject naming an attribute no contact has: every contact fails to render.
    own = tmp_path / "own-templates"
    shutil.copytree(TEMPLATES, own)
    (own / "invitation.subject").write_text("Invitation {{ contact.no_such_field.x }}\n", encoding="utf-8")
    details = create_with_waves(
        world.site.db, world.settings, event_ref="talk", list_name="guests", name="broken", template_dir=own
    )
    client = logged_in(world)
    page = client.get(f"/campaigns/{details.campaign.id}?checks=1")
    assert page.status == 200
    errors = re.findall(r"<li>(.*?)</li>", page.body.split('class="check-errors"', 1)[1].split("</ul>", 1)[0], re.S)
    [subject] = [html.unescape(e) for e in errors if "invitation.subject" in e]
    assert "line 1" in subject
    assert re.search(r"\b\d+ contacts?\b", subject)
    assert any(email in subject for email in PEOPLE)
    # The launch confirmation shows the same errors, and a launch is refused while they stand.
    confirm = client.get(f"/campaigns/{details.campaign.id}/launch")
    assert "invitation.subject" in confirm.body
    refused = client.post(f"/campaigns/{details.campaign.id}/launch", {"csrf_token": client.csrf()})
    assert refused.status != 303
    assert get_campaign(world.site.db, "broken").campaign.status is CampaignStatus.DRAFT


def test_pause_resume_and_cancel_each_confirm_first(world: World) -> None:
    campaign_id = draft(world)
    client = logged_in(world)
    assert ">draft<" in client.get("/dashboard").body  # the dashboard's numbers are kept now...
    confirm = client.get(f"/campaigns/{campaign_id}/status?to=cancel")
    assert confirm.status == 200
    assert 'name="to" value="cancel"' in confirm.body
    assert client.get(f"/campaigns/{campaign_id}/status?to=resume").status == 409  # a draft is not paused
    assert get_campaign(world.site.db, "c").campaign.status is CampaignStatus.DRAFT
    done = client.post(f"/campaigns/{campaign_id}/status", {"csrf_token": client.csrf(), "to": "cancel"})
    assert done.status == 303
    assert get_campaign(world.site.db, "c").campaign.status is CampaignStatus.CANCELLED
    assert audit_actions(world) == [(AuditAction.CAMPAIGN_CANCELLED.value, "ann", "c")]
    # ...and an action forgets them: it showed the status before the action (a web review).
    listed = client.get("/dashboard").body
    assert ">cancelled<" in listed
    assert ">draft<" not in listed


def test_an_analyst_gets_403_on_every_campaign_page_and_action_and_nothing_changes(world: World) -> None:
    campaign_id = draft(world)
    client = logged_in(world, "ana")
    token = client.csrf()
    for path in ("/campaigns/new", f"/campaigns/{campaign_id}", f"/campaigns/{campaign_id}/launch"):
        assert client.get(path).status == 403, path
    assert client.post(f"/campaigns/{campaign_id}/launch", {"csrf_token": token}).status == 403
    assert client.post(f"/campaigns/{campaign_id}/status", {"csrf_token": token, "to": "cancel"}).status == 403
    assert client.post("/campaigns/new", {"csrf_token": token, "event": "talk", "list": "guests"}).status == 403
    assert [(c.name, c.status) for c in list_campaigns(world.site.db)] == [("c", CampaignStatus.DRAFT)]
    assert audit_actions(world) == []


def test_a_post_without_its_csrf_token_is_refused_and_changes_nothing(world: World) -> None:
    campaign_id = draft(world)
    client = logged_in(world)
    for path, form in (
        (f"/campaigns/{campaign_id}/launch", {}),
        (f"/campaigns/{campaign_id}/status", {"to": "cancel"}),
        ("/campaigns/new", {"event": "talk", "list": "guests", "name": "other"}),
    ):
        refused = client.post(path, form)
        assert (refused.status, refused.body) == (403, CSRF_REFUSED), path
    assert [(c.name, c.status) for c in list_campaigns(world.site.db)] == [("c", CampaignStatus.DRAFT)]
    assert audit_actions(world) == []


def test_a_campaign_name_with_markup_is_shown_escaped(world: World) -> None:
    client = logged_in(world)
    event_id = str(get_campaign_event_id(world))
    made = client.post(
        "/campaigns/new", {"csrf_token": client.csrf(), "name": HOSTILE, "event": event_id, "list": "guests"}
    )
    assert made.status == 303, made.body
    for path in (made.headers["location"], made.headers["location"] + "/launch"):
        page = client.get(path)
        assert page.status == 200
        assert HOSTILE not in page.body
        assert str(html.escape(HOSTILE, quote=False)) in page.body or "&lt;script&gt;" in page.body


def test_a_test_send_reaches_the_staff_address_rendered_as_the_contact_chosen_and_is_audited(world: World) -> None:
    campaign_id = draft(world)
    client = logged_in(world)
    token = client.csrf()
    bad = client.post(f"/campaigns/{campaign_id}/test-send", {"csrf_token": token, "to": "not an address"})
    assert bad.status == 400
    assert text_between(bad.body, "test-to-error")
    assert 'id="test-as-error"' not in bad.body
    # A contact to render as that is not one: its error beside its own field, the staff address kept.
    stranger = client.post(
        f"/campaigns/{campaign_id}/test-send",
        {"csrf_token": token, "to": "staff@example.org", "as": "nobody@example.org"},
    )
    assert stranger.status == 400
    assert "nobody@example.org" in text_between(stranger.body, "test-as-error")
    assert 'id="test-to-error"' not in stranger.body
    assert 'value="staff@example.org"' in stranger.body
    # A suppressed address is never sent a test (an attacker review: staff could mail whoever unsubscribed).
    refused = client.post(
        f"/campaigns/{campaign_id}/test-send", {"csrf_token": token, "to": "Gone@Example.org", "as": MANILA}
    )
    assert refused.status == 400
    assert "is suppressed (unsubscribed)" in text_between(refused.body, "test-to-error")

    sent = client.post(
        f"/campaigns/{campaign_id}/test-send", {"csrf_token": token, "to": "staff@example.org", "as": MANILA}
    )

    assert sent.status == 303
    directory = capture_mailbox(world.settings)
    assert directory is not None
    [captured] = latest_captured(directory).messages  # the test, and nothing sent to the suppressed address
    assert captured.to == "staff@example.org"
    assert captured.subject.startswith("[TEST] ")
    assert audit_actions(world) == [(AuditAction.CAMPAIGN_TEST_SENT.value, "ann", "c")]
