"""A campaign's waves on the staff web through real HTTP: the app on a real uvicorn server on 127.0.0.1 port 0 against
a real SQLite file (test_web_campaigns' site: event ``talk`` in ten days, Zurich; list ``guests``; staff ann and
analyst ana), and a real headless Chromium adding a wave and watching the live counts.

What the pages do is checked against the service the command line uses (``list_waves``) and the rows of the
database (waves, outbox, audit log), never against what the page says of itself.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from markupsafe import escape
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait
from sqlalchemy import func, select, update

from campaign.models import AuditAction, CampaignStatus, Role
from campaign.services.lifecycle import launch, move
from campaign.services.mailbox import capture_mailbox, latest_captured
from campaign.services.waves import WaveLine, list_waves
from campaign.store.tables import events, messages, waves
from campaign.web.auth import CSRF_REFUSED
from tests.test_auth import PASSWORDS, Answer
from tests.test_browser import RELOADING, WAIT_SECONDS, browser, log_in_on_the_way, read_now
from tests.test_dashboard import HOSTILE, add_users
from tests.test_web_campaigns import World, draft, logged_in, sqlite_world, text_between, world
from tests.test_web_contacts import ARTIFACTS

__all__ = ["browser", "sqlite_world", "world"]  # fixtures used here

ZURICH = ZoneInfo("Europe/Zurich")
WAVE_ACTIONS = {a.value for a in (AuditAction.CAMPAIGN_WAVE_ADDED, AuditAction.CAMPAIGN_WAVE_EDITED,
                                  AuditAction.CAMPAIGN_WAVE_REMOVED)}  # fmt: skip


def form(token: str, **changes: str) -> dict[str, str]:
    """A valid new-wave form (a reminder two hours before, to the registered), with ``changes``."""
    values = {
        "csrf_token": token, "name": "reminder-2h", "kind": "reminder", "timing": "offset", "offset": "-2h",
        "local": "", "audience": "registered", "window": "mon-fri 09:00-17:00", "expires": "default",
        "template": "", "subject": "Starting soon",
    }  # fmt: skip
    return {**values, **changes}


def version(page: Answer) -> str:
    """The version of the wave an edit page was rendered from, which its form posts back."""
    assert page.status in (200, 409), page.status
    return page.hidden("version")


def lines(world: World) -> dict[str, WaveLine]:
    return {line.name: line for line in list_waves(world.site.db, "c").waves}


def wave_rows(world: World) -> list[tuple[object, ...]]:
    with world.site.db.read() as conn:
        return [tuple(row) for row in conn.execute(select(waves).order_by(waves.c.id))]


def wave_audit(world: World) -> list[tuple[str, str | None, str | None]]:
    return [entry for entry in world.site.audit() if entry[0] in WAVE_ACTIONS]


def test_staff_add_a_wave_then_change_it_as_the_command_line_would_and_both_are_audited(world: World) -> None:
    campaign_id = draft(world)
    client = logged_in(world)
    page = client.get(f"/campaigns/{campaign_id}/waves/new")
    assert page.status == 200
    for field in ("name", "kind", "timing-offset", "offset", "timing-local", "local", "timing-launch", "audience",
                  "window", "expires", "template", "subject"):  # fmt: skip
        assert f'<label for="{field}">' in page.body, field

    added = client.post(f"/campaigns/{campaign_id}/waves/new", form(client.csrf()))

    assert added.status == 303, text_between(added.body, "form-errors") if added.status == 400 else added.status
    assert added.headers["location"] == f"/campaigns/{campaign_id}?done=wave-added#waves"
    wave = lines(world)["reminder-2h"]
    assert (wave.kind, wave.timing, wave.audience, wave.window, wave.subject) == (
        "reminder", "-2h", "registered", "mon-fri 09:00-17:00", "Starting soon",
    )  # fmt: skip
    shown = client.get(f"/campaigns/{campaign_id}").body
    assert re.search(r'<g class="wave-mark wave-pending" data-wave="reminder-2h"', shown)  # on the time axis
    assert '<tr data-wave="reminder-2h"><th scope="row">reminder-2h</th>' in shown  # and in the table

    edit = client.get(f"/campaigns/{campaign_id}/waves/reminder-2h/edit")
    assert edit.status == 200
    assert 'value="-2h"' in edit.body
    assert 'value="Starting soon"' in edit.body
    event_start = list_waves(world.site.db, "c").event.starts_at
    wall = (event_start.astimezone(ZURICH) - timedelta(days=1)).replace(hour=10, minute=15)
    typed = {"timing": "local", "local": f"{wall:%Y-%m-%dT%H:%M}", "window": "", "audience": "all", "subject": ""}
    changed = client.post(
        f"/campaigns/{campaign_id}/waves/reminder-2h/edit", form(client.csrf(), **typed, version=version(edit))
    )

    assert changed.status == 303, changed.body
    wave = lines(world)["reminder-2h"]
    assert wave.planned == wall.astimezone(UTC)  # the event's wall clock, as an instant
    assert (wave.audience, wave.window, wave.subject) == ("all", None, None)
    assert wave_audit(world) == [
        (AuditAction.CAMPAIGN_WAVE_ADDED.value, "ann", "c"),
        (AuditAction.CAMPAIGN_WAVE_EDITED.value, "ann", "c"),
    ]
    history = client.get(f"/campaigns/{campaign_id}").body
    assert '<tr data-action="campaign-wave-added">' in history
    assert '<tr data-action="campaign-wave-edited">' in history


def test_a_form_opened_before_the_events_zone_changed_is_refused_not_saved_hours_off(world: World) -> None:
    # The form shows an absolute time on the organiser's wall clock: saved after the zone changed, the same text
    # would move the wave by the zones' difference (a review saw 6 hours, no word said).
    campaign_id = draft(world)
    tab = logged_in(world)
    path = f"/campaigns/{campaign_id}/waves/reminder-2h/edit"
    start = list_waves(world.site.db, "c").event.starts_at
    wall = (start.astimezone(ZoneInfo("Europe/Zurich")) - timedelta(days=1)).replace(hour=10, minute=15)
    fields = {"timing": "local", "local": f"{wall:%Y-%m-%dT%H:%M}", "window": "", "audience": "all"}
    assert tab.post(f"/campaigns/{campaign_id}/waves/new", form(tab.csrf(), **fields)).status == 303
    page = tab.get(path)
    with world.site.db.write() as conn:
        before = conn.scalar(select(waves.c.send_at).where(waves.c.name == "reminder-2h"))
        conn.execute(update(events).values(timezone="America/New_York"))  # someone else edits the event
    saved = tab.post(path, form(tab.csrf(), **fields, subject="Only the subject changed", version=version(page)))
    assert saved.status == 409
    with world.site.db.read() as conn:
        assert conn.scalar(select(waves.c.send_at).where(waves.c.name == "reminder-2h")) == before


def test_two_tabs_editing_one_wave_the_later_save_is_refused_with_the_form_and_loses_nothing(world: World) -> None:
    # A review: tab 1 saved a new subject; tab 2, opened before it, saved only a new send window, and tab 1's
    # subject was silently put back (tab 2's form still held the old one).
    campaign_id = draft(world)
    first, second = logged_in(world), logged_in(world)
    path = f"/campaigns/{campaign_id}/waves/reminder-2h/edit"
    assert first.post(f"/campaigns/{campaign_id}/waves/new", form(first.csrf())).status == 303
    tab_1, tab_2 = first.get(path), second.get(path)
    assert version(tab_1) == version(tab_2)

    saved = first.post(path, form(first.csrf(), subject="Starting in two hours", version=version(tab_1)))
    assert saved.status == 303
    after_first, audit_after_first = wave_rows(world), wave_audit(world)
    refused = second.post(path, form(second.csrf(), window="09:00-12:00", version=version(tab_2)))

    assert refused.status == 409
    assert "This wave was changed by someone else since" in text_between(refused.body, "form-error")
    assert (wave_rows(world), wave_audit(world)) == (after_first, audit_after_first)  # nothing of it written
    wave = lines(world)["reminder-2h"]
    assert (wave.subject, wave.window) == ("Starting in two hours", "mon-fri 09:00-17:00")  # the first's stands
    assert 'id="window" name="window" type="text" value="09:00-12:00"' in refused.body  # what was typed is kept
    assert 'value="Starting soon"' in refused.body
    assert "Starting in two hours" in text_between(refused.body, "subject-saved")  # what saving would overwrite
    assert 'id="window-saved"' in refused.body
    assert 'id="audience-saved"' not in refused.body  # the same in both

    again = second.get(path)  # reloaded: the values as they are now
    assert 'value="Starting in two hours"' in again.body
    assert version(again) == version(refused)
    done = second.post(
        path, form(second.csrf(), subject="Starting in two hours", window="09:00-12:00", version=version(again))
    )
    assert done.status == 303, done.body
    wave = lines(world)["reminder-2h"]
    assert (wave.subject, wave.window) == ("Starting in two hours", "09:00-12:00")
    assert [a for a, _, _ in wave_audit(world)].count(AuditAction.CAMPAIGN_WAVE_EDITED.value) == 2
    stale = first.post(path, form(first.csrf(), subject="Old tab", version=version(tab_1)))
    assert stale.status == 409
    missing = first.post(path, form(first.csrf(), subject="Without a version"))  # a page from before versions
    assert missing.status == 409
    assert lines(world)["reminder-2h"].subject == "Starting in two hours"


def test_simultaneous_saves_of_one_version_of_a_wave_write_one_and_refuse_the_others(world: World) -> None:
    campaign_id = draft(world)
    clients = [logged_in(world) for _ in range(3)]
    path = f"/campaigns/{campaign_id}/waves/reminder-2h/edit"
    assert clients[0].post(f"/campaigns/{campaign_id}/waves/new", form(clients[0].csrf())).status == 303
    opened = version(clients[0].get(path))
    posts = [form(client.csrf(), subject=f"Subject {n}", version=opened) for n, client in enumerate(clients)]

    with ThreadPoolExecutor(len(clients)) as pool:
        answers = list(pool.map(lambda n: clients[n].post(path, posts[n]), range(len(clients))))

    assert sorted(answer.status for answer in answers) == [303, 409, 409]
    [winner] = [n for n, answer in enumerate(answers) if answer.status == 303]
    assert lines(world)["reminder-2h"].subject == f"Subject {winner}"


@pytest.mark.parametrize("when", ["add", "edit"])
def test_bad_input_in_each_field_is_one_line_beside_it_and_changes_nothing(world: World, when: str) -> None:
    campaign_id = draft(world)
    client = logged_in(world)
    token = client.csrf()
    if when == "edit":
        assert client.post(f"/campaigns/{campaign_id}/waves/new", form(token)).status == 303
    path = f"/campaigns/{campaign_id}/waves/" + ("new" if when == "add" else "reminder-2h/edit")
    opened = {"version": version(client.get(path))} if when == "edit" else {}
    before, audit_before = wave_rows(world), wave_audit(world)
    cases = [
        ("kind", {"kind": "party"}),
        ("at", {"offset": "-7x"}),
        ("at", {"offset": "-7 d"}),  # a space would have shifted the parts of the wave's line
        ("at", {"offset": ""}),
        ("at", {"timing": "local", "local": "2027-03-28T02:30"}),  # Zurich's clocks skip it
        ("at", {"timing": "local", "local": "next tuesday"}),
        ("at", {"offset": "+1d"}),  # a reminder after the start: it would expire before it goes out
        ("at", {"timing": "sometime"}),
        ("audience", {"audience": "vips"}),
        ("window", {"window": "mon-fri 25:00-26:00"}),
        ("expires", {"expires": "soon"}),
        ("expires", {"offset": "-1d", "expires": "-2d"}),
        ("template", {"template": "no-such-template"}),
        ("template", {"template": HOSTILE}),
        ("window", {"window": HOSTILE}),
        ("subject", {"subject": "one\nline\rnot"}),
        ("subject", {"subject": "s" * 1015}),  # was cut to 500 and saved: its end lost without a word
    ]
    if when == "add":
        cases += [("name", {"name": "Not A Name"}), ("name", {"name": ""}), ("name", {"name": "invitation"}),
                  ("name", {"name": HOSTILE})]  # fmt: skip
    for field, changes in cases:
        refused = client.post(path, form(token, **opened, **changes))
        assert refused.status == 400, (field, changes, refused.status)
        errors = re.findall(r'<p class="field-error" id="([a-z]+)-error">([^<]*)</p>', refused.body)
        assert [name for name, _ in errors] == [field], (changes, errors)
        [(_, message)] = errors
        assert message.strip()
        assert "\n" not in message.strip()
        assert "Traceback" not in message
        assert " --" not in message, message  # the form's words, not the command line's options
        assert f'aria-describedby="{field}-error"' in refused.body or f" {field}-error" in refused.body
        assert HOSTILE not in refused.body
        for name, value in changes.items():  # what was typed stays (escaped)
            if name not in ("timing", "kind", "audience") and value and "\n" not in value:
                assert f'value="{escape(value)}"' in refused.body, (name, value)
    assert wave_rows(world) == before
    assert wave_audit(world) == audit_before


def test_several_mistakes_are_said_at_once_each_beside_its_field(world: World) -> None:
    # A review fixed them one save at a time: the offset, then the window, then the expiry.
    campaign_id = draft(world)
    client = logged_in(world)
    before = wave_rows(world)
    changes = {"offset": "-7x", "window": "mon-fri 25:00-26:00", "expires": "soon"}
    refused = client.post(f"/campaigns/{campaign_id}/waves/new", form(client.csrf(), **changes))
    assert refused.status == 400
    errors = dict(re.findall(r'<p class="field-error" id="([a-z]+)-error">([^<]*)</p>', refused.body))
    assert set(errors) == {"at", "window", "expires"}
    assert all(" --" not in message for message in errors.values()), errors
    assert wave_rows(world) == before


def test_a_subject_with_markup_is_kept_as_typed_and_shown_escaped(world: World) -> None:
    campaign_id = draft(world)
    client = logged_in(world)
    assert client.post(f"/campaigns/{campaign_id}/waves/new", form(client.csrf(), subject=HOSTILE)).status == 303
    assert lines(world)["reminder-2h"].subject == HOSTILE
    for path in (f"/campaigns/{campaign_id}", f"/campaigns/{campaign_id}/waves/reminder-2h/edit"):
        page = client.get(path)
        assert page.status == 200
        assert HOSTILE not in page.body
    assert f'value="{escape(HOSTILE)}"' in client.get(f"/campaigns/{campaign_id}/waves/reminder-2h/edit").body


def test_removing_asks_first_and_a_wave_that_went_out_cannot_be_changed(world: World) -> None:
    campaign_id = draft(world)
    client = logged_in(world)
    assert client.post(f"/campaigns/{campaign_id}/waves/new", form(client.csrf())).status == 303

    confirm = client.get(f"/campaigns/{campaign_id}/waves/reminder-2h/remove")
    assert confirm.status == 200
    assert 'id="confirm-remove"' in confirm.body
    assert "reminder-2h" in lines(world)  # asking removed nothing
    removed = client.post(f"/campaigns/{campaign_id}/waves/reminder-2h/remove", {"csrf_token": client.csrf()})
    assert removed.status == 303
    assert "reminder-2h" not in lines(world)
    assert wave_audit(world)[-1] == (AuditAction.CAMPAIGN_WAVE_REMOVED.value, "ann", "c")

    launch(world.site.db, world.settings, world.key, "c")
    assert lines(world)["invitation"].status.value == "enqueued"
    before = wave_rows(world)
    page = client.get(f"/campaigns/{campaign_id}").body
    row = re.search(r'<tr data-wave="invitation">(.*?)</tr>', page, re.S)
    assert row
    assert "history, cannot change" in row.group(1)
    assert "/edit" not in row.group(1)
    token = client.csrf()
    for path, data in (
        ("invitation/edit", form(token, name="invitation", kind="invitation", timing="launch")),
        ("invitation/remove", {"csrf_token": token}),
    ):
        assert client.get(f"/campaigns/{campaign_id}/waves/{path}").status == 409
        refused = client.post(f"/campaigns/{campaign_id}/waves/{path}", data)
        assert refused.status == 409
        assert "can no longer be changed" in refused.body
    assert wave_rows(world) == before
    assert [a for a, _, _ in wave_audit(world)].count(AuditAction.CAMPAIGN_WAVE_REMOVED.value) == 1


def test_a_post_without_its_csrf_token_is_refused_and_an_analyst_gets_403(world: World) -> None:
    campaign_id = draft(world)
    before = wave_rows(world)
    staff = logged_in(world)
    base = f"/campaigns/{campaign_id}/waves"
    without = {k: v for k, v in form("").items() if k != "csrf_token"}
    for path, data in (
        (f"{base}/new", without),
        (f"{base}/invitation/edit", without),
        (f"{base}/invitation/remove", {}),
    ):
        refused = staff.post(path, data)
        assert (refused.status, refused.body) == (403, CSRF_REFUSED), path
    analyst = logged_in(world, "ana")
    token = analyst.csrf()
    for path in (f"{base}/new", f"{base}/invitation/edit", f"{base}/invitation/remove", f"{base}/status"):
        assert analyst.get(path).status == 403, path
    for path in (f"{base}/new", f"{base}/invitation/edit", f"{base}/invitation/remove"):
        assert analyst.post(path, form(token, name="invitation")).status == 403, path
    assert wave_rows(world) == before
    assert wave_audit(world) == []


def fragment_counts(body: str) -> dict[str, dict[str, int]]:
    shown: dict[str, dict[str, int]] = {}
    for wave, cells in re.findall(r'<tr data-wave-counts="([^"]+)">(.*?)</tr>', body, re.S):
        shown[wave] = {status: int(n) for status, n in re.findall(r'data-count="([a-z]+)">(\d+)<', cells)}
    return shown


def outbox_counts(world: World) -> dict[str, dict[str, int]]:
    """The same numbers, counted here from the outbox rows."""
    columns = ("queued", "sending", "sent", "deferred", "failed")
    stmt = (
        select(waves.c.name, messages.c.status, func.count())
        .join(messages, messages.c.wave_id == waves.c.id)
        .group_by(waves.c.name, messages.c.status)
    )
    with world.site.db.read() as conn:
        rows = conn.execute(stmt).all()
        names = conn.execute(select(waves.c.name)).scalars().all()
    counted = {name: dict.fromkeys((*columns, "other", "total"), 0) for name in names}  # a wave of none: zeros
    for wave, status, n in rows:
        entry = counted[wave]
        entry[status if status in columns else "other"] += n
        entry["total"] += n
    return counted


def set_statuses(world: World, wave: str, **how_many: int) -> None:
    """Move some of ``wave``'s queued messages to other statuses, as workers would."""
    with world.site.db.write() as conn:
        wave_id = conn.execute(select(waves.c.id).where(waves.c.name == wave)).scalar_one()
        for status, n in how_many.items():
            ids = select(messages.c.id).where(messages.c.wave_id == wave_id, messages.c.status == "queued").limit(n)
            conn.execute(update(messages).where(messages.c.id.in_(ids.scalar_subquery())).values(status=status))


def test_the_live_counts_equal_the_outbox_rows_and_say_when_to_stop(world: World) -> None:
    campaign_id = draft(world)
    client = logged_in(world)
    none_yet = client.get(f"/campaigns/{campaign_id}/waves/status")
    assert none_yet.status == 200
    assert 'data-live-state="draft"' in none_yet.body
    assert 'id="wave-counts-none"' in none_yet.body
    launch(world.site.db, world.settings, world.key, "c")
    set_statuses(world, "invitation", sent=1, deferred=1, failed=1)

    answer = client.get(f"/campaigns/{campaign_id}/waves/status")

    assert answer.status == 200
    assert 'data-live-state="sending"' in answer.body
    assert "<html" not in answer.body  # a fragment, not a page
    counted = outbox_counts(world)
    assert fragment_counts(answer.body) == counted
    assert {k: counted["invitation"][k] for k in ("sent", "deferred", "failed")} == {"sent": 1, "deferred": 1,
                                                                                     "failed": 1}  # fmt: skip
    page = client.get(f"/campaigns/{campaign_id}")
    assert fragment_counts(page.body.split('id="wave-status"', 1)[1]) == counted  # at load, without script
    assert f'data-live-url="/campaigns/{campaign_id}/waves/status"' in page.body
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "connect-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert '<script src="/static/live.js" defer></script>' in page.body
    script = client.get("/static/live.js")
    assert script.status == 200
    assert "javascript" in script.headers["content-type"]

    move(world.site.db, str(campaign_id), CampaignStatus.PAUSED, "test")
    assert 'data-live-state="paused"' in client.get(f"/campaigns/{campaign_id}/waves/status").body


def test_a_person_adds_a_wave_sees_it_on_the_time_axis_and_watches_the_counts(
    browser: WebDriver, sqlite_world: World
) -> None:
    world = sqlite_world
    ARTIFACTS.mkdir(exist_ok=True)
    campaign_id = draft(world)
    base = f"http://{world.site.web.host}:{world.site.web.port}"
    wait = WebDriverWait(browser, WAIT_SECONDS)
    log_in_on_the_way(browser, wait, f"{base}/campaigns/{campaign_id}", "ann", PASSWORDS["ann"], (1280, 1000))
    browser.find_element(By.ID, "add-wave").click()
    wait.until(expected_conditions.url_contains("/waves/new"))
    browser.find_element(By.ID, "name").send_keys("three-hours")
    browser.find_element(By.CSS_SELECTOR, "#kind option[value='last-chance']").click()
    offset = browser.find_element(By.ID, "offset")
    offset.clear()
    offset.send_keys("-3x")
    browser.find_element(By.CSS_SELECTOR, "button.primary").click()
    error = wait.until(expected_conditions.presence_of_element_located((By.ID, "at-error")))
    assert "-3x" in error.text
    browser.save_screenshot(str(ARTIFACTS / "campaign-wave-form-error.png"))
    offset = browser.find_element(By.ID, "offset")  # the page the answer loaded, with what was typed
    offset.clear()
    offset.send_keys("-3h")
    browser.find_element(By.CSS_SELECTOR, "button.primary").click()
    wait.until(expected_conditions.url_contains("done=wave-added"))
    mark = browser.find_element(By.CSS_SELECTOR, "#timeline g[data-wave='three-hours']")
    assert mark.is_displayed()
    assert "3 h before" in mark.find_element(By.TAG_NAME, "text").text
    # Ten days before (the invitation, at launch), a day, three hours and an hour before: each apart on the axis.
    positions = {
        g.get_attribute("data-wave"): float(g.get_attribute("data-position") or 0)
        for g in browser.find_elements(By.CSS_SELECTOR, "#timeline g[data-wave]")
    }
    assert positions["invitation"] < positions["reminder-1d"] < positions["three-hours"] < positions["reminder-1h"]
    assert positions["reminder-1h"] - positions["three-hours"] >= 3  # percent of the width
    browser.save_screenshot(str(ARTIFACTS / "campaign-waves-timeline.png"))
    browser.set_window_size(390, 844)  # a phone: the page fits its width
    assert browser.execute_script("return document.documentElement.scrollWidth") <= 390
    browser.save_screenshot(str(ARTIFACTS / "campaign-waves-phone.png"))

    # Launched, the page refreshes the counts by itself (static/live.js under the page's policy).
    browser.set_window_size(1280, 1000)
    launch(world.site.db, world.settings, world.key, "c")
    browser.get(f"{base}/campaigns/{campaign_id}")
    cell = "#wave-status tr[data-wave-counts='invitation'] td[data-count='sent']"
    assert browser.find_element(By.CSS_SELECTOR, cell).text == "0"
    set_statuses(world, "invitation", sent=2)
    WebDriverWait(browser, 20, ignored_exceptions=RELOADING).until(lambda driver: read_now(driver, cell) == "2")
    assert browser.find_element(By.ID, "wave-status").get_attribute("data-live-updated")
    browser.execute_script("document.getElementById('wave-status-title').scrollIntoView()")
    browser.save_screenshot(str(ARTIFACTS / "campaign-waves-live.png"))


def test_the_launch_template_settings_and_users_pages_fit_a_phone(sqlite_world: World, browser: WebDriver) -> None:
    # On SQLite alone, as the other browser parts: the layout is the same on either backend.
    world = sqlite_world
    ARTIFACTS.mkdir(exist_ok=True)
    add_users(world.site.db, bob=Role.ADMIN)
    campaign_id = draft(world)
    base = f"http://{world.site.web.host}:{world.site.web.port}"
    wait = WebDriverWait(browser, WAIT_SECONDS)
    log_in_on_the_way(browser, wait, f"{base}/settings", "bob", PASSWORDS["bob"], (390, 844))  # a phone
    # Each page by an element only it has: the page itself, not an error page, is what must fit.
    pages = {
        "launch": (f"/campaigns/{campaign_id}/launch", "audience"),
        "template-editor": (f"/campaigns/{campaign_id}/templates/invitation.html", "editor-form"),
        "settings": ("/settings", "service"),
        "users": ("/users", "users"),
    }
    for name, (path, element) in pages.items():
        browser.get(base + path)
        wait.until(expected_conditions.presence_of_element_located((By.ID, element)))
        width: Any = browser.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], (name, width)  # nothing wider than the phone
        browser.save_screenshot(str(ARTIFACTS / f"{name}-phone.png"))


def _tab_to(browser: WebDriver, element_id: str, most: int = 60) -> None:
    """Press Tab until the element with this id has the focus (a keyboard user's way there), at most ``most``."""
    for _ in range(most):
        if browser.switch_to.active_element.get_attribute("id") == element_id:
            return
        ActionChains(browser).send_keys(Keys.TAB).perform()
    raise AssertionError(f"Tab never reached #{element_id}")


def test_a_person_logs_in_and_sends_a_test_with_the_keyboard_alone(sqlite_world: World, browser: WebDriver) -> None:
    # On SQLite alone, as the other browser parts. No click: Tab, typing and Enter only.
    world = sqlite_world
    campaign_id = draft(world)
    base = f"http://{world.site.web.host}:{world.site.web.port}"
    wait = WebDriverWait(browser, WAIT_SECONDS)
    browser.delete_all_cookies()
    browser.set_window_size(1280, 1000)
    browser.get(f"{base}/campaigns/{campaign_id}")
    wait.until(expected_conditions.url_contains("/login"))
    _tab_to(browser, "name")
    ActionChains(browser).send_keys("ann").perform()
    _tab_to(browser, "password")
    ActionChains(browser).send_keys(PASSWORDS["ann"], Keys.ENTER).perform()
    wait.until(expected_conditions.url_to_be(f"{base}/campaigns/{campaign_id}"))
    _tab_to(browser, "test-to")
    ActionChains(browser).send_keys("staff@example.org").perform()
    _tab_to(browser, "test-as")
    ActionChains(browser).send_keys(Keys.TAB).perform()  # the button after it: Enter presses it
    assert browser.switch_to.active_element.tag_name == "button"
    ActionChains(browser).send_keys(Keys.ENTER).perform()
    wait.until(expected_conditions.url_contains("done="))
    directory = capture_mailbox(world.settings)
    assert directory is not None
    [captured] = latest_captured(directory).messages
    assert captured.to == "staff@example.org"
    assert captured.subject.startswith("[TEST] ")
