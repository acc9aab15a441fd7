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
from pathlib import Path
from urllib.parse import quote

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.command import Command
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait

from campaign.models import AuditAction, Role
from campaign.services.campaigns import get_campaign
from campaign.services.lifecycle import launch
from campaign.services.rendering import preview_contact
from campaign.services.sessions import Staff
from campaign.services.waves import create_with_waves
from campaign.store.waves import mark_missed
from campaign.web.auth import CSRF_REFUSED
from campaign.web.templates_editor import MAX_FRAME_CHARACTERS, DraftFrames
from tests.test_auth import PASSWORDS, Client
from tests.test_browser import WAIT_SECONDS, browser, log_in_on_the_way
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
