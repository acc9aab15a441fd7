"""The campaign actions, the settings page and the users page as a person uses them, in a real browser.

Debian's headless Chromium (tests/test_browser.py's driver, one for the module: no download; skipped without it
unless ``CAMPAIGN_TEST_REQUIRE_BROWSER=1``) on the app served on 127.0.0.1 port 0 against a real SQLite file.
The HTTP-level rules (403 for analysts, CSRF, escaping, the audit log) are tests/test_web_campaigns.py's and
tests/test_web_admin.py's; here: what a person clicks through (the confirmations), checked in the database, and
what the pages show compared with the configuration. Elements are found by ids, labels and the routes' paths.
Screenshots go to tests/artifacts/admin/.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from campaign.config import Settings, load_settings
from campaign.models import AuditAction, CampaignStatus, Role
from campaign.rules import routes
from campaign.services.campaigns import get_campaign
from campaign.services.context import AppContext
from campaign.services.lifecycle import launch
from campaign.services.users import list_users
from campaign.services.waves import create_with_waves
from campaign.store.engine import Database
from tests.test_auth import PASSWORDS, Site, staff_config
from tests.test_browser import WAIT_SECONDS, browser, left_page
from tests.test_dashboard import add_users
from tests.test_delivery import TEMPLATES
from tests.test_scheduling import add_contacts, add_event_at
from tests.test_web import running

__all__ = ["browser"]  # a fixture used here

SHOTS = Path(__file__).resolve().parent / "artifacts" / "admin"
SENDER = ("Migration events", "webinars@ilo.example.org")
NEW_USER = ("carol.diaz", "carol's own long passphrase")


@pytest.fixture
def site(sqlite_db: Database, tmp_path: Path) -> Iterator[Site]:
    """Staff ann, admin bob; list ``guests`` of three contacts, event ``talk`` in ten days; a sender of its own.
    On SQLite only: launching, pausing, the settings and the users pages are tested over HTTP on both backends
    (test_web_campaigns.py, test_web_admin.py); the browser adds the pages' scripts and confirmations, the same on
    either, and a browser run costs seconds."""
    config = staff_config(tmp_path, sqlite_db)  # https: the launch checks want https links
    with config.open("a") as fh:
        fh.write(f'[paths]\ntemplates = "{TEMPLATES}"\n')
        fh.write(f'[mail]\nfrom_name = "{SENDER[0]}"\nfrom_address = "{SENDER[1]}"\n')
        fh.write(f'[smtp]\nmode = "capture"\nmailbox = "{tmp_path / "mailbox"}"\n')
    add_users(sqlite_db, ann=Role.STAFF, bob=Role.ADMIN)
    add_contacts(sqlite_db, tmp_path, {"a@example.org": "Asia/Manila", "b@example.org": "Europe/Zurich", "c@x.org": ""})
    add_event_at(sqlite_db, (datetime.now(UTC) + timedelta(days=10)).replace(second=0, microsecond=0))
    with running(config) as web:
        yield Site(sqlite_db, config, web, [])


def base(site: Site) -> str:
    return f"http://{site.web.host}:{site.web.port}"


def settings_of(site: Site) -> Settings:
    return load_settings(site.config, environ={})


def log_in(driver: WebDriver, site: Site, name: str, page: routes.RoutePath, **values: str) -> WebDriverWait[WebDriver]:
    """Log ``name`` in through the login form on the way to ``page``; the wait for the pages that follow."""
    driver.delete_all_cookies()
    driver.set_window_size(1000, 800)
    wait = WebDriverWait(driver, WAIT_SECONDS)
    target = base(site) + page.path(**values)
    driver.get(target)
    wait.until(expected_conditions.url_contains(routes.LOGIN.path()))
    driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(PASSWORDS[name])
    click_and_wait(driver, wait, By.CSS_SELECTOR, f'form[action$="{routes.LOGIN.path()}"] button.primary')
    assert driver.current_url == target
    return wait


def click_and_wait(driver: WebDriver, wait: WebDriverWait[WebDriver], by: str, what: str) -> None:
    """Click an element that loads a page, and wait until the page it left is gone."""
    gone = left_page(driver)
    driver.find_element(by, what).click()
    wait.until(gone)


def shot(driver: WebDriver, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def test_a_launched_campaign_is_paused_and_resumed_each_after_its_confirmation(browser: WebDriver, site: Site) -> None:
    settings = settings_of(site)
    details = create_with_waves(site.db, settings, event_ref="talk", list_name="guests", name="c")
    launch(site.db, settings, AppContext(settings_given=settings).signing_key(), "c")
    campaign_id = str(details.campaign.id)
    manage = routes.CAMPAIGN_MANAGE.path(campaign=campaign_id)
    move = routes.CAMPAIGN_MOVE.path(campaign=campaign_id)
    wait = log_in(browser, site, "ann", routes.CAMPAIGN_MANAGE, campaign=campaign_id)

    def status() -> CampaignStatus:
        return get_campaign(site.db, "c").campaign.status

    assert browser.find_element(By.ID, "status").text == status().value == "sending"
    # Cancel… then Go back: a confirmation only, nothing changes.
    click_and_wait(browser, wait, By.CSS_SELECTOR, f'#actions a[href$="{move}?to=cancel"]')
    click_and_wait(browser, wait, By.CSS_SELECTOR, f'form[action$="{move}"] a[href$="{manage}"]')
    assert status() is CampaignStatus.SENDING
    # Pause…: the confirmation says what pausing does; confirmed, the campaign is paused.
    assert not browser.find_elements(By.CSS_SELECTOR, f'#actions a[href$="{move}?to=resume"]')
    click_and_wait(browser, wait, By.CSS_SELECTOR, f'#actions a[href$="{move}?to=pause"]')
    assert browser.find_element(By.TAG_NAME, "h1").text == "Pause “c”?"
    assert "Nothing more of it is sent until it is resumed" in browser.find_element(By.TAG_NAME, "main").text
    assert status() is CampaignStatus.SENDING  # asking is not doing
    shot(browser, "campaign-pause-confirmation")
    click_and_wait(browser, wait, By.CSS_SELECTOR, f'form[action$="{move}"] button.primary')
    assert browser.find_element(By.ID, "done").text == "Paused."
    assert browser.find_element(By.ID, "status").text == "paused"
    assert status() is CampaignStatus.PAUSED
    # Resume…: offered now (pause is not), confirmed, the campaign sends again.
    assert not browser.find_elements(By.CSS_SELECTOR, f'#actions a[href$="{move}?to=pause"]')
    click_and_wait(browser, wait, By.CSS_SELECTOR, f'#actions a[href$="{move}?to=resume"]')
    assert browser.find_element(By.TAG_NAME, "h1").text == "Resume “c”?"
    click_and_wait(browser, wait, By.CSS_SELECTOR, f'form[action$="{move}"] button.primary')
    assert browser.find_element(By.ID, "done").text == "Resumed."
    assert status() is CampaignStatus.SENDING
    shot(browser, "campaign-resumed")
    actions = [a for a, user, _ in site.audit() if a in {AuditAction.CAMPAIGN_PAUSED, AuditAction.CAMPAIGN_RESUMED}]
    assert actions == [AuditAction.CAMPAIGN_PAUSED.value, AuditAction.CAMPAIGN_RESUMED.value]


def test_the_settings_page_shows_the_configured_values_read_only(browser: WebDriver, site: Site) -> None:
    settings = settings_of(site)
    log_in(browser, site, "ann", routes.SETTINGS)
    mail = browser.find_element(By.ID, "mail")
    assert f"{settings.mail.from_name} <{settings.mail.from_address}>" in mail.text
    assert (settings.mail.from_name, settings.mail.from_address) == SENDER
    assert mail.find_element(By.CSS_SELECTOR, "[data-mode]").get_attribute("data-mode") == settings.smtp.mode
    assert settings.links.public_url in browser.find_element(By.ID, "web").text
    assert browser.find_element(By.CSS_SELECTOR, "#service [data-running]").get_attribute("data-running") == "no"
    # Read-only: no field to type in, no button but logging out.
    assert not browser.find_elements(By.CSS_SELECTOR, "main input, main select, main textarea")
    assert not browser.find_elements(By.CSS_SELECTOR, "main form")
    shot(browser, "settings")


def test_an_admin_adds_a_user_then_disables_them_but_is_never_offered_to_disable_themself(
    browser: WebDriver, site: Site
) -> None:
    wait = log_in(browser, site, "bob", routes.USERS)
    own = browser.find_element(By.CSS_SELECTOR, 'tr[data-user="bob"]')
    assert "(you)" in own.text
    assert not own.find_elements(By.CSS_SELECTOR, f'form[action$="{routes.USER_DISABLE.path(user="bob")}"]')
    name, password = NEW_USER
    browser.find_element(By.ID, "name").send_keys(name)
    browser.find_element(By.CSS_SELECTOR, '#role option[value="staff"]').click()
    browser.find_element(By.ID, "password").send_keys(password)
    browser.find_element(By.ID, "password_again").send_keys(password)
    click_and_wait(browser, wait, By.CSS_SELECTOR, f'form[action$="{routes.USERS.path()}"] button.primary')
    assert name in browser.find_element(By.ID, "done").text
    row = browser.find_element(By.CSS_SELECTOR, f'tr[data-user="{name}"]')
    assert "active" in row.text
    added = {user.name: user for user in list_users(site.db)}
    assert added[name].role is Role.STAFF
    assert added[name].disabled_at is None
    shot(browser, "users-added")
    click_and_wait(browser, wait, By.CSS_SELECTOR, f'form[action$="{routes.USER_DISABLE.path(user=name)}"] button')
    assert "disabled" in browser.find_element(By.CSS_SELECTOR, f'tr[data-user="{name}"]').text
    assert next(u for u in list_users(site.db) if u.name == name).disabled_at is not None
    own = browser.find_element(By.CSS_SELECTOR, 'tr[data-user="bob"]')
    assert "active" in own.text
    assert not own.find_elements(By.CSS_SELECTOR, "button.danger")
    shot(browser, "users-disabled")
    assert [(a, user, target) for a, user, target in site.audit() if a.startswith("user-")] == [
        (AuditAction.USER_ADDED.value, "bob", name),
        (AuditAction.USER_DISABLED.value, "bob", name),
    ]
