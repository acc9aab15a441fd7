"""A real browser reads a received invitation as a mail client shows it: a campaign sent by the delivery worker to
a real aiosmtpd server, the HTML part of a message it received opened from a file in headless Chromium, its links
pointing at the web app on a real uvicorn server on 127.0.0.1 port 0. What the browser's requests recorded is read
back from the database after the recorder's flush.

The browser is Debian's ``chromium`` driven by Selenium through Debian's ``/usr/bin/chromedriver``: nothing is
downloaded (Selenium Manager, which would fetch a browser and a driver, is never run). Without them the module
skips, unless ``CAMPAIGN_TEST_REQUIRE_BROWSER=1`` (set by ``.ci/run``): then it fails.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import (
    JavascriptException,
    NoSuchElementException,
    StaleElementReferenceException,
    WebDriverException,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.common.selenium_manager import SeleniumManager
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait
from sqlalchemy import select

from campaign.models import SuppressionReason, TrackingKind
from campaign.rules.contact_fields import email_key
from campaign.store.engine import Database
from campaign.store.tables import event_unsubscribes, registrations, tracking_events
from tests.test_delivery import Sink, pipelining_smtp, suppression_reasons
from tests.test_tracking_web import Sent, send_invitations, signing_key, stored_links, wait_recorded, write_config
from tests.test_web import running

__all__ = ["pipelining_smtp", "signing_key"]  # fixtures used here

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
REQUIRE_BROWSER = os.environ.get("CAMPAIGN_TEST_REQUIRE_BROWSER") == "1"
ADDRESS = "guest000@example.org"
WAIT_SECONDS = 10
# What a wait on a page that reloads or redraws itself looks again after: the element went with the old page,
# or the script ran as the page unloaded.
RELOADING = (StaleElementReferenceException, NoSuchElementException, JavascriptException)


def left_page(driver: WebDriver) -> Callable[[WebDriver], bool]:
    """A wait condition, made before a click that loads a page: true once the page open now has been replaced.

    The page is marked by a property of its window, which the next document does not have: no element handle is
    kept, which Chromium answers for, as the page goes, with "Node with given id does not belong to the
    document", an error Selenium does not take for a stale element (seen in CI waiting on the launch)."""
    mark = uuid.uuid4().hex
    driver.execute_script("window.__campaignTestPage = arguments[0]", mark)

    def gone(current: WebDriver) -> bool:
        try:
            return bool(current.execute_script("return window.__campaignTestPage !== arguments[0]", mark))
        except WebDriverException:  # asked while the old page unloads: not gone yet, ask again
            return False

    return gone


def log_in_on_the_way(
    browser: WebDriver, wait: WebDriverWait[WebDriver], url: str, user: str, password: str, size: tuple[int, int]
) -> None:
    """A fresh browser at ``size`` asks for ``url``, is sent to the login page, logs in as ``user`` and is back."""
    browser.delete_all_cookies()
    browser.set_window_size(*size)
    browser.get(url)
    wait.until(expected_conditions.url_contains("/login"))
    browser.find_element(By.ID, "name").send_keys(user)
    browser.find_element(By.ID, "password").send_keys(password)
    browser.find_element(By.CSS_SELECTOR, "button.primary").click()
    wait.until(expected_conditions.url_to_be(url))


def read_now(driver: WebDriver, selector: str, attribute: str | None = None) -> str | None:
    """The text (or ``attribute``) of the first element matching the CSS ``selector``, read in one script: no
    element handle is kept between finding and reading it, which a page reloading itself meanwhile would leave
    pointing at nothing (Chromium: "Node with given id does not belong to the document"). None: no such element."""
    value = driver.execute_script(
        "const e = document.querySelector(arguments[0]);"
        " return e === null ? null : (arguments[1] === null ? e.textContent.trim() : e.getAttribute(arguments[1]));",
        selector,
        attribute,
    )
    return None if value is None else str(value)


def refuse_selenium_manager(*_args: Any) -> dict[str, str]:
    raise AssertionError("Selenium Manager ran: it would download a browser or a driver")


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    """Headless Chromium, one for the module (starting it is most of the module's time)."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.is_file()]
    if missing:
        if REQUIRE_BROWSER:
            pytest.fail(f"CAMPAIGN_TEST_REQUIRE_BROWSER=1 but {' and '.join(missing)} not installed")
        pytest.skip(f"{' and '.join(missing)} not installed (Debian: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    with pytest.MonkeyPatch.context() as patch:
        # A driver path given skips Selenium Manager; should a Selenium release stop honouring that, fail loudly.
        patch.setattr(SeleniumManager, "binary_paths", refuse_selenium_manager)
        driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        # A person's Chromium names itself "Chrome"; headless, it says "HeadlessChrome", which the classifier
        # rightly takes for a machine's. Everything else about the requests is the browser's own.
        agent = driver.execute_script("return navigator.userAgent")
        assert "HeadlessChrome/" in agent
        driver.execute_cdp_cmd("Network.setUserAgentOverride", {"userAgent": agent.replace("HeadlessChrome", "Chrome")})
        yield driver
    finally:
        driver.quit()


@dataclass
class Landing:
    """A tiny site on 127.0.0.1 standing for the event's registration page: it answers every GET with a page and
    remembers the paths asked for."""

    server: ThreadingHTTPServer
    paths: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/register"


@pytest.fixture
def landing() -> Iterator[Landing]:
    paths: list[str] = []

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            paths.append(self.path)
            body = b"<!doctype html><title>Registration</title><h1>Registration form</h1>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:  # not on the test's stderr
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Landing(server, paths)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@dataclass
class Invitation:
    """The invitation ``ADDRESS`` received, as a file a browser opens, and what it was sent with."""

    sent: Sent
    message_id: int
    page: str  # file:// URL of the message's HTML part
    landing: Landing

    @property
    def db(self) -> Database:
        return self.sent.db


@pytest.fixture
def invitation(
    db: Database, tmp_path: Path, pipelining_smtp: Sink, signing_key: None, landing: Landing
) -> Iterator[Invitation]:
    config = write_config(tmp_path, db)
    # The server first: the messages' links point at it, so its port must be known before they are rendered.
    with running(config) as web:
        sent = send_invitations(
            db,
            tmp_path,
            pipelining_smtp,
            config,
            public_url=f"http://{web.host}:{web.port}",
            registration_url=landing.url,
        )
        page = tmp_path / "invitation.html"
        page.write_text(sent.html(ADDRESS), encoding="utf-8")
        yield Invitation(sent, sent.message_ids[ADDRESS], page.as_uri(), landing)


def user_agents(db: Database) -> list[str | None]:
    with db.read() as conn:
        return list(conn.scalars(select(tracking_events.c.user_agent).order_by(tracking_events.c.id)))


def test_opening_the_message_loads_the_pixel_and_records_a_persons_open(
    browser: WebDriver, invitation: Invitation
) -> None:
    browser.get(invitation.page)
    pixel = browser.find_element(By.CSS_SELECTOR, "img[src*='/o/']")
    # The browser got the GIF: a 1×1 image that decoded, not a broken one.
    WebDriverWait(browser, WAIT_SECONDS).until(lambda _: pixel.get_property("complete"))
    assert pixel.get_property("naturalWidth") == 1
    assert wait_recorded(invitation.db, 1) == [(invitation.message_id, "open", None, False, None)]
    [agent] = user_agents(invitation.db)
    assert agent is not None
    assert "Chrome/" in agent
    assert "Headless" not in agent


def test_clicking_register_lands_on_the_registration_page_and_records_a_click_and_a_registration(
    browser: WebDriver, invitation: Invitation
) -> None:
    browser.get(invitation.page)
    wait_recorded(invitation.db, 1)  # the open, first
    browser.find_element(By.PARTIAL_LINK_TEXT, "Register").click()
    WebDriverWait(browser, WAIT_SECONDS).until(expected_conditions.url_to_be(invitation.landing.url))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Registration form"
    assert invitation.landing.paths[0] == "/register"  # (then the browser asks for /favicon.ico)
    [register] = [index for index, (name, _) in stored_links(invitation.db).items() if name == "register"]
    assert wait_recorded(invitation.db, 2)[1] == (invitation.message_id, "click", register, False, None)
    with invitation.db.read() as conn:
        registered = conn.execute(select(registrations.c.source, registrations.c.message_id)).all()
    assert [tuple(r) for r in registered] == [("link", invitation.message_id)]


def test_the_unsubscribe_page_changes_nothing_until_its_button_is_pressed_which_suppresses_the_address(
    browser: WebDriver, invitation: Invitation
) -> None:
    browser.get(invitation.page)
    browser.find_element(By.LINK_TEXT, "Unsubscribe").click()
    WebDriverWait(browser, WAIT_SECONDS).until(expected_conditions.url_contains("/u/"))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Unsubscribe"
    assert "g***0@example.org" in browser.find_element(By.TAG_NAME, "main").text
    # The page was fetched (GET): nothing changed, and the only event is the message's open.
    assert wait_recorded(invitation.db, 1)[0][1] == "open"
    assert suppression_reasons(invitation.db) == {}
    with invitation.db.read() as conn:
        assert conn.execute(select(event_unsubscribes)).all() == []

    gone = left_page(browser)
    browser.find_element(By.XPATH, "//button[normalize-space()='Unsubscribe from everything']").click()
    # The answer is a new page: waited for by its window, then read (an element of the page going away, read as
    # it went, was once a WebDriverException here under a loaded CI machine).
    WebDriverWait(browser, WAIT_SECONDS).until(gone)
    WebDriverWait(browser, WAIT_SECONDS).until(lambda _: read_now(browser, "h1") == "Unsubscribed")
    assert "g***0@example.org will get no more messages" in browser.find_element(By.TAG_NAME, "main").text
    assert suppression_reasons(invitation.db) == {
        email_key(ADDRESS): (SuppressionReason.UNSUBSCRIBED.value, invitation.message_id)
    }
    # Recorded as a person's, in the same transaction as the suppression.
    [(_, kind, _, machine, _)] = [row for row in wait_recorded(invitation.db, 2) if row[1] != "open"]
    assert (kind, machine) == (TrackingKind.UNSUBSCRIBE.value, False)
