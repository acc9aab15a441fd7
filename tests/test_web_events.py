"""Events on the staff web through real HTTP: the app on a real uvicorn server on 127.0.0.1 port 0 against a real
SQLite database, spoken to by test_auth's cookie-keeping client; one pass in a real headless Chromium.

The site: event ``talk`` in ten days with campaign ``c`` launched (test_event_changes' ``invited_campaign``: its
invitation reached two people and one who then unsubscribed), staff ann, admin bob, analyst ana. What the pages
create or change is compared with the event file the command line reads and with the rows in the database.
"""

from __future__ import annotations

import html
import re
import tomllib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from markupsafe import escape
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait
from sqlalchemy import select

from campaign.models import EventStatus, Role, Speaker
from campaign.services.campaigns import get_campaign
from campaign.services.events import get_event, list_events, read_event_file
from campaign.store.engine import Database
from campaign.store.tables import events as events_table
from campaign.web.auth import CSRF_REFUSED
from tests.test_auth import Answer, Client, Site, staff_config
from tests.test_browser import WAIT_SECONDS, browser, left_page
from tests.test_dashboard import ARTIFACTS, HOSTILE, add_users
from tests.test_delivery import TEMPLATES
from tests.test_event_changes import invited_campaign
from tests.test_scheduling import ZURICH
from tests.test_web import running

__all__ = ["browser"]  # a fixture used here

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "events" / "ilo-migrant-workers-2020.toml"
TOLD = 3  # campaign c's invitation reached two people, and one who then unsubscribed (a suppressed notice)
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')
_INPUT = re.compile(r'<input id="[^"]+" name="([^"]+)" type="[a-z]+" value="([^"]*)"')


# ---------------------------------------------------------------------------------------------------------
# The site and the form
# ---------------------------------------------------------------------------------------------------------


def make_site(db: Database, tmp_path: Path, public_url: str = "https://campaign.example.org") -> Iterator[Site]:
    invited_campaign(db, tmp_path)  # writes a config.toml of its own first: the site's replaces it
    config = staff_config(tmp_path, db, public_url)
    with config.open("a") as fh:
        fh.write(f'[paths]\ntemplates = "{TEMPLATES}"\n')
    add_users(db, ann=Role.STAFF, bob=Role.ADMIN, ana=Role.ANALYST)
    with running(config) as web:
        yield Site(db, config, web, [])


@pytest.fixture
def site(db: Database, tmp_path: Path) -> Iterator[Site]:
    """The site on each backend."""
    yield from make_site(db, tmp_path)


def logged_in(site: Site, name: str = "ann") -> Client:
    client = site.client()
    assert client.log_in(name).status == 303
    return client


def talk_id(site: Site) -> int:
    return get_event(site.db, "talk").id


def sample_form() -> dict[str, str]:
    """The sample event file's fields as a person types them into the form."""
    doc: dict[str, Any] = tomllib.loads(SAMPLE.read_text(encoding="utf-8"))
    form = {
        "slug": doc["slug"],
        "title": doc["title"],
        "description": doc["description"],
        "start": doc["start"].strftime("%Y-%m-%dT%H:%M"),
        "end": doc["end"].strftime("%Y-%m-%dT%H:%M"),
        "timezone": doc["timezone"],
        "registration_url": doc["registration_url"],
        "join_url": doc["join_url"],
        "language": doc["language"],
        "organiser_name": doc["organiser"]["name"],
        "organiser_email": doc["organiser"]["email"],
        "rows": str(len(doc["speakers"]) + 1),  # and one blank row, left out
    }
    for number, speaker in enumerate(doc["speakers"], 1):
        form[f"speaker-{number}-name"] = speaker["name"]
        form[f"speaker-{number}-role"] = speaker.get("role", "")
    return form


def post_form(client: Client, path: str, fields: dict[str, str], action: str = "save") -> Answer:
    return client.post(path, {"csrf_token": client.csrf(), **fields, "action": action})


def field_error(page: Answer, name: str) -> str:
    """The error shown beside field ``name`` (its text), after checking the field points at it."""
    found = re.search(rf'<p class="field-error" id="{re.escape(name)}-error">([^<]*)</p>', page.body)
    assert found, f"no error beside {name}"
    field_tag = re.search(rf'<(?:input|textarea) id="{re.escape(name)}"[^>]*>', page.body)
    assert field_tag, name
    assert f"{name}-error" in field_tag.group(0)
    assert 'aria-invalid="true"' in field_tag.group(0)
    return html.unescape(found.group(1))


def field_value(page: Answer, name: str) -> str:
    found = re.search(
        rf'<input id="{re.escape(name)}" name="{re.escape(name)}" type="[a-z]+" value="([^"]*)"', page.body
    )
    assert found, name
    return html.unescape(found.group(1))


def hidden_fields(page: Answer) -> dict[str, str]:
    return {name: html.unescape(value) for name, value in _HIDDEN.findall(page.body)}


def opened(page: Answer) -> dict[str, str]:
    """An edit form's fields as the page shows them (what a browser posts when nothing is typed): every field, the
    speaker rows, and the version of the event it was rendered from."""
    assert page.status in (200, 409), page.status
    fields = {name: html.unescape(value) for name, value in _INPUT.findall(page.body)}
    description = re.search(r'<textarea id="description" name="description"[^>]*>(.*?)</textarea>', page.body, re.S)
    assert description
    fields["description"] = html.unescape(description.group(1))
    return fields | {name: value for name, value in hidden_fields(page).items() if name != "csrf_token"}


def event_rows(db: Database) -> list[tuple[Any, ...]]:
    with db.read() as conn:
        return [tuple(row) for row in conn.execute(select(events_table).order_by(events_table.c.id))]


def wave_names(db: Database) -> list[str]:
    return sorted(w.name for w in get_campaign(db, "c").waves)


# ---------------------------------------------------------------------------------------------------------
# Creating
# ---------------------------------------------------------------------------------------------------------


def test_the_sample_event_made_through_the_form_is_the_event_the_command_line_reads(site: Site) -> None:
    client = logged_in(site)
    form = client.get("/events/new")
    assert form.status == 200
    for name in ("slug", "title", "description", "start", "end", "timezone", "registration_url", "join_url"):
        assert f'<label for="{name}">' in form.body  # every field has its label
    assert '<input id="timezone" name="timezone" type="text" value=""' in form.body
    assert 'list="zones"' in form.body
    # The picker: each zone with its CLDR name and current offset (Kiritimati is UTC+14 all year).
    assert '<option value="Pacific/Kiritimati" label="Line Islands Time, UTC+14:00">' in form.body
    assert '<option value="Asia/Manila" label="Philippine Standard Time, UTC+08:00">' in form.body
    assert '<option value="UTC" label="Coordinated Universal Time, UTC+00:00">' in form.body

    answer = post_form(client, "/events/new", sample_form())
    assert answer.status == 303, answer.body
    made = get_event(site.db, "ilo-migrant-workers-2020")
    assert answer.headers["location"] == f"/events/{made.id}?done=added"
    expected = read_event_file(SAMPLE)
    assert {name: getattr(made, name) for name in expected if name != "speakers"} == {
        name: value for name, value in expected.items() if name != "speakers"
    }
    assert made.speakers == tuple(Speaker(s["name"], s["role"]) for s in expected["speakers"])
    assert (made.starts_at.isoformat(), made.ends_at.isoformat()) == (
        "2020-06-26T11:30:00+00:00",
        "2020-06-26T13:00:00+00:00",
    )
    assert ("event-added", "ann", "ilo-migrant-workers-2020") in site.audit()

    listed = client.get("/events")
    assert listed.status == 200
    row = re.search(r'<tr data-event="ilo-migrant-workers-2020">(.*?)</tr>', listed.body, re.S)
    assert row
    assert "2020-06-26 13:30 Central European Summer Time" in row.group(1)
    assert "scheduled" in row.group(1)
    talk_row = re.search(r'<tr data-event="talk">(.*?)</tr>', listed.body, re.S)
    assert talk_row
    assert ">c</a>" in talk_row.group(1)
    page = client.get(answer.headers["location"])
    assert "Event added." in page.body
    assert 'data-action="event-added"' in page.body
    # The same slug again: refused at the slug field, with everything typed kept.
    again = post_form(client, "/events/new", sample_form())
    assert again.status == 400
    assert "already exists" in field_error(again, "slug")
    assert field_value(again, "title") == sample_form()["title"]


def test_a_start_in_a_dst_gap_or_overlap_and_bad_urls_are_shown_beside_their_fields_keeping_the_input(
    site: Site,
) -> None:
    client = logged_in(site)
    before = event_rows(site.db)
    typed = {**sample_form(), "start": "2026-03-29T02:30", "end": "2026-03-29T04:00",
             "registration_url": "javascript:alert(1)", "join_url": "https://bank@evil.example/join",
             "organiser_email": "not an address", "language": "not-a-language", "title": "T" * 501}  # fmt: skip
    page = post_form(client, "/events/new", typed)
    assert page.status == 400
    assert field_error(page, "start") == (
        "2026-03-29 02:30 does not exist in Europe/Zurich (clocks go forward): give another time"
    )
    assert field_error(page, "registration_url") == "must be an http(s) URL, not 'javascript:alert(1)'"
    assert field_error(page, "join_url").startswith("must not contain a user name or password")
    assert field_error(page, "organiser_email")
    assert 'id="end-error"' not in page.body
    assert field_error(page, "language") == "'not-a-language' is not a known locale (e.g. en, es-CO, pt-PT)"
    assert field_error(page, "title") == "is 501 characters long: at most 500"
    for name in ("start", "title", "timezone", "organiser_name"):
        assert field_value(page, name) == typed[name]  # what was typed stays
    assert field_value(page, "registration_url") == "javascript:alert(1)"
    assert '<p class="error" role="alert" id="form-errors">6 fields to fix' in page.body
    # Clocks going back: the time happens twice, and an offset settles which.
    twice = post_form(client, "/events/new", {**sample_form(), "start": "2026-10-25T02:30", "end": "2026-10-25T04:00"})
    assert field_error(twice, "start") == (
        "2026-10-25 02:30 happens twice in Europe/Zurich (clocks go back): give an offset"
    )
    for url in ("ftp://ilo.example.org/r", "https://ilo.example.org/a b", 'https://x.example/"><script>'):
        bad = post_form(client, "/events/new", {**sample_form(), "registration_url": url})
        assert bad.status == 400
        assert field_error(bad, "registration_url")
    # A speaker's error beside the speaker's row (a role without a name).
    nameless = post_form(client, "/events/new", {**sample_form(), "speaker-3-name": ""})
    assert field_error(nameless, "speaker-3-name") == "is required"
    assert event_rows(site.db) == before  # nothing was added
    made = post_form(
        client, "/events/new", {**sample_form(), "start": "2026-10-25T02:30+01:00", "end": "2026-10-25T04:00"}
    )
    assert made.status == 303
    assert get_event(site.db, "ilo-migrant-workers-2020").starts_at.isoformat() == "2026-10-25T01:30:00+00:00"


def test_an_empty_form_says_every_required_field_the_title_first_not_a_slug_made_from_it(site: Site) -> None:
    # A review found "4 fields to fix" without a word beside the empty title, and the slug blamed for it.
    client = logged_in(site)
    before = event_rows(site.db)
    empty = {name: "" for name in sample_form() if not name.startswith("speaker-")}
    page = post_form(client, "/events/new", empty)
    assert page.status == 400
    assert field_error(page, "title") == "is required"
    assert 'id="slug-error"' not in page.body
    assert field_error(page, "timezone") == "is required"
    assert field_error(page, "start")
    assert field_error(page, "end")
    assert event_rows(site.db) == before


def test_speaker_rows_are_added_moved_and_removed_by_buttons_without_saving(site: Site) -> None:
    client = logged_in(site)
    fields = {**sample_form(), "rows": "3"}
    moved = post_form(client, "/events/new", fields, action="up-2")
    assert moved.status == 200
    assert (field_value(moved, "speaker-1-name"), field_value(moved, "speaker-2-name")) == (
        "H.E. the Hon. Silvestre H. Bello III",
        "Michelle Leighton",
    )
    removed = post_form(client, "/events/new", fields, action="remove-1")
    assert field_value(removed, "speaker-1-name") == "H.E. the Hon. Silvestre H. Bello III"
    assert 'id="speaker-3-name"' not in removed.body
    added = post_form(client, "/events/new", fields, action="add-row")
    assert field_value(added, "speaker-4-name") == ""
    assert [e.slug for e in list_events(site.db)] == ["talk"]  # none of these saved anything


# ---------------------------------------------------------------------------------------------------------
# Who may, and the form's token
# ---------------------------------------------------------------------------------------------------------


def test_an_analyst_gets_403_on_every_event_page_and_action_and_changes_nothing(site: Site) -> None:
    event = talk_id(site)
    analyst = logged_in(site, "ana")
    assert 'href="/events"' not in analyst.get("/dashboard").body  # no link to what they may not do
    assert 'href="/events"' in logged_in(site, "bob").get("/dashboard").body
    before = event_rows(site.db)
    token = analyst.csrf()
    for path in ("/events", "/events/new", f"/events/{event}", f"/events/{event}/edit", f"/events/{event}/cancel"):
        assert analyst.get(path).status == 403, path
    for path in ("/events/new", f"/events/{event}/edit"):
        answer = analyst.post(path, {"csrf_token": token, **sample_form(), "slug": "talk", "action": "confirm"})
        assert answer.status == 403
        assert "Not allowed" in answer.body
    assert analyst.post(f"/events/{event}/cancel", {"csrf_token": token}).status == 403
    assert event_rows(site.db) == before
    assert not [a for a in site.audit() if a[0].startswith("event-")]


def test_a_post_without_its_csrf_token_is_refused_and_changes_nothing(site: Site) -> None:
    event = talk_id(site)
    client = logged_in(site)
    before, waves_before = event_rows(site.db), wave_names(site.db)
    forms = {
        "/events/new": sample_form(),
        f"/events/{event}/edit": {**sample_form(), "slug": "talk", "action": "confirm"},
        f"/events/{event}/cancel": {"action": "confirm"},
    }
    for path, fields in forms.items():
        for token in ({}, {"csrf_token": ""}, {"csrf_token": client.csrf() + "x"}):
            answer = client.post(path, {**token, **fields})
            assert (answer.status, answer.body) == (403, CSRF_REFUSED), path
    assert (event_rows(site.db), wave_names(site.db)) == (before, waves_before)
    assert get_event(site.db, "talk").status is EventStatus.SCHEDULED


def test_what_a_person_types_is_shown_escaped_everywhere(site: Site) -> None:
    client = logged_in(site)
    fields = {**sample_form(), "slug": "hostile", "title": HOSTILE, "description": f"{HOSTILE}\n\nmore {HOSTILE}",
              "speaker-1-name": HOSTILE, "speaker-1-role": HOSTILE, "organiser_name": HOSTILE}  # fmt: skip
    answer = post_form(client, "/events/new", fields)
    assert answer.status == 303
    escaped = str(escape(HOSTILE))  # as Jinja writes it
    pages = [client.get(answer.headers["location"]), client.get("/events")]
    pages.append(client.get(answer.headers["location"].split("?")[0] + "/edit"))
    pages.append(post_form(client, "/events/new", {**fields, "start": "2026-03-29T02:30"}))  # the form with errors
    for page in pages:
        assert HOSTILE not in page.body
        assert "<script" not in page.body
        assert escaped in page.body


# ---------------------------------------------------------------------------------------------------------
# Updating and cancelling
# ---------------------------------------------------------------------------------------------------------


def test_an_edit_is_confirmed_with_who_will_be_told_then_sends_the_update_and_is_audited(site: Site) -> None:
    event = get_event(site.db, "talk")
    client = logged_in(site)
    form = client.get(f"/events/{event.id}/edit")
    assert form.status == 200
    start_local = event.starts_at.astimezone(ZoneInfo(ZURICH))
    assert field_value(form, "start") == start_local.strftime("%Y-%m-%dT%H:%M")
    shown = ("title", "start", "end", "timezone", "registration_url", "join_url", "language", "organiser_name")
    fields = {name: field_value(form, name) for name in (*shown, "organiser_email")}
    fields |= {"description": "", "rows": "0", "version": form.hidden("version")}
    later = start_local + timedelta(days=1)
    moved = {**fields, "start": later.strftime("%Y-%m-%dT%H:%M"),
             "end": (later + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")}  # fmt: skip

    confirm = post_form(client, f"/events/{event.id}/edit", moved)
    assert confirm.status == 200
    assert "Changes: Start, End." in confirm.body
    assert f"an update goes out now to <strong>{TOLD}</strong> people" in confirm.body
    assert '<li data-campaign="c">c (sending, list guests): 3</li>' in confirm.body
    assert get_event(site.db, "talk") == event  # nothing changed yet
    assert "update-1" not in wave_names(site.db)

    done = client.post(f"/events/{event.id}/edit", {**hidden_fields(confirm), "action": "confirm"})
    assert (done.status, done.headers["location"]) == (303, f"/events/{event.id}?done=updated")
    updated = get_event(site.db, "talk")
    assert (updated.starts_at, updated.sequence) == (event.starts_at + timedelta(days=1), 1)
    assert "update-1" in wave_names(site.db)
    assert site.audit()[-1] == ("event-updated", "ann", "talk")
    page = client.get(done.headers["location"])
    assert "changed: starts_at, ends_at" in page.body
    assert "c: wave update-1, 2 queued, 1 suppressed" in page.body

    # A new title only: nobody is told now, and the confirmation says so.
    reopened = client.get(f"/events/{event.id}/edit").hidden("version")  # the form of the event as updated
    retitled = post_form(
        client, f"/events/{event.id}/edit", {**hidden_fields(confirm), "title": "A better talk", "version": reopened}
    )
    assert "Neither time nor place changes: nobody is told now" in retitled.body
    client.post(f"/events/{event.id}/edit", {**hidden_fields(retitled), "action": "confirm"})
    assert (get_event(site.db, "talk").title, get_event(site.db, "talk").sequence) == ("A better talk", 1)
    assert wave_names(site.db).count("update-2") == 0


def test_two_people_editing_one_event_the_later_save_is_refused_with_the_form_and_loses_nothing(site: Site) -> None:
    # As two tabs on a wave's form (a review): the second save, from a form opened before the first, put back what
    # the first had changed, without a word.
    event = get_event(site.db, "talk")
    first, second = logged_in(site), logged_in(site, "bob")
    path = f"/events/{event.id}/edit"
    form_1, form_2 = first.get(path), second.get(path)
    confirm_1 = post_form(first, path, {**opened(form_1), "title": "A better talk"})
    confirm_2 = post_form(second, path, {**opened(form_2), "description": "Bring your questions."})
    assert (confirm_1.status, confirm_2.status) == (200, 200)
    assert first.post(path, {**hidden_fields(confirm_1), "action": "confirm"}).status == 303
    after_first, audit_after_first = event_rows(site.db), site.audit()

    refused = second.post(path, {**hidden_fields(confirm_2), "action": "confirm"})

    assert refused.status == 409
    assert "This event was changed by someone else since you opened this page" in refused.body
    assert (event_rows(site.db), site.audit()) == (after_first, audit_after_first)  # nothing of it written
    assert (get_event(site.db, "talk").title, get_event(site.db, "talk").description) == (
        "A better talk",
        event.description,
    )  # the first's change stands
    assert opened(refused)["description"] == "Bring your questions."  # what was typed is kept
    assert opened(refused)["title"] == event.title
    assert "A better talk" in refused.body.split('id="title-saved"', 1)[1].split("</p>", 1)[0]
    assert 'id="start-saved"' not in refused.body  # the same in both
    # A form opened before the change is refused at its first save too, before a confirmation compares it with an
    # event it was not made from.
    stale = post_form(second, path, {**opened(form_2), "description": "Bring your questions."})
    assert stale.status == 409
    assert "This event was changed by someone else" in stale.body
    without = post_form(second, path, {k: v for k, v in opened(form_2).items() if k != "version"})
    assert without.status == 409

    again = second.get(path)  # reloaded: the event as it is now
    assert opened(again)["title"] == "A better talk"
    confirm = post_form(second, path, {**opened(again), "description": "Bring your questions."})
    assert confirm.status == 200
    assert "Changes: Description." in confirm.body
    done = second.post(path, {**hidden_fields(confirm), "action": "confirm"})
    assert done.status == 303
    updated = get_event(site.db, "talk")
    assert (updated.title, updated.description) == ("A better talk", "Bring your questions.")


def test_a_cancellation_is_confirmed_with_who_will_be_told_then_sent_and_audited(site: Site) -> None:
    event = talk_id(site)
    client = logged_in(site, "bob")
    confirm = client.get(f"/events/{event}/cancel")
    assert confirm.status == 200
    assert f"A cancellation goes out now to <strong>{TOLD}</strong> people" in confirm.body
    assert '<li data-campaign="c">c (sending, list guests): 3</li>' in confirm.body
    assert get_event(site.db, "talk").status is EventStatus.SCHEDULED

    done = client.post(f"/events/{event}/cancel", {"csrf_token": confirm.hidden("csrf_token"), "action": "confirm"})
    assert (done.status, done.headers["location"]) == (303, f"/events/{event}?done=cancelled")
    assert get_event(site.db, "talk").status is EventStatus.CANCELLED
    assert "cancellation" in wave_names(site.db)
    assert site.audit()[-1] == ("event-cancelled", "bob", "talk")
    page = client.get(done.headers["location"])
    assert "Event cancelled" in page.body
    assert "c: wave cancellation, 2 queued, 1 suppressed" in page.body
    assert "/cancel" not in page.body  # nothing more to do to it
    assert client.get(f"/events/{event}/edit").status == 409
    assert client.get(f"/events/{event}/cancel").status == 409


# ---------------------------------------------------------------------------------------------------------
# In a real browser
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def http_site(sqlite_db: Database, tmp_path: Path) -> Iterator[Site]:
    """As ``site``, published over plain http (a browser keeps no Secure cookie from http://127.0.0.1).
    On SQLite only: what the browser adds to the HTTP tests (which run on both backends) is the page's script
    and layout, the same on either, and a browser run costs seconds."""
    yield from make_site(sqlite_db, tmp_path, public_url="http://127.0.0.1")


def test_a_person_fixes_a_dst_gap_in_the_form_and_adds_the_event_at_phone_width(
    browser: WebDriver, http_site: Site
) -> None:
    base = f"http://{http_site.web.host}:{http_site.web.port}"
    browser.delete_all_cookies()
    browser.set_window_size(375, 900)
    browser.get(f"{base}/login?next=/events/new")
    browser.find_element(By.ID, "name").send_keys("ann")
    browser.find_element(By.ID, "password").send_keys("ann's long passphrase")
    browser.find_element(By.CSS_SELECTOR, "button.primary").click()
    wait = WebDriverWait(browser, WAIT_SECONDS)
    wait.until(expected_conditions.url_to_be(f"{base}/events/new"))
    typed = {"slug": "night-talk", "title": "A talk at night", "start": "2026-03-29T02:30", "end": "2026-03-29T04:00",
             "timezone": "Europe/Zurich", "registration_url": "https://events.example.org/register",
             "speaker-1-name": "Ada", "speaker-2-name": "Grace"}  # fmt: skip
    for name, value in typed.items():
        browser.find_element(By.ID, name).send_keys(value)
    browser.find_element(By.ID, "speaker-2-name").send_keys(Keys.ENTER)  # the form's default button: saving
    error = wait.until(expected_conditions.presence_of_element_located((By.ID, "start-error")))
    assert "does not exist in Europe/Zurich" in error.text
    width: Any = browser.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1]  # nothing wider than the phone
    ARTIFACTS.mkdir(exist_ok=True)
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", error)
    browser.save_screenshot(str(ARTIFACTS / "event-form-error.png"))
    assert browser.find_element(By.ID, "title").get_attribute("value") == "A talk at night"
    gone = left_page(browser)
    browser.find_element(By.CSS_SELECTOR, 'button[value="up-2"]').click()  # Grace first
    wait.until(gone)
    start = browser.find_element(By.ID, "start")
    assert start.get_attribute("value") == "2026-03-29T02:30"
    start.clear()
    start.send_keys("2026-03-29T03:30")
    browser.find_element(By.CSS_SELECTOR, "button.primary").click()
    wait.until(expected_conditions.url_contains("?done=added"))
    browser.save_screenshot(str(ARTIFACTS / "event-added.png"))
    made = get_event(http_site.db, "night-talk")
    assert made.starts_at.isoformat() == "2026-03-29T01:30:00+00:00"
    assert [s.name for s in made.speakers] == ["Grace", "Ada"]
