"""The template editor through real HTTP: the app on a real uvicorn server on 127.0.0.1 port 0 against a real SQLite
file, spoken to by test_auth's cookie-keeping client; a real headless Chromium for the live preview (htmx).

The site is test_web_campaigns': event ``talk`` in ten days, list ``guests`` of a Manila, a Kiritimati and two
Zurich contacts, staff ann and analyst ana; the default templates are the repository's. What a save did is read
from the files and the database, and from what the command line's preview renders, never from the page alone.
"""

from __future__ import annotations

import hashlib
import html
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlencode

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.command import Command
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from campaign.models import AuditAction, Role
from campaign.services.campaigns import get_campaign
from campaign.services.lifecycle import launch
from campaign.services.rendering import preview_contact
from campaign.services.sessions import Staff
from campaign.services.template_drafts import preview_draft
from campaign.services.waves import create_with_waves
from campaign.store.engine import Database
from campaign.store.tables import sessions
from campaign.store.waves import mark_missed
from campaign.web.auth import CSRF_REFUSED, LOGGED_OUT_FRAGMENT
from campaign.web.templates_editor import MAX_FRAME_CHARACTERS, DraftFrames
from tests.test_auth import HTTPS_SESSION, PASSWORDS, Client
from tests.test_browser import WAIT_SECONDS, browser, log_in_on_the_way, read_now
from tests.test_delivery import TEMPLATES
from tests.test_web_campaigns import MANILA, World, sqlite_world, text_between, world

__all__ = ["browser", "sqlite_world", "world"]  # fixtures used here

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
STATIC = Path(__file__).resolve().parents[1] / "campaign" / "web" / "static"
HTMX_TYPES = ("text/javascript", "application/javascript")


def draft(world: World, template_dir: Path | None = None) -> int:
    details = create_with_waves(
        world.site.db, world.settings, event_ref="talk", list_name="guests", name="c", template_dir=template_dir
    )
    return details.campaign.id


def logged_in(world: World, name: str = "ann") -> Client:
    client = world.site.client()
    assert client.log_in(name).status == 303
    return client


def own_dir(world: World, campaign_id: int) -> Path:
    return world.settings.data_dir / "templates" / f"campaign-{campaign_id}"


def files_under(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` and its bytes (the SQLite database's files by name only: the server writes them)."""
    return {
        str(p.relative_to(root)): b"" if p.name.startswith("campaign.db") else p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def template_actions(world: World) -> list[tuple[str, str | None, str | None]]:
    return [entry for entry in world.site.audit() if entry[0].startswith("campaign-template")]


def save(client: Client, campaign_id: int, name: str, text: str) -> tuple[int, str]:
    answer = client.post(
        f"/campaigns/{campaign_id}/templates/{name}", {"csrf_token": client.csrf(), "text": text, "action": "save"}
    )
    return answer.status, answer.body


def test_editing_the_subject_saves_the_campaigns_own_copy_which_previews_and_renders(world: World) -> None:
    campaign_id = draft(world)
    client = logged_in(world)
    defaults = files_under(TEMPLATES)
    listing = client.get(f"/campaigns/{campaign_id}/templates")
    assert listing.status == 200
    assert f'href="/campaigns/{campaign_id}/templates/invitation.subject"' in listing.body
    assert '<tr data-file="invitation.es.html">' in listing.body
    assert f'href="/campaigns/{campaign_id}/templates"' in client.get(f"/campaigns/{campaign_id}").body
    page = client.get(f"/campaigns/{campaign_id}/templates/invitation.subject")
    assert page.status == 200
    assert "Invitation: A talk" in text_between(page.body, "preview-subject")  # the default, rendered

    # The draft is previewed, not saved: the fragment htmx asks for shows it, and no file appears.
    live = client.post(
        f"/campaigns/{campaign_id}/templates/invitation.subject/preview",
        {"csrf_token": client.csrf(), "text": "Draft <b>{{ event.title }}</b>", "email": MANILA},
    )
    assert live.status == 200
    assert text_between(live.body, "preview-subject") == "Draft <b>A talk</b>"
    assert "<b>A talk" not in live.body  # escaped
    frame = re.search(r'<iframe class="message-frame" sandbox="" [^>]*src="([^"]+)"', live.body)
    assert frame
    shown = client.get(html.unescape(frame.group(1)))
    assert shown.status == 200
    assert "sandbox" in shown.headers["content-security-policy"]
    assert "A talk" in shown.body
    assert logged_in(world, "ana").get(html.unescape(frame.group(1))).status == 403
    # Without JavaScript, the Preview button posts the draft to the page itself: rendered, not saved.
    no_js = client.post(
        f"/campaigns/{campaign_id}/templates/invitation.subject",
        {"csrf_token": client.csrf(), "text": "Plain {{ event.title }}", "email": "", "action": "preview"},
    )
    assert no_js.status == 200
    assert text_between(no_js.body, "preview-subject") == "Plain A talk"
    assert 'value="Plain {{ event.title }}"' in no_js.body
    # A contact outside the audience: on the page, the error beside the "Preview as" field (the preview pane
    # does not repeat it); in the fragment htmx swaps into the pane, the pane says it.
    stranger = {"csrf_token": client.csrf(), "text": "Plain", "email": "nobody@example.org", "action": "preview"}
    refused = client.post(f"/campaigns/{campaign_id}/templates/invitation.subject", stranger)
    assert refused.status == 400
    assert "nobody@example.org" in text_between(refused.body, "email-error")
    assert 'aria-describedby="email-error"' in refused.body
    assert 'id="preview-error"' not in refused.body
    pane = client.post(f"/campaigns/{campaign_id}/templates/invitation.subject/preview", stranger)
    assert "nobody@example.org" in text_between(pane.body, "preview-error")
    assert not own_dir(world, campaign_id).exists()

    status, _ = save(client, campaign_id, "invitation.subject", "Join us: {{ event.title }}")

    assert status == 303
    folder = own_dir(world, campaign_id)
    assert (folder / "invitation.subject").read_text(encoding="utf-8").strip() == "Join us: {{ event.title }}"
    # The Spanish subject came along unchanged: Spanish contacts keep theirs (the campaign's folder wins whole).
    assert (folder / "invitation.es.subject").read_bytes() == (TEMPLATES / "invitation.es.subject").read_bytes()
    assert folder.resolve().is_relative_to(world.settings.data_dir.resolve())
    assert files_under(TEMPLATES) == defaults  # the default files are untouched
    assert get_campaign(world.site.db, "c").campaign.template_dir == str(folder.resolve())
    # What the command line previews and the campaign page shows is the new subject.
    assert preview_contact(world.site.db, world.settings, world.key, "c", MANILA).subject == "Join us: A talk"
    page = client.get(f"/campaigns/{campaign_id}?email={quote(MANILA)}")
    assert text_between(page.body, "preview-subject") == "Join us: A talk"
    assert '<tr data-action="campaign-template-saved">' in page.body  # the campaign's history
    assert template_actions(world) == [(AuditAction.CAMPAIGN_TEMPLATE_SAVED.value, "ann", "c")]
    saved = client.get(f"/campaigns/{campaign_id}/templates/invitation.subject?done=saved")
    assert 'value="Join us: {{ event.title }}"' in saved.body
    listing = client.get(f"/campaigns/{campaign_id}/templates")
    row = re.search(r'<tr data-file="invitation.subject">(.*?)</tr>', listing.body, re.S)
    assert row
    assert "the campaign's own copy" in row.group(1)


def test_a_syntax_error_or_an_undefined_variable_is_shown_with_its_line_and_nothing_is_written(world: World) -> None:
    campaign_id = draft(world)
    client = logged_in(world)
    body = (TEMPLATES / "invitation.html").read_text(encoding="utf-8").splitlines()
    broken = "\n".join([*body[:2], "{% if %}", *body[2:]])
    undefined = "\n".join([*body[:2], "<p>{{ contact.job_title }}</p>", *body[2:]])

    status, page = save(client, campaign_id, "invitation.html", broken)
    assert status == 400
    assert "invitation.html, line 3" in text_between(page, "text-error")
    assert html.escape("{% if %}") in page  # what was typed is kept, escaped
    # The live preview says the same (the tag alone, with no HTML around it, too), never the CSS inliner's
    # trouble with what it could not read (a review saw both for one typo).
    for typed, line in ((broken, 3), ("{% if %}", 1)):
        preview = preview_draft(world.site.db, world.settings, world.key, "c", "invitation.html", typed, "")
        assert preview.error is not None
        assert f"invitation.html, line {line}" in preview.error
    # HTML with no element in it (blanks, a comment) is refused with one line, not a failure inside the inliner.
    for blank in ("   \n", "<!-- later -->"):
        status, page = save(client, campaign_id, "invitation.html", blank)
        assert status == 400
        assert "no HTML element: write the message" in text_between(page, "text-error")

    status, page = save(client, campaign_id, "invitation.html", undefined)
    assert status == 400
    error = text_between(page, "text-error")
    assert "invitation.html, line 3: undefined variable contact.job_title" in error
    assert MANILA in error or re.search(r"\b\d+ contacts?\b", error)

    status, page = save(client, campaign_id, "invitation.subject", "Hi {{ contact.job_title }}")
    assert status == 400
    assert "invitation.subject, line 1: undefined variable contact.job_title" in text_between(page, "text-error")
    assert not (world.settings.data_dir / "templates").exists()
    assert get_campaign(world.site.db, "c").campaign.template_dir is None
    assert template_actions(world) == []


def test_a_line_break_in_a_subject_is_refused(world: World) -> None:
    campaign_id = draft(world)
    client = logged_in(world)
    for text in ("Hi\r\nBcc: all@example.org", "Hi\nBcc: all@example.org", "Hi\rthere"):
        status, page = save(client, campaign_id, "invitation.subject", text)
        assert status == 400, text
        assert "one line" in text_between(page, "text-error")
    assert not (world.settings.data_dir / "templates").exists()


def test_file_names_outside_the_allowlist_are_not_found_and_nothing_is_written(world: World, tmp_path: Path) -> None:
    campaign_id = draft(world)
    client = logged_in(world)
    before = files_under(tmp_path)
    token = client.csrf()
    for name in (
        "..%2F..%2Fconfig.toml",
        "%2Fetc%2Fpasswd",
        "..%2Finvitation.html",
        "%2E%2E",
        "base.html",  # not a template of a wave
        "invitation.EN.html",  # a locale not in its canonical form
        "invitation.xx-zz-qq.html",
        "invitation.html.bak",
        "invitation.html%00.subject",
        "secret.key",
    ):
        path = f"/campaigns/{campaign_id}/templates/{name}"
        assert client.get(path).status in (400, 404), name
        saved = client.post(path, {"csrf_token": token, "text": "x {{ event.title }}", "action": "save"})
        assert saved.status in (400, 404), name
        assert client.post(path + "/revert", {"csrf_token": token}).status in (400, 404), name
    raw = client.request("GET", f"/campaigns/{campaign_id}/templates/../../../config.toml")
    assert raw.status in (400, 404)
    variant = client.get(f"/campaigns/{campaign_id}/templates?kind=invitation&ext=html&locale=..%2F..%2Fx")
    assert variant.status == 400
    assert "not a known locale" in text_between(variant.body, "locale-invitation-error")
    assert files_under(tmp_path) == before
    assert get_campaign(world.site.db, "c").campaign.template_dir is None


def test_a_new_locale_variant_opens_from_the_file_serving_that_locale(world: World) -> None:
    campaign_id = draft(world)
    client = logged_in(world)
    opened = client.get(f"/campaigns/{campaign_id}/templates?kind=reminder&ext=subject&locale=pt_br")
    assert opened.status == 303
    assert opened.headers["location"] == f"/campaigns/{campaign_id}/templates/reminder.pt-BR.subject"
    page = client.get(opened.headers["location"])
    assert page.status == 200
    assert "starting from reminder.subject" in page.body
    status, _ = save(client, campaign_id, "reminder.pt-BR.subject", "Lembrete: {{ event.title }}")
    assert status == 303
    assert (own_dir(world, campaign_id) / "reminder.pt-BR.subject").is_file()
    assert not (own_dir(world, campaign_id) / "reminder.subject").exists()  # only the variant: others unchanged


def test_an_analyst_gets_403_and_a_post_without_its_token_is_refused(world: World) -> None:
    campaign_id = draft(world)
    analyst = logged_in(world, "ana")
    token = analyst.csrf()
    base = f"/campaigns/{campaign_id}/templates"
    assert analyst.get(base).status == 403
    assert analyst.get(f"{base}/invitation.subject").status == 403
    form = {"csrf_token": token, "text": "Hacked {{ event.title }}", "action": "save"}
    assert analyst.post(f"{base}/invitation.subject", form).status == 403
    assert analyst.post(f"{base}/invitation.subject/preview", form).status == 403
    assert analyst.post(f"{base}/invitation.subject/revert", {"csrf_token": token}).status == 403
    staff = logged_in(world)
    refused = staff.post(f"{base}/invitation.subject", {"text": "No token {{ event.title }}", "action": "save"})
    assert (refused.status, refused.body) == (403, CSRF_REFUSED)
    assert staff.post(f"{base}/invitation.subject/preview", {"text": "x"}).status == 403
    assert not (world.settings.data_dir / "templates").exists()
    assert template_actions(world) == []


def test_revert_removes_the_campaigns_copy(world: World) -> None:
    campaign_id = draft(world)
    client = logged_in(world)
    assert save(client, campaign_id, "invitation.subject", "Mine: {{ event.title }}")[0] == 303
    assert (
        client.post(f"/campaigns/{campaign_id}/templates/invitation.html/revert", {"csrf_token": client.csrf()}).status
        == 409
    )

    reverted = client.post(
        f"/campaigns/{campaign_id}/templates/invitation.subject/revert", {"csrf_token": client.csrf()}
    )

    assert reverted.status == 303
    assert not own_dir(world, campaign_id).exists()  # the copied variant went too: it was the default's text
    assert get_campaign(world.site.db, "c").campaign.template_dir is None
    assert preview_contact(world.site.db, world.settings, world.key, "c", MANILA).subject.startswith("Invitation:")
    assert template_actions(world) == [
        (AuditAction.CAMPAIGN_TEMPLATE_SAVED.value, "ann", "c"),
        (AuditAction.CAMPAIGN_TEMPLATE_REVERTED.value, "ann", "c"),
    ]


def test_a_launched_waves_template_does_not_change_but_a_pending_waves_does(world: World) -> None:
    campaign_id = draft(world)
    launch(world.site.db, world.settings, world.key, "c")  # the invitation wave is queued
    client = logged_in(world)
    page = client.get(f"/campaigns/{campaign_id}/templates/invitation.subject")
    assert "has been queued or sent" in text_between(page.body, "refusal")
    assert 'value="save"' not in page.body

    status, body = save(client, campaign_id, "invitation.subject", "Changed: {{ event.title }}")

    assert status == 409
    assert "has been queued or sent" in text_between(body, "text-error")
    assert not (world.settings.data_dir / "templates").exists()
    reminder = next(w for w in get_campaign(world.site.db, "c").waves if w.template == "reminder")
    assert reminder.status == "pending"
    assert save(client, campaign_id, "reminder.subject", "Soon: {{ event.title }}")[0] == 303
    assert (own_dir(world, campaign_id) / "reminder.subject").is_file()


def test_a_missed_wave_made_no_message_and_holds_no_template_back(world: World) -> None:
    # A reminder whose time passed before launch is missed: it never queued a message, so the other reminders
    # sharing its template must still be editable (a review found them all read-only).
    campaign_id = draft(world)
    launch(world.site.db, world.settings, world.key, "c")
    reminder = next(w for w in get_campaign(world.site.db, "c").waves if w.template == "reminder")
    with world.site.db.write() as conn:
        assert mark_missed(conn, reminder.id, "its time passed before the launch")
    client = logged_in(world)
    page = client.get(f"/campaigns/{campaign_id}/templates/reminder.subject")
    assert 'value="save"' in page.body
    assert save(client, campaign_id, "reminder.subject", "Soon: {{ event.title }}")[0] == 303


def test_a_template_folder_outside_the_data_folder_is_not_edited_from_the_web(world: World, tmp_path: Path) -> None:
    outside = tmp_path / "mine"
    shutil.copytree(TEMPLATES, outside)
    before = files_under(outside)
    campaign_id = draft(world, template_dir=outside)
    client = logged_in(world)
    status, body = save(client, campaign_id, "invitation.subject", "Elsewhere: {{ event.title }}")
    assert status == 409
    assert "outside the data folder" in text_between(body, "text-error")
    assert files_under(outside) == before


def test_htmx_is_served_from_the_package_as_recorded_and_only_the_editor_loads_it(world: World) -> None:
    campaign_id = draft(world)
    client = logged_in(world)
    recorded = re.search(r"sha256 ([0-9a-f]{64})  htmx\.min\.js", (STATIC / "VENDORED.md").read_text())
    assert recorded
    page = client.get(f"/campaigns/{campaign_id}/templates/invitation.html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self';" in policy
    assert "unsafe" not in policy.split("style-src")[0]  # no inline script, no eval
    src = re.search(r'<script src="(/static/htmx\.min\.js\?v=[0-9a-f]+)" defer></script>', page.body)
    assert src
    served = client.request("GET", src.group(1))
    assert served.status == 200
    assert served.headers["content-type"].split(";")[0] in HTMX_TYPES
    assert "immutable" in served.headers["cache-control"]
    assert hashlib.sha256(served.body.encode()).hexdigest() == recorded.group(1)
    assert "htmx" not in client.get(f"/campaigns/{campaign_id}").body.split("<main>")[0]
    assert "htmx.min.js" not in client.get("/dashboard").body


def test_a_person_edits_the_subject_and_sees_the_preview_follow_in_a_browser(
    browser: WebDriver, sqlite_world: World
) -> None:
    world = sqlite_world
    ARTIFACTS.mkdir(exist_ok=True)
    campaign_id = draft(world)
    base = f"http://{world.site.web.host}:{world.site.web.port}"
    wait = WebDriverWait(browser, WAIT_SECONDS)
    editor = f"{base}/campaigns/{campaign_id}/templates/invitation.subject"
    log_in_on_the_way(browser, wait, editor, "ann", PASSWORDS["ann"], (1280, 1000))
    wait.until(lambda b: b.execute_script("return typeof htmx === 'object'"))
    field = browser.find_element(By.ID, "text")
    field.clear()
    field.send_keys("Live {{ event.title }} now")
    # No submit: htmx posts the draft as it is typed and swaps the preview in.
    wait.until(lambda b: b.find_element(By.ID, "preview-subject").text == "Live A talk now")
    assert browser.current_url == editor
    assert not own_dir(world, campaign_id).exists()
    frame = browser.find_element(By.CSS_SELECTOR, "#live-preview iframe")
    assert frame.get_attribute("sandbox") == ""
    browser.save_screenshot(str(ARTIFACTS / "template-editor-live-preview.png"))
    logged = browser.execute(Command.GET_LOG, {"type": "browser"})["value"]  # Chromium's console
    refused = [entry["message"] for entry in logged if "Content Security Policy" in entry["message"]]
    assert refused == []  # htmx runs under the page's policy: no inline script or style, no eval
    browser.find_element(By.CSS_SELECTOR, 'button[value="save"]').click()
    wait.until(lambda b: "done=saved" in b.current_url)
    assert browser.find_element(By.ID, "done").is_displayed()
    assert (own_dir(world, campaign_id) / "invitation.subject").read_text(encoding="utf-8").strip() == (
        "Live {{ event.title }} now"
    )
    browser.save_screenshot(str(ARTIFACTS / "template-editor-saved.png"))


def test_what_was_typed_before_the_session_ended_is_back_in_the_editor_after_the_login_in_a_browser(
    browser: WebDriver, sqlite_world: World
) -> None:
    world = sqlite_world
    campaign_id = draft(world)
    base = f"http://{world.site.web.host}:{world.site.web.port}"
    wait = WebDriverWait(browser, WAIT_SECONDS)
    editor = f"{base}/campaigns/{campaign_id}/templates/invitation.subject"
    log_in_on_the_way(browser, wait, editor, "ann", PASSWORDS["ann"], (1280, 1000))
    field = browser.find_element(By.ID, "text")
    field.clear()
    field.send_keys("An hour of work {{ event.title }}")
    wait.until(lambda b: b.find_element(By.ID, "preview-subject").text == "An hour of work A talk")
    idle_past_the_end(world.site.db)
    browser.find_element(By.CSS_SELECTOR, 'button[value="save"]').click()
    wait.until(expected_conditions.url_contains("/login"))
    assert browser.find_element(By.ID, "session-ended").text.startswith("Your session ended (60 minutes")
    browser.find_element(By.ID, "name").send_keys("ann")
    browser.find_element(By.ID, "password").send_keys(PASSWORDS["ann"])
    browser.find_element(By.CSS_SELECTOR, "button.primary").click()
    wait.until(expected_conditions.url_to_be(editor))  # back at the editor (the form's Referer), not the dashboard
    assert not own_dir(world, campaign_id).exists()
    wait.until(lambda b: b.find_element(By.ID, "text").get_attribute("value") == "An hour of work {{ event.title }}")
    assert "not saved yet" in browser.find_element(By.ID, "draft-restored").text
    # The live preview follows the draft put back (htmx swaps the pane: read in one go).
    wait.until(lambda b: read_now(b, "#preview-subject") == "An hour of work A talk")
    logged = browser.execute(Command.GET_LOG, {"type": "browser"})["value"]
    assert [entry["message"] for entry in logged if "Content Security Policy" in entry["message"]] == []
    browser.find_element(By.CSS_SELECTOR, 'button[value="save"]').click()
    wait.until(lambda b: "done=saved" in b.current_url)
    assert browser.find_elements(By.ID, "draft-restored") == []  # saved: the tab's draft is dropped
    assert (own_dir(world, campaign_id) / "invitation.subject").read_text(encoding="utf-8").strip() == (
        "An hour of work {{ event.title }}"
    )
    # A draft the tab kept, not wanted after all: dropping it puts the saved text back.
    browser.execute_script(
        "sessionStorage.setItem(arguments[0], JSON.stringify({text: 'Not wanted', at: Date.now()}))",
        f"campaign-draft:/campaigns/{campaign_id}/templates/invitation.subject",
    )
    browser.get(editor)
    wait.until(lambda b: b.find_elements(By.ID, "draft-restored"))
    browser.find_element(By.CSS_SELECTOR, "#draft-restored button").click()
    assert browser.find_element(By.ID, "text").get_attribute("value") == "An hour of work {{ event.title }}"
    assert browser.find_elements(By.ID, "draft-restored") == []


def idle_past_the_end(db: Database) -> None:
    """Every session's last request 61 minutes ago: past web.session_idle_minutes (60), as after a long edit."""
    with db.write() as conn:
        conn.execute(sessions.update().values(last_seen_at=datetime.now(UTC) - timedelta(minutes=61)))


def test_a_save_after_the_session_ended_leads_to_the_login_saying_so_then_back_to_the_editor(world: World) -> None:
    campaign_id = draft(world)
    client = logged_in(world)
    token = client.csrf()
    editor = f"/campaigns/{campaign_id}/templates/invitation.subject"
    origin = f"http://{world.site.web.host}:{world.site.web.port}"
    form = {"csrf_token": token, "text": "Typed for an hour {{ event.title }}", "action": "save"}
    back = "/login?" + urlencode({"next": editor})
    idle_past_the_end(world.site.db)
    # Sent from the editor (its Referer, this site's), or by a browser sending none: the editor either way.
    for headers in ({"Referer": origin + editor}, {}):
        answer = client.request("POST", editor, form, **headers)
        assert (answer.status, answer.headers["location"]) == (303, back), headers
    page = client.get(back)
    assert page.status == 200
    assert (
        '<p class="notice" role="status" id="session-ended">Your session ended (60 minutes without activity, or 12 '
        "hours after logging in). Log in again to continue.</p>"
    ) in page.body
    assert page.hidden("next") == editor
    # The live preview, posted by the page in the background meanwhile: a 403 htmx does not swap in, not the login
    # form in the preview pane; it does not take the login page's words away.
    live = client.request("POST", f"{editor}/preview", {"text": "x"}, **{"HX-Request": "true"})
    assert (live.status, live.body) == (403, LOGGED_OUT_FRAGMENT)
    assert "Your session ended" in client.get(back).body
    # Any cookie that opens nothing gets the same words: they tell nothing about a user.
    forged = Client(world.site.web, {HTTPS_SESSION: "x" * 43}).get("/login")
    assert "Your session ended" in forged.body
    assert "session ended" not in world.site.client().get("/login").body  # no cookie: a plain login page
    logged = client.log_in("ann", next_page=editor)
    assert (logged.status, logged.headers["location"]) == (303, editor)
    assert client.get(editor).status == 200
    assert not own_dir(world, campaign_id).exists()  # the post after the end did nothing
    assert template_actions(world) == []


FOREIGN = "https://evil.example"


def test_a_foreign_referer_is_never_the_page_a_login_returns_to(world: World) -> None:
    campaign_id = draft(world)
    editor = f"/campaigns/{campaign_id}/templates/invitation.subject"
    preview = f"{editor}/preview"  # no page to return to: htmx posts it from the editor
    origin = f"http://{world.site.web.host}:{world.site.web.port}"
    cases = {
        # Referer → where the login page leads back to (no cookie: the same as a session ended)
        (preview, origin + editor): editor,
        (preview, "https://campaign.example.org" + editor): editor,  # links.public_url's origin
        (preview, origin + editor + "?email=a%40example.org"): editor + "?email=a%40example.org",
        (preview, FOREIGN + editor): None,
        (preview, FOREIGN + "/users"): None,
        (preview, "http://evil.example:" + str(world.site.web.port) + editor): None,
        (preview, origin + "//evil.example/users"): None,
        (preview, origin + "/static/staff.css"): None,  # this site's, not a staff page
        (preview, "http://[broken" + editor): None,
        (preview, editor): None,  # not an absolute address
        (editor, FOREIGN + "/users"): editor,  # the form's own page
        (editor, origin + "/users"): "/users",
    }
    for (path, referer), destination in cases.items():
        answer = world.site.client().request("POST", path, {"text": "x"}, Referer=referer)
        wanted = "/login" + (f"?{urlencode({'next': destination})}" if destination else "")
        assert (answer.status, answer.headers["location"]) == (303, wanted), referer
    # The editor's page sends its address to this site only.
    assert logged_in(world).get(editor).headers["referrer-policy"] == "same-origin"


def test_a_template_over_the_size_limit_is_the_editor_saying_so_with_413_and_nothing_written(world: World) -> None:
    campaign_id = draft(world)
    client = logged_in(world)
    editor = f"/campaigns/{campaign_id}/templates/invitation.html"
    pasted = "x" * (5 * 2**20 + 200_000)  # a paste of 5.2 MB
    answer = client.post(editor, {"csrf_token": client.csrf(), "text": pasted, "action": "save"})
    assert answer.status == 413
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert (
        '<ul class="field-error error" id="text-error"><li>The template as sent is 5.2 MB: at most 1 MB can be saved. '
        "It was not read, so it is not shown here: go back (or undo the paste) and shorten it.</li></ul>"
    ) in answer.body
    # The editor, usable: its form, with the saved text (the default's), and the way back.
    assert f'<form method="post" action="{editor}"' in answer.body
    assert "{{ event.title }}" in html.unescape(text_between(answer.body, "text"))
    assert f'href="/campaigns/{campaign_id}/templates"' in answer.body
    assert answer.hidden("csrf_token") == client.csrf()
    assert not own_dir(world, campaign_id).exists()
    assert template_actions(world) == []
    # An analyst over the limit gets the 403 page still, and another staff form the limit in one line.
    refused = logged_in(world, "ana").post(editor, {"text": pasted, "action": "save"})
    assert refused.status == 403
    other = client.post(f"{editor}/revert", {"csrf_token": client.csrf(), "padding": pasted})
    assert other.status == 413
    assert "The form sent is 5.2 MB: at most 1 MB can be sent. Nothing was done." in other.body


def test_draft_previews_are_kept_within_a_bound_of_characters_the_newest_whatever_its_size() -> None:
    # An attacker review: 200 drafts of the largest message a template may make would be 400 MB held.
    frames, ann = DraftFrames(), Staff(1, "ann", Role.STAFF, "s", "c")
    big = "x" * (MAX_FRAME_CHARACTERS // 3)
    names = [frames.keep(ann, 1, big) for _ in range(5)]
    assert [frames.get(ann, 1, n) is not None for n in names] == [False, False, True, True, True]
    small = frames.keep(ann, 1, "<p>small</p>")
    assert frames.get(ann, 1, names[2]) is None  # the oldest go first
    assert frames.get(ann, 1, small) == "<p>small</p>"
    huge = frames.keep(ann, 1, "x" * (MAX_FRAME_CHARACTERS + 1))
    assert frames.get(ann, 1, huge) is not None  # the newest is what the frame is about to load
    assert frames.get(ann, 1, small) is None
    assert frames.get(Staff(2, "bo", Role.STAFF, "t", "d"), 1, huge) is None  # another's draft is not served
