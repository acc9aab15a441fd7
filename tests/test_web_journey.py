"""A staff member's whole journey in a real browser, from an empty database to a campaign sent to every contact.

Everything is the real thing: a fresh config and data folder, ``campaign init`` and ``campaign users add`` as a
person runs them, then ``campaign serve`` (the web service, the scheduler and the delivery worker with the built-in
capture SMTP server) as a process on port 0, whose URL is read from the line it prints. Debian's headless Chromium
(tests/test_browser.py's driver: no download; skipped without it unless ``CAMPAIGN_TEST_REQUIRE_BROWSER=1``) logs
in, uploads the sample contacts and the file with errors, adds the sample event through the form, creates the
campaign, previews it as Manila and as Kiritimati, test-sends, launches, and the test waits until the capture
mailbox holds the invitation of every contact of the list.

What the pages say is compared with the sample files, the database and the mailbox on disk; the local times with
what zoneinfo and Babel give for each contact's zone and locale (as campaign.render.localtime composes them).
Each step leaves a screenshot in tests/artifacts/journey/ (``make screenshots`` copies some to docs/screenshots/
for the README). The page elements are found by their ids and labels, never by where they are on the page.
"""

from __future__ import annotations

import csv
import email
import email.policy
import re
import subprocess
import time
import tomllib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from babel import Locale
from babel.dates import format_date, format_interval, get_timezone_name
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait
from sqlalchemy import func, select

from campaign.rules import routes
from campaign.services.demo import DEMO_EVENT_FILE, LEAD_TIME
from campaign.services.events import get_event
from campaign.store.engine import Database
from campaign.store.tables import contacts, list_members, lists, suppressions
from tests.test_browser import RELOADING, WAIT_SECONDS, browser, left_page, read_now
from tests.test_web import Lines, campaign, environment, process

__all__ = ["browser"]  # a fixture used here

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
SAMPLE = DATA / "contacts.csv"
WITH_ERRORS = DATA / "contacts-with-errors.csv"
SHOTS = Path(__file__).resolve().parent / "artifacts" / "journey"
STAFF = "maria.lopez"
PASSWORD = "a long staff passphrase"
STAFF_ADDRESS = "maria.lopez@events.example.org"
LIST = "webinar-guests"
MANILA = "maria.santos@dole.example.org"
KIRITIMATI = "rotia.teburea@lineislands.example.org"
SENT_SECONDS = 60  # the bound on waiting for every invitation
EDITED_SUBJECT = "You're invited: "  # what staff put in place of the default subject's "Invitation: "
IMPORT_SECONDS = 20
WINDOW = (1000, 800)  # narrow: the screenshots stay small enough for the README


# ---------------------------------------------------------------------------------------------------------
# The installation: an empty one, set up as a person does
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Installation:
    config: Path
    db: Database
    mailbox: Path
    url: str


def write_config(tmp_path: Path) -> Path:
    """A config.toml in a folder of its own: a new SQLite file, the capture mailbox, any free port.

    On SQLite only: the journey is the README's first run (`campaign init` making the file the default config
    names), in a browser for a minute; each of its steps runs on both backends over HTTP in the test_web_*.py
    files."""
    folder = tmp_path / "site"
    folder.mkdir()
    config = folder / "config.toml"
    config.write_text(
        '[database]\nurl = "sqlite:///campaign.db"\n'
        f'[paths]\ndata = "data"\ntemplates = "{ROOT / "templates" / "email"}"\n'
        '[smtp]\nmode = "capture"\nmailbox = "data/mailbox"\n'
        "[delivery]\npoll_seconds = 0.5\n"
        # https, as the launch checks require of the links in messages. The browser speaks plain http to
        # 127.0.0.1, which Chromium counts as a secure origin: it keeps the session's Secure __Host- cookie.
        '[links]\npublic_url = "https://campaign.example.org"\n'
        '[web]\nhost = "127.0.0.1"\nport = 0\n',
        encoding="utf-8",
    )
    return config


def run(config: Path, *args: str, given: str | None = None) -> str:
    done = subprocess.run(
        campaign(config, *args), env=environment(), input=given, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def installation(tmp_path: Path) -> Iterator[Installation]:
    """``campaign init``, a staff user, and ``campaign serve`` running, its URL the one it printed."""
    config = write_config(tmp_path)
    run(config, "init")
    run(config, "users", "add", STAFF, "--role", "staff", "--password-stdin", given=PASSWORD + "\n")
    db = Database(f"sqlite:///{config.parent / 'campaign.db'}")
    with db.read() as conn:  # empty: nothing but the user
        assert conn.execute(select(func.count()).select_from(contacts)).scalar_one() == 0
    with process(campaign(config, "serve")) as serve:
        assert serve.stderr is not None
        err = Lines(serve.stderr)
        url = err.wait_for(r"INFO web listening url=(http://127\.0\.0\.1:\d+)$").group(1)
        assert not url.endswith(":0")
        err.wait_for(r"INFO serving ")
        try:
            yield Installation(config, db, config.parent / "data" / "mailbox", url)
        finally:
            serve.terminate()
            assert serve.wait(timeout=30) == 0
            log = err.rest()
            SHOTS.mkdir(parents=True, exist_ok=True)
            (SHOTS / "serve.log").write_text(log, encoding="utf-8")  # what the service said, for a failure's cause
            assert "Traceback" not in log, f"the service logged a traceback: see {SHOTS / 'serve.log'}"
            db.dispose()


# ---------------------------------------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------------------------------------


class Journey:
    """The browser on the installation: each step ends with an assertion on the page and a screenshot."""

    def __init__(self, driver: WebDriver, site: Installation) -> None:
        self.driver = driver
        self.site = site
        self.wait = WebDriverWait(driver, WAIT_SECONDS)
        self.shots = 0
        for old in SHOTS.glob("*.png"):  # a previous run's: their numbers may differ (make screenshots picks by name)
            old.unlink()

    def url(self, route: routes.RoutePath, **values: str) -> str:
        return self.site.url + route.path(**values)

    def open(self, route: routes.RoutePath, query: str = "", **values: str) -> None:
        self.driver.get(self.url(route, **values) + query)

    def by_id(self, element_id: str) -> WebElement:
        return self.wait.until(expected_conditions.presence_of_element_located((By.ID, element_id)))

    def submit(self, form_action: routes.RoutePath | str, **values: str) -> None:
        """Click the submit button of the form posting to ``form_action`` and wait for the next page."""
        action = form_action if isinstance(form_action, str) else form_action.path(**values)
        form = self.driver.find_element(By.CSS_SELECTOR, f'form[action$="{action}"]')
        # The form's main button (an event form's first one is a hidden default for the Enter key).
        button = (form.find_elements(By.CSS_SELECTOR, "button.primary") or form.find_elements(By.TAG_NAME, "button"))[0]
        gone = left_page(self.driver)
        button.click()
        self.wait.until(gone)

    def shot(self, step: str) -> None:
        self.shots += 1
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(SHOTS / f"{self.shots:02d}-{step}.png"))


def finished_import(journey: Journey) -> dict[str, int]:
    """The counts of the import page once its import has ended (it reloads itself each second until then)."""
    WebDriverWait(journey.driver, IMPORT_SECONDS, ignored_exceptions=RELOADING).until(
        lambda driver: read_now(driver, "#import-status", "data-status") not in (None, "running")
    )
    assert journey.by_id("import-status").get_attribute("data-status") == "finished"
    counts = {}
    for row in journey.driver.find_elements(By.CSS_SELECTOR, "#import-counts tr[data-count]"):
        counts[str(row.get_attribute("data-count"))] = int(row.find_elements(By.TAG_NAME, "td")[-1].text)
    return counts


def upload(journey: Journey, path: Path, list_name: str) -> dict[str, int]:
    journey.open(routes.CONTACTS)
    journey.by_id("list").send_keys(list_name)
    journey.driver.find_element(By.ID, "file").send_keys(str(path))
    journey.submit(routes.CONTACTS_UPLOAD)
    journey.wait.until(expected_conditions.url_contains(routes.CONTACTS_IMPORT.template.split("{")[0]))
    return finished_import(journey)


def rows_by_line(path: Path, delimiter: str) -> dict[int, dict[str, str]]:
    """The data rows of a CSV file by the line each starts on (a quoted field may span lines)."""
    rows = {}
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh, delimiter=delimiter)
        ended = 1  # the header's line
        for row in reader:
            rows[ended + 1] = row
            ended = reader.line_num
    return rows


def sample_event(today: date) -> dict[str, str | list[tuple[str, str]]]:
    """The demo's sample event as the form takes it: its file's values, moved as the demo moves it (the same
    weekday at the same wall-clock time, at least LEAD_TIME ahead, so that every wave lies after the launch)."""
    doc = tomllib.loads((DATA / DEMO_EVENT_FILE).read_text(encoding="utf-8"))
    start, end = doc["start"], doc["end"]
    earliest = today + LEAD_TIME
    day = earliest + timedelta(days=(start.weekday() - earliest.weekday()) % 7)
    moved_start = datetime.combine(day, start.time())
    moved_end = moved_start + (end - start)
    return {
        "slug": doc["slug"],
        "title": doc["title"],
        "description": doc["description"].strip(),
        "start": moved_start.strftime("%Y-%m-%dT%H:%M"),
        "end": moved_end.strftime("%Y-%m-%dT%H:%M"),
        "timezone": doc["timezone"],
        "registration_url": doc["registration_url"],
        "join_url": doc["join_url"],
        "organiser_name": doc["organiser"]["name"],
        "organiser_email": doc["organiser"]["email"],
        "language": doc["language"],
        "speakers": [(s["name"], s.get("role", "")) for s in doc["speakers"]],
    }


def fill_event_form(journey: Journey, values: dict[str, str | list[tuple[str, str]]]) -> None:
    """Type each field, then the speakers, asking for more rows (a round trip each) while some are left."""
    driver = journey.driver
    for name, value in values.items():
        if name == "speakers":
            continue
        field = journey.by_id(name)
        field.clear()
        assert isinstance(value, str)
        if name == "description":  # pasted, as a person would: typing its 2,000 characters one by one takes seconds
            driver.execute_script("arguments[0].value = arguments[1]", field, value)
        else:
            field.send_keys(value)
    speakers = values["speakers"]
    assert isinstance(speakers, list)
    typed = 0
    while True:
        rows = driver.find_elements(By.CSS_SELECTOR, "li.speaker")
        for row_number in range(typed + 1, len(rows) + 1):
            if typed == len(speakers):
                break
            name, role = speakers[typed]
            driver.find_element(By.ID, f"speaker-{row_number}-name").send_keys(name)
            driver.find_element(By.ID, f"speaker-{row_number}-role").send_keys(role)
            typed += 1
        if typed == len(speakers):
            return
        gone = left_page(driver)
        driver.find_element(By.CSS_SELECTOR, 'button[name="action"][value="add-row"]').click()
        journey.wait.until(gone)


def session_line(starts_at: datetime, ends_at: datetime, zone: str, locale: str) -> str:
    """What a contact in ``zone`` reads of the session: the zone's CLDR name, the date and the times on its own
    clock, in its locale (plain spaces, as in the text part)."""
    loc = Locale.parse(locale.replace("-", "_"))
    tz = ZoneInfo(zone)
    start, end = starts_at.astimezone(tz), ends_at.astimezone(tz)
    assert start.date() == end.date()  # Manila's evening, Kiritimati's night: one day each
    skeleton = "hm" if "h" in loc.time_formats["short"].pattern else "Hm"
    times = format_interval(start, end, skeleton=skeleton, tzinfo=tz, locale=loc)
    line = f"{get_timezone_name(start, width='long', locale=loc)}: {format_date(start, 'full', locale=loc)}, {times}"
    return plain(line)


def plain(text: str) -> str:
    """``text`` with Babel's no-break and thin spaces, and line breaks, as single plain spaces."""
    return re.sub(r"\s+", " ", text)


def list_addresses(db: Database, list_name: str) -> tuple[set[str], int]:
    """The addresses of the list's contacts (in lower case: the file with errors spells one of them in capitals,
    and its import updates it), and how many of them are suppressed."""
    with db.read() as conn:
        members = (
            select(contacts.c.email, contacts.c.email_key)
            .join(list_members, list_members.c.contact_id == contacts.c.id)
            .join(lists, lists.c.id == list_members.c.list_id)
            .where(lists.c.name == list_name)
        )
        rows = conn.execute(members).all()
        suppressed = conn.execute(
            select(func.count())
            .select_from(suppressions)
            .where(suppressions.c.email_key.in_([row.email_key for row in rows]))
        ).scalar_one()
    return {row.email.lower() for row in rows}, int(suppressed)


def captured(mailbox: Path) -> list[tuple[str, str]]:
    """(To, Subject) of every message the capture server kept, read from its files."""
    found = []
    for path in sorted(mailbox.glob("**/*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        found.append((str(message["To"]), str(message["Subject"])))
    return found


def address_of(header: str) -> str:
    return email.utils.parseaddr(header)[1].lower()


# ---------------------------------------------------------------------------------------------------------
# The journey
# ---------------------------------------------------------------------------------------------------------


def test_a_staff_member_goes_from_an_empty_database_to_an_invitation_in_every_contacts_mailbox(
    browser: WebDriver, installation: Installation
) -> None:
    started = time.monotonic()
    browser.delete_all_cookies()
    browser.set_window_size(*WINDOW)
    journey = Journey(browser, installation)
    db = installation.db

    # 1. Log in: any staff page leads to the login form, which returns to it.
    journey.open(routes.DASHBOARD)
    journey.wait.until(expected_conditions.url_contains(routes.LOGIN.path()))
    journey.by_id("name").send_keys(STAFF)
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    journey.shot("login")
    journey.submit(routes.LOGIN)
    assert browser.current_url == journey.url(routes.DASHBOARD)
    assert browser.find_element(By.ID, "new-campaign").is_displayed()
    journey.shot("dashboard-empty")

    # 2. The sample contacts: the counts of the file's own rows.
    with SAMPLE.open(encoding="utf-8", newline="") as fh:
        sample_rows = list(csv.DictReader(fh))
    counts = upload(journey, SAMPLE, LIST)
    assert counts["new"] == len(sample_rows)
    assert counts["rejected"] == 0
    addresses, suppressed = list_addresses(db, LIST)
    assert addresses == {row["email"].lower() for row in sample_rows}
    journey.shot("contacts-imported")

    # 3. The file with errors: its bad rows rejected, each with its line (the header is line 1).
    counts = upload(journey, WITH_ERRORS, "with-errors")
    rejected = {  # line: (address, reason)
        int(str(row.get_attribute("data-line"))): tuple(cell.text for cell in row.find_elements(By.TAG_NAME, "td")[1:3])
        for row in browser.find_elements(By.CSS_SELECTOR, "#rejected tbody tr[data-line]")
    }
    assert len(rejected) == counts["rejected"] > 0
    starts = rows_by_line(WITH_ERRORS, ";")
    assert set(rejected) <= set(starts)  # each a line where a row of the file starts
    for line, (address, _reason) in rejected.items():
        assert address == (starts[line]["E-mail"] or "–"), line
    assert rejected[4][1].startswith("email: 'not-an-email' is not a valid address")
    assert browser.find_element(By.ID, "rejects-download").is_displayed()
    browser.execute_script("arguments[0].scrollIntoView()", browser.find_element(By.ID, "rejected"))
    journey.shot("contacts-rejected")

    # 4. The sample event, through the form with the zone picker.
    event = sample_event(datetime.now(UTC).date())
    journey.open(routes.EVENT_NEW)
    zone = str(event["timezone"])
    option = browser.find_element(By.CSS_SELECTOR, f'datalist#zones option[value="{zone}"]')
    assert "Central European" in str(option.get_attribute("label"))  # its CLDR name, with its offset
    assert re.search(r"UTC[+−-]\d", str(option.get_attribute("label")))
    fill_event_form(journey, event)
    browser.execute_script("arguments[0].scrollIntoView()", browser.find_element(By.ID, "description"))
    journey.shot("event-form")  # the times, the zone and the links in view
    journey.submit(routes.EVENT_NEW)
    journey.wait.until(expected_conditions.url_contains("done=added"))
    assert str(event["title"]) in browser.find_element(By.TAG_NAME, "h1").text
    journey.shot("event-added")
    organiser = ZoneInfo(zone)
    starts_at = datetime.strptime(str(event["start"]), "%Y-%m-%dT%H:%M").replace(tzinfo=organiser)
    ends_at = datetime.strptime(str(event["end"]), "%Y-%m-%dT%H:%M").replace(tzinfo=organiser)
    saved = get_event(db, str(event["slug"]))  # the sample event, every field as its file gives it
    assert (saved.title, saved.timezone, saved.starts_at, saved.ends_at) == (event["title"], zone, starts_at, ends_at)
    assert saved.description.replace("\r\n", "\n") == event["description"]
    assert [(s.name, s.role) for s in saved.speakers] == event["speakers"]

    # 5. The campaign: the event and the list, the default waves.
    journey.open(routes.DASHBOARD)
    browser.find_element(By.ID, "new-campaign").click()
    journey.wait.until(expected_conditions.url_to_be(journey.url(routes.CAMPAIGN_NEW)))
    journey.by_id("event").find_element(By.XPATH, f"option[starts-with(., {xpath_text(str(event['title']))})]").click()
    browser.find_element(By.CSS_SELECTOR, f'#list option[value="{LIST}"]').click()
    journey.shot("campaign-new")
    journey.submit(routes.CAMPAIGN_NEW)
    found = re.fullmatch(re.escape(journey.url(routes.CAMPAIGN_MANAGE, campaign="X")).replace("X", r"(\d+)"),
                         browser.current_url.split("?")[0])  # fmt: skip
    assert found, browser.current_url
    campaign_id = found.group(1)
    assert journey.by_id("status").text == "draft"
    waves = [
        str(row.get_attribute("data-wave")) for row in browser.find_elements(By.CSS_SELECTOR, "#waves tr[data-wave]")
    ]
    assert waves[0] == "invitation"
    assert set(waves[1:]) == {"last-chance", "reminder-1d", "reminder-1h", "follow-up"}  # config.toml's defaults
    journey.shot("campaign-draft")

    # 5b. The subject, edited in the template editor: its live preview follows the typing (htmx, before any save);
    # the save keeps the campaign's own copy, and the Spanish variant stays the Spanish contacts'.
    journey.open(routes.CAMPAIGN_TEMPLATE_EDIT, campaign=campaign_id, file="invitation.subject")
    field = journey.by_id("text")
    original = str(field.get_attribute("value"))
    assert original.startswith("Invitation: ")
    field.clear()
    field.send_keys(original.replace("Invitation: ", EDITED_SUBJECT, 1))
    journey.wait.until(lambda _: journey.by_id("preview-subject").text.startswith(EDITED_SUBJECT))
    journey.shot("subject-edited")
    browser.find_element(By.CSS_SELECTOR, 'button[name="action"][value="save"]').click()
    journey.wait.until(expected_conditions.url_contains("done=saved"))
    journey.open(routes.CAMPAIGN_MANAGE, campaign=campaign_id)

    # 6. Previews: what Manila sees, what Kiritimati sees, each on its own clock.
    locales = {row["email"]: row["locale"] for row in sample_rows}
    zones = {row["email"]: row["timezone"] for row in sample_rows}
    seen = {}
    for address in (MANILA, KIRITIMATI):
        field = journey.by_id("email")
        field.clear()
        field.send_keys(address)
        journey.submit(routes.CAMPAIGN_MANAGE.path(campaign=campaign_id))
        text = plain(journey.by_id("preview-text").text)
        expected = session_line(starts_at, ends_at, zones[address], locales[address])
        assert expected in text, (expected, text)
        assert journey.by_id("preview-subject").text.startswith(EDITED_SUBJECT)
        seen[address] = expected
        browser.execute_script("arguments[0].scrollIntoView()", browser.find_element(By.ID, "preview"))
        journey.shot(f"preview-{zones[address].split('/')[-1].lower()}")
    assert seen[MANILA].split(":")[0] == "Philippine Standard Time"  # the CLDR names, not offsets
    assert seen[MANILA] != seen[KIRITIMATI]

    # 7. A test send to a staff address: in the capture mailbox, and on the dashboard's mailbox page.
    journey.by_id("test-to").send_keys(STAFF_ADDRESS)
    journey.submit(routes.CAMPAIGN_TEST_SEND.path(campaign=campaign_id))
    assert journey.by_id("done").text.startswith("Test sent")
    [(to, subject)] = captured(installation.mailbox)
    assert address_of(to) == STAFF_ADDRESS
    assert subject.startswith("[TEST] ")
    journey.open(routes.MAILBOX)
    assert STAFF_ADDRESS in journey.by_id("mailbox").text
    journey.shot("test-sent")

    # 8. The launch, through its confirmation: the audience is the list, less the suppressed.
    journey.open(routes.CAMPAIGN_LAUNCH, campaign=campaign_id)
    assert int(journey.by_id("audience").text) == len(addresses)
    assert int(journey.by_id("suppressed").text) == suppressed
    launch_button = browser.find_element(
        By.CSS_SELECTOR, f'form[action$="{routes.CAMPAIGN_LAUNCH.path(campaign=campaign_id)}"] button.primary'
    )
    assert f"send to {len(addresses) - suppressed} people" in launch_button.text
    journey.shot("launch-confirmation")
    journey.submit(routes.CAMPAIGN_LAUNCH.path(campaign=campaign_id))
    assert journey.by_id("done").text.startswith("Launched")
    assert journey.by_id("status").text != "draft"
    journey.shot("launched")

    # 9. Watch it send: the service's worker delivers the invitation to every contact of the list.
    assert list_addresses(db, LIST) == (addresses, suppressed)  # the list launched is the list counted
    deadline = time.monotonic() + SENT_SECONDS
    while True:
        invited = Counter(address_of(to) for to, subject in captured(installation.mailbox) if "[TEST]" not in subject)
        if set(invited) >= addresses or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    assert set(invited) == addresses, f"not invited within {SENT_SECONDS} s: {sorted(addresses - set(invited))}"
    assert set(invited.values()) == {1}  # one invitation each
    # The edited subject went out, but to the Spanish speakers, whose variant was kept.
    locale_of = {address.lower(): locale for address, locale in locales.items()}
    for to, subject in captured(installation.mailbox):
        if "[TEST]" not in subject:
            spanish = str(locale_of.get(address_of(to).lower(), "")).lower().startswith("es")
            assert subject.startswith("Invitación: " if spanish else EDITED_SUBJECT), (to, subject)
    journey.open(routes.CAMPAIGN_PAGE, campaign=campaign_id)
    delivered = journey.by_id("funnel").find_element(By.CSS_SELECTOR, 'tr[data-step="delivered"] td')
    assert int(delivered.text) == len(addresses)
    journey.shot("report")
    journey.open(routes.MAILBOX)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#mailbox tbody tr")) == len(addresses) + 1
    journey.shot("mailbox")
    assert time.monotonic() - started < 90


def xpath_text(text: str) -> str:
    """``text`` as an XPath string literal (the sample title has no double quote)."""
    assert '"' not in text
    return f'"{text}"'


def test_the_readmes_screenshots_are_committed_small_and_are_the_ones_make_screenshots_refreshes() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    shown = {ROOT / name for name in re.findall(r"\]\((docs/screenshots/[^)]+\.png)\)", readme)}
    assert shown
    assert all(path.is_file() for path in shown), sorted(str(p) for p in shown if not p.is_file())
    assert sum(path.stat().st_size for path in shown) < 1_500_000
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    listed = re.search(r"^SCREENSHOTS := ((?:.*\\\n)*.*)$", makefile, re.M)
    assert listed
    assert set(listed.group(1).replace("\\", " ").split()) == {path.stem for path in shown}
