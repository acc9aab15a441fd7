"""Staff access through real HTTP: the app on a real uvicorn server on 127.0.0.1 port 0, against a real database
(SQLite and PostgreSQL), spoken to with ``http.client`` by a client that keeps cookies and follows no redirect;
users added through the services and the real command line; the login form filled in a real headless Chromium."""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import select as io_select
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.cookies import Morsel, SimpleCookie
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from campaign.cli import cli
from campaign.config import load_settings
from campaign.models import AuditAction, Permission, Role
from campaign.services.context import AppContext
from campaign.services.sessions import BUSY_RETRY, PASSWORD_CHECKS, Logins, Staff
from campaign.services.users import add_user, disable_user, set_password
from campaign.store.engine import Database
from campaign.store.tables import audit_log, sessions, users
from campaign.tokens import SigningKeys
from campaign.web.auth import CSRF_REFUSED, require
from campaign.web.pages import SCRIPT_PAGE_POLICY
from campaign.web.server import WebServer
from tests.conftest import cli_ok
from tests.test_browser import WAIT_SECONDS, browser
from tests.test_delivery import prepare
from tests.test_web import Running, config_for, running

__all__ = ["browser"]  # a fixture used here

PASSWORDS = {"ann": "ann's long passphrase", "bob": "bob's long passphrase", "ana": "ana's long passphrase"}
ROLES = {"ann": Role.STAFF, "bob": Role.ADMIN, "ana": Role.ANALYST}
HTTPS_SESSION = "__Host-campaign-session"
HTTPS_LOGIN = "__Host-campaign-login"
HTTPS_DEVICE = "__Host-campaign-device"
ATTEMPTS = 2  # web.login_attempts in these tests


# ---------------------------------------------------------------------------------------------------------
# A client that keeps cookies, and the site
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # names lower-cased
    cookies: dict[str, Morsel[str]]  # what Set-Cookie said
    body: str

    def hidden(self, name: str) -> str:
        """The value of the page's hidden field ``name``."""
        found = re.search(rf'<input type="hidden" name="{name}" value="([^"]*)">', self.body)
        assert found, self.body
        return found.group(1)


@dataclass
class Client:
    """A browser as far as cookies go (it keeps what Set-Cookie says, deletions included); no redirect followed."""

    web: Running
    cookies: dict[str, str] = field(default_factory=dict)

    def request(self, method: str, path: str, form: dict[str, str] | None = None, **headers: str) -> Answer:
        sent = dict(headers)
        body = None
        if form is not None:
            body = urlencode(form).encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        with closing(http.client.HTTPConnection(self.web.host, self.web.port, timeout=30)) as conn:
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            text = response.read().decode()
            said: dict[str, Morsel[str]] = {}
            for name, value in response.getheaders():
                if name.lower() == "set-cookie":
                    cookie: SimpleCookie = SimpleCookie()
                    cookie.load(value)
                    said.update(cookie)
        for name, morsel in said.items():
            if morsel["max-age"] == "0":
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = morsel.value
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, said, text)

    def get(self, path: str) -> Answer:
        return self.request("GET", path)

    def post(self, path: str, form: dict[str, str]) -> Answer:
        return self.request("POST", path, form)

    def log_in(self, name: str, password: str | None = None, next_page: str = "", zone: str | None = None) -> Answer:
        """Fill in the login form as a person does: the page first (its token), then the post; ``zone``: what the
        form's script would have filled in (None: a browser without scripts)."""
        page = self.get("/login" + (f"?{urlencode({'next': next_page})}" if next_page else ""))
        assert page.status == 200, page
        form = {"csrf_token": page.hidden("csrf_token"), "next": page.hidden("next"), "name": name}
        if zone is not None:
            form["zone"] = zone
        return self.post("/login", {**form, "password": PASSWORDS.get(name, "") if password is None else password})

    def csrf(self) -> str:
        """The CSRF token of this client's session, as its pages carry it."""
        return self.get("/dashboard").hidden("csrf_token")


@dataclass
class Site:
    db: Database
    config: Path
    web: Running
    acted: list[str]  # who the test-only staff action ran for

    def client(self) -> Client:
        return Client(self.web)

    def sessions(self) -> list[tuple[str, int]]:
        with self.db.read() as conn:
            return sorted(conn.execute(select(sessions.c.id, sessions.c.user_id)).all())

    def audit(self) -> list[tuple[str, str | None, str | None]]:
        return audit_entries(self.db)


def audit_entries(db: Database) -> list[tuple[str, str | None, str | None]]:
    """The audit log: action, user name, target, oldest first."""
    stmt = (
        select(audit_log.c.action, users.c.name, audit_log.c.target)
        .outerjoin(users, users.c.id == audit_log.c.user_id)
        .order_by(audit_log.c.id)
    )
    with db.read() as conn:
        return [tuple(row) for row in conn.execute(stmt)]


def staff_config(tmp_path: Path, db: Database, public_url: str = "https://campaign.example.org") -> Path:
    """test_web's config (the database, port 0, a signing key) with this module's login settings."""
    config = config_for(tmp_path, db.url.render_as_string(hide_password=False))
    with config.open("a") as fh:  # [web] is the file's last table
        fh.write(f'login_attempts = {ATTEMPTS}\n[links]\npublic_url = "{public_url}"\n')
    return config


def serve(db: Database, config: Path, acted: list[str]) -> WebServer:
    """The app of ``config``, with one staff action of the test's own: the guard as every staff action has it."""
    server = WebServer(AppContext(settings_given=load_settings(config, environ={})), host="127.0.0.1", port=0)

    @require(Permission.ACT_ON_CAMPAIGNS)
    async def act(request: Request, staff: Staff) -> Response:
        acted.append(staff.name)
        return PlainTextResponse("done\n")

    server.app.router.routes.append(Route("/test-action", act, methods=["POST"]))
    return server


def make_site(db: Database, tmp_path: Path, public_url: str = "https://campaign.example.org") -> Iterator[Site]:
    config = staff_config(tmp_path, db, public_url)
    prepare(db, tmp_path, 2)  # campaign "c", a draft
    for name, role in ROLES.items():
        add_user(db, name, role, PASSWORDS[name])
    acted: list[str] = []
    with running(config, serve(db, config, acted)) as web:
        yield Site(db, config, web, acted)


@pytest.fixture
def site(db: Database, tmp_path: Path) -> Iterator[Site]:
    """Campaign ``c``; staff ann, admin bob, analyst ana; the app published at an https URL."""
    yield from make_site(db, tmp_path)


# ---------------------------------------------------------------------------------------------------------
# Logged out
# ---------------------------------------------------------------------------------------------------------


def test_a_visitor_not_logged_in_is_sent_to_the_login_page_which_returns_to_the_page_asked_for(site: Site) -> None:
    client = site.client()
    for method in ("GET", "HEAD"):
        answer = client.request(method, "/dashboard")
        assert (answer.status, answer.headers["location"]) == (303, "/login?next=%2Fdashboard")
        assert "campaign" not in answer.body
    page = client.get("/login?next=%2Fdashboard")
    assert page.status == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    # Its one script, from this site, fills in the browser's time zone (static/zone.js).
    assert page.headers["content-security-policy"] == SCRIPT_PAGE_POLICY
    assert re.search(r'<script src="/static/zone\.js\?v=\w+" defer></script>', page.body)
    assert page.hidden("zone") == ""
    assert page.headers["cache-control"] == "no-store"
    assert '<form method="post" action="/login">' in page.body
    assert page.hidden("next") == "/dashboard"
    assert page.hidden("csrf_token") == client.cookies[HTTPS_LOGIN]
    assert '<link rel="stylesheet" href="/static/staff.css">' in page.body
    assert page.body.count("<script") == 1  # no other, and none inline
    assert client.log_in("ann", next_page="/dashboard").headers["location"] == "/dashboard"
    # Tracking and health stay public.
    assert site.client().get("/healthz").status == 200


def test_the_stylesheet_is_served_by_the_app_and_nothing_else_under_static(site: Site) -> None:
    client = site.client()
    css = client.get("/static/staff.css")
    assert css.status == 200
    assert css.headers["content-type"] == "text/css; charset=utf-8"
    assert "body {" in css.body
    assert client.get("/static/nope.css").status == 404
    assert client.get("/static/..%2Fapp.py").status == 404


# ---------------------------------------------------------------------------------------------------------
# Logging in
# ---------------------------------------------------------------------------------------------------------


def test_logging_in_sets_a_new_secure_http_only_same_site_host_cookie_whose_hash_alone_is_stored(site: Site) -> None:
    client = site.client()
    answer = client.log_in("ann")
    assert (answer.status, answer.headers["location"]) == (303, "/dashboard")
    assert answer.headers["cache-control"] == "no-store"
    cookie = answer.cookies[HTTPS_SESSION]
    assert cookie["secure"] is True
    assert cookie["httponly"] is True
    assert cookie["samesite"].lower() == "lax"
    assert cookie["path"] == "/"
    assert cookie["domain"] == ""  # a __Host- cookie names no domain
    assert cookie["max-age"] == str(12 * 3600)
    assert len(cookie.value) >= 43
    assert answer.cookies[HTTPS_LOGIN]["max-age"] == "0"  # the login form's cookie is dropped
    assert site.sessions() == [(hashlib.sha256(cookie.value.encode()).hexdigest(), 1 + list(ROLES).index("ann"))]
    page = client.get("/dashboard")
    assert page.status == 200
    assert '<td><a href="/dashboard/campaigns/1">c</a></td>\n<td>draft</td>\n<td>guests <span' in page.body
    assert 'ann <span class="role">(staff)</span>' in page.body
    # The user name is in any letter case.
    assert site.client().log_in("ANN", PASSWORDS["ann"]).status == 303


@pytest.mark.parametrize(
    ("given", "zone", "name"),
    [
        ("asia/manila", "Asia/Manila", "Philippine Standard Time"),
        ("Europe/Berlin", "Europe/Berlin", "Central European"),  # summer or standard, by the date of the run
        (None, None, "Coordinated Universal Time"),  # a browser without scripts
        ("localtime", None, "Coordinated Universal Time"),  # the server's own zone is no one's
        ("Mars/Olympus_Mons", None, "Coordinated Universal Time"),
        ("Asia/Manila" * 20, None, "Coordinated Universal Time"),
    ],
)
def test_the_pages_give_what_happened_on_the_clock_of_the_browser_that_logged_in(
    site: Site, given: str | None, zone: str | None, name: str
) -> None:
    client = site.client()
    assert client.log_in("ann", zone=given).status == 303
    with site.db.read() as conn:
        assert conn.execute(select(sessions.c.timezone)).scalars().all() == [zone]
    before = datetime.now(UTC)
    page = client.get("/dashboard")
    found = re.search(r"As of (\d\d):(\d\d):(\d\d) ([^:<]+?)[:(]", page.body)
    assert found, page.body
    assert found.group(4).startswith(name)
    # The time is now on that clock (within the minute the page took).
    local = before.astimezone(ZoneInfo(zone or "UTC"))
    shown = local.replace(hour=int(found.group(1)), minute=int(found.group(2)), second=int(found.group(3)))
    assert abs((shown - local).total_seconds()) < 60


def test_over_plain_http_the_cookie_has_no_prefix_and_is_not_secure(db: Database, tmp_path: Path) -> None:
    for site in make_site(db, tmp_path, public_url="http://127.0.0.1"):
        answer = site.client().log_in("ann")
        assert answer.status == 303
        cookie = answer.cookies["campaign-session"]
        assert (cookie["secure"], cookie["httponly"], cookie["samesite"].lower()) == ("", True, "lax")
        assert HTTPS_SESSION not in answer.cookies


def test_a_wrong_password_an_unknown_name_and_a_disabled_user_get_the_same_page(site: Site) -> None:
    disable_user(site.db, "bob")
    pages = {}
    for name, password in (("ann", "not ann's passphrase"), ("nobody", "whatever it is"), ("bob", PASSWORDS["bob"])):
        client = site.client()
        answer = client.log_in(name, password)
        assert answer.status == 200
        assert HTTPS_SESSION not in client.cookies
        pages[name] = answer.body.replace(f'value="{name}"', 'value="NAME"').replace(
            client.cookies[HTTPS_LOGIN], "TOKEN"
        )
    assert pages["ann"] == pages["nobody"] == pages["bob"]
    assert "Wrong user name or password." in pages["ann"]
    assert site.sessions() == []
    # Failures are audited; an unknown name is not written down.
    failed = [(user, target) for action, user, target in site.audit() if action == AuditAction.LOGIN_FAILED]
    assert failed == [("ann", "ann"), (None, None), ("bob", "bob")]


def test_an_unknown_name_costs_as_much_time_as_a_wrong_password(db: Database, tmp_path: Path) -> None:
    add_user(db, "ann", Role.STAFF, PASSWORDS["ann"])
    logins = Logins(db, load_settings(staff_config(tmp_path, db), environ={}).web)

    def seconds(name: str) -> float:
        times = []
        for n in range(3):
            started = time.perf_counter()
            # A new address each time: the throttle is not what is measured.
            assert logins.login(name, "wrong password!", f"192.0.2.{n}", datetime.now(UTC)).staff is None
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    known, unknown = seconds("ann"), seconds("nobody")
    # Both check an argon2 hash (tens of milliseconds); without that an unknown name would take well under one.
    assert unknown > known / 2


def test_a_login_post_without_the_forms_token_is_refused_and_logs_nobody_in(site: Site) -> None:
    client = site.client()
    form = {"name": "ann", "password": PASSWORDS["ann"]}
    assert client.post("/login", form).status == 403  # no token, no cookie
    page = client.get("/login")
    token = page.hidden("csrf_token")
    forged = ("y" if token[0] == "x" else "x") + token[1:]  # one character changed, whatever the token was
    answer = client.post("/login", {**form, "csrf_token": forged})
    assert (answer.status, answer.body) == (403, CSRF_REFUSED)
    # The token of another browser's form is no good either.
    other = site.client().get("/login").hidden("csrf_token")
    assert client.post("/login", {**form, "csrf_token": other}).status == 403
    assert site.sessions() == []
    assert HTTPS_SESSION not in client.cookies


def test_a_cookie_set_before_the_login_never_becomes_the_session(site: Site) -> None:
    # An attacker's chosen value, and a real session of the attacker's own, each planted in ann's browser.
    mallory = site.client()
    assert mallory.log_in("ana").status == 303
    for planted in ("attacker-chosen-value-0123456789abcdefghijklmnopq", mallory.cookies[HTTPS_SESSION]):
        client = site.client()
        form = client.get("/login")
        client.cookies[HTTPS_SESSION] = planted
        answer = client.post(
            "/login", {"csrf_token": form.hidden("csrf_token"), "name": "ann", "password": PASSWORDS["ann"]}
        )
        assert answer.status == 303
        login_cookie = form.cookies[HTTPS_LOGIN].value
        token = client.cookies[HTTPS_SESSION]
        assert token not in (planted, login_cookie)
        assert "ann <span" in client.get("/dashboard").body
        stale = Client(site.web, {HTTPS_SESSION: planted})
        assert stale.get("/dashboard").status == 303  # the planted cookie opens nothing
    # Each login made a session of its own; mallory's, planted in a browser that then logged in, ended there.
    assert [user for _, user in site.sessions()] == [1, 1]


# ---------------------------------------------------------------------------------------------------------
# Roles and CSRF
# ---------------------------------------------------------------------------------------------------------


def test_an_analyst_sees_the_dashboard_but_a_staff_action_is_a_403_page_and_does_nothing(site: Site) -> None:
    analyst = site.client()
    analyst.log_in("ana")
    assert analyst.get("/dashboard").status == 200
    answer = analyst.post("/test-action", {"csrf_token": analyst.csrf()})
    assert answer.status == 403
    assert "Not allowed" in answer.body
    assert "whose role (analyst) may not do this" in answer.body
    assert site.acted == []
    staff = site.client()
    staff.log_in("ann")
    assert staff.post("/test-action", {"csrf_token": staff.csrf()}).body == "done\n"
    admin = site.client()
    admin.log_in("bob")
    assert admin.request("POST", "/test-action", {}, **{"X-CSRF-Token": admin.csrf()}).status == 200
    assert site.acted == ["ann", "bob"]


def test_a_staff_post_without_its_csrf_token_is_refused_with_one_line_and_does_nothing(site: Site) -> None:
    client = site.client()
    client.log_in("ann")
    other = site.client()
    other.log_in("bob")
    for form in ({}, {"csrf_token": ""}, {"csrf_token": other.csrf()}, {"csrf_token": client.csrf() + "x"}):
        answer = client.post("/test-action", form)
        assert (answer.status, answer.body) == (403, CSRF_REFUSED)
    assert client.request("POST", "/test-action", None).status == 403  # no body at all
    assert site.acted == []
    # Logged out, an action is never done either: the login page instead.
    anonymous = site.client().post("/test-action", {"csrf_token": client.csrf()})
    assert (anonymous.status, anonymous.headers["location"]) == (303, "/login")
    assert site.acted == []


# ---------------------------------------------------------------------------------------------------------
# Logging out, session ends
# ---------------------------------------------------------------------------------------------------------


def test_logging_out_deletes_the_session_so_the_old_cookie_opens_nothing(site: Site) -> None:
    client = site.client()
    client.log_in("ann")
    old = client.cookies[HTTPS_SESSION]
    refused = client.post("/logout", {})
    assert (refused.status, len(site.sessions())) == (403, 1)  # no CSRF token: still logged in
    answer = client.post("/logout", {"csrf_token": client.csrf()})
    assert (answer.status, answer.headers["location"]) == (303, "/login")
    assert answer.cookies[HTTPS_SESSION]["max-age"] == "0"
    assert site.sessions() == []
    replay = Client(site.web, {HTTPS_SESSION: old})
    assert replay.get("/dashboard").headers["location"] == "/login?next=%2Fdashboard"
    assert [action for action, *_ in site.audit()][-2:] == [AuditAction.LOGIN, AuditAction.LOGOUT]


def test_a_session_ends_when_idle_and_at_its_absolute_end(db: Database, tmp_path: Path) -> None:
    add_user(db, "ann", Role.STAFF, PASSWORDS["ann"])
    logins = Logins(db, load_settings(staff_config(tmp_path, db), environ={}).web)
    now = datetime.now(UTC)
    idle = logins.login("ann", PASSWORDS["ann"], None, now)
    assert idle.token is not None
    assert logins.session(idle.token, now + timedelta(minutes=59)) is not None
    assert logins.session(idle.token, now + timedelta(minutes=59 + 61)) is None
    busy = logins.login("ann", PASSWORDS["ann"], None, now)
    assert busy.token is not None
    at = now
    while at < now + timedelta(hours=12) - timedelta(minutes=30):
        at += timedelta(minutes=30)
        assert logins.session(busy.token, at) is not None, at
    assert logins.session(busy.token, now + timedelta(hours=12)) is None
    with db.read() as conn:
        assert conn.execute(select(sessions.c.id)).all() == []  # ended sessions are deleted


def test_an_old_hash_is_replaced_at_the_next_login(db: Database, tmp_path: Path) -> None:
    add_user(db, "ann", Role.STAFF, PASSWORDS["ann"])
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORDS["ann"])
    with db.write() as conn:
        conn.execute(users.update().values(password_hash=weak))
    logins = Logins(db, load_settings(staff_config(tmp_path, db), environ={}).web)
    assert logins.login("ann", PASSWORDS["ann"], None, datetime.now(UTC)).staff is not None
    with db.read() as conn:
        stored = conn.execute(select(users.c.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$")
    assert "m=65536,t=3,p=4" in stored
    assert logins.login("ann", PASSWORDS["ann"], None, datetime.now(UTC)).staff is not None


# ---------------------------------------------------------------------------------------------------------
# Rate limit, next
# ---------------------------------------------------------------------------------------------------------


def test_failed_logins_of_one_name_are_throttled_with_429_and_retry_after(site: Site) -> None:
    client = site.client()
    for _ in range(ATTEMPTS):
        assert client.log_in("ann", "not the passphrase").status == 200
    refused = client.log_in("ann")  # the right password, too late
    assert refused.status == 429
    assert 14 * 60 < int(refused.headers["retry-after"]) <= 15 * 60
    assert "Too many failed logins. Try again in 15 minutes." in refused.body
    assert HTTPS_SESSION not in client.cookies
    assert client.log_in("bob").status == 303  # another name is not held back


def test_failed_logins_from_one_address_are_throttled_across_names(site: Site) -> None:
    client = site.client()
    for n in range(4 * ATTEMPTS):
        assert client.log_in(f"guess{n}", "not the passphrase").status == 200
    assert client.log_in("ann").status == 429


def test_a_browser_that_logged_in_before_is_not_locked_out_by_others_failing_the_name(site: Site) -> None:
    # Someone failing ann's name on purpose, to keep her out (from as many addresses as they like), keeps out only
    # the browsers she never logged in from: hers kept a device cookie from her last login.
    hers = site.client()
    answer = hers.log_in("ann")
    assert answer.status == 303
    device = answer.cookies[HTTPS_DEVICE]
    assert (device["secure"], device["httponly"], device["samesite"].lower(), device["path"]) == (
        True,
        True,
        "strict",
        "/",
    )
    assert device["max-age"] == str(365 * 24 * 3600)
    assert hers.post("/logout", {"csrf_token": hers.csrf()}).status == 303
    assert HTTPS_DEVICE in hers.cookies  # a logout keeps it: it opens nothing by itself
    attacker = site.client()
    for _ in range(ATTEMPTS):
        assert attacker.log_in("ann", "not the passphrase").status == 200
    assert attacker.log_in("ann").status == 429
    assert site.client().log_in("ann").status == 429  # a new browser, even with the right password
    assert hers.log_in("ann").status == 303
    # Her own mistakes from her browser are throttled too, on their own count.
    hers = Client(site.web, {HTTPS_DEVICE: hers.cookies[HTTPS_DEVICE]})
    for _ in range(ATTEMPTS):
        assert hers.log_in("ann", "not the passphrase").status == 200
    assert hers.log_in("ann").status == 429


@pytest.mark.parametrize("change", ["other name", "tampered", "made up"])
def test_a_device_cookie_of_another_name_or_tampered_with_exempts_nothing(site: Site, change: str) -> None:
    token = site.client().log_in("bob" if change == "other name" else "ann").cookies[HTTPS_DEVICE].value
    if change == "tampered":
        token = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    elif change == "made up":
        token = "A" * len(token)
    attacker = site.client()
    for _ in range(ATTEMPTS):
        assert attacker.log_in("ann", "not the passphrase").status == 200
    assert Client(site.web, {HTTPS_DEVICE: token}).log_in("ann").status == 429


def test_a_device_token_signed_with_the_previous_key_still_exempts_and_is_renewed(db: Database, tmp_path: Path) -> None:
    add_user(db, "ann", Role.STAFF, PASSWORDS["ann"])
    settings = load_settings(staff_config(tmp_path, db), environ={}).web
    now = datetime.now(UTC)
    old = Logins(db, settings, device_keys=SigningKeys(b"old key" * 5)).login("ann", PASSWORDS["ann"], None, now)
    assert old.device is not None
    logins = Logins(db, settings, device_keys=SigningKeys(b"new key" * 5, (b"old key" * 5,)))
    for _ in range(ATTEMPTS):
        assert logins.login("ann", "wrong!", "192.0.2.9", now).staff is None
    assert logins.login("ann", PASSWORDS["ann"], "192.0.2.1", now).retry_after is not None
    renewed = logins.login("ann", PASSWORDS["ann"], "192.0.2.1", now, device=old.device)
    assert renewed.staff is not None
    assert renewed.device not in (None, old.device)
    without_old_key = Logins(db, settings, device_keys=SigningKeys(b"new key" * 5))
    assert without_old_key._device_verifies(renewed.device or "", "ann")
    assert not without_old_key._device_verifies(old.device, "ann")


def test_a_login_from_a_trusted_browser_gives_whoever_guesses_the_name_no_fresh_allowance(
    db: Database, tmp_path: Path
) -> None:
    # Before, each of ann's logins from her browser cleared the name's count: five logins, five times the guesses.
    add_user(db, "ann", Role.STAFF, PASSWORDS["ann"])
    logins = Logins(db, load_settings(staff_config(tmp_path, db), environ={}).web, device_keys=SigningKeys(b"k" * 40))
    now = datetime.now(UTC)
    device = logins.login("ann", PASSWORDS["ann"], "198.51.100.1", now).device
    guesses = 0
    for round_ in range(5):
        at = now + timedelta(seconds=round_)
        while logins.login("ann", f"guess {guesses}", f"203.0.113.{guesses % 250}", at).retry_after is None:
            guesses += 1
        assert logins.login("ann", PASSWORDS["ann"], "198.51.100.1", at, device=device).staff is not None
    assert guesses == ATTEMPTS


def test_a_device_token_has_one_spelling(db: Database, tmp_path: Path) -> None:
    # Base64's unused bits in the last character made four spellings of a token, four throttle keys for one.
    add_user(db, "ann", Role.STAFF, PASSWORDS["ann"])
    logins = Logins(db, load_settings(staff_config(tmp_path, db), environ={}).web, device_keys=SigningKeys(b"k" * 40))
    device = logins.login("ann", PASSWORDS["ann"], None, datetime.now(UTC)).device
    assert device is not None
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    first = alphabet.index(device[-1]) & ~3
    spellings = [device[:-1] + alphabet[first + i] for i in range(4)]
    assert [s for s in spellings if logins._device_verifies(s, "ann")] == [device]


class GatedHasher(PasswordHasher):
    """argon2-cffi's hasher whose checks wait for ``go`` once begun (``begun`` counts them): to hold checks open."""

    def __init__(self) -> None:
        super().__init__()
        self.begun = threading.Semaphore(0)
        self.go = threading.Event()

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        self.begun.release()
        assert self.go.wait(60)
        return super().verify(hash, password)


def test_a_login_beyond_the_password_checks_under_way_is_refused_at_once_and_not_counted(
    db: Database, tmp_path: Path
) -> None:
    # Each check holds 64 MiB: wrong passwords sent in parallel must not each get one (a review took a server to
    # 2.4 GB so). The checks in progress are held open; one more login is refused at once, uncounted.
    for name, role in ROLES.items():
        add_user(db, name, role, PASSWORDS[name])
    hasher = GatedHasher()
    logins = Logins(db, load_settings(staff_config(tmp_path, db), environ={}).web, hasher=hasher)
    results: list[Any] = []
    checking = [
        threading.Thread(
            target=lambda n=name: results.append(logins.login(n, "wrong!", "192.0.2.1", datetime.now(UTC)))
        )
        for name in ("ann", "bob")
    ][:PASSWORD_CHECKS]
    for thread in checking:
        thread.start()
    for _ in checking:
        assert hasher.begun.acquire(timeout=60)
    refused = logins.login("ana", PASSWORDS["ana"], "192.0.2.2", datetime.now(UTC))
    assert (refused.staff, refused.retry_after, refused.busy_for) == (None, None, BUSY_RETRY)
    hasher.go.set()
    for thread in checking:
        thread.join(60)
    assert [r.staff for r in results] == [None] * PASSWORD_CHECKS
    # The refused attempt was not a failure: not audited, and ana logs in at her next try.
    failed = [target for action, _, target in audit_entries(db) if action == AuditAction.LOGIN_FAILED]
    assert sorted(str(name) for name in failed) == ["ann", "bob"][:PASSWORD_CHECKS]
    assert logins.login("ana", PASSWORDS["ana"], "192.0.2.2", datetime.now(UTC)).staff is not None


def test_logins_sent_all_at_once_beyond_the_checks_under_way_get_503_and_retry_after(site: Site) -> None:
    clients = [site.client() for _ in range(6)]
    forms = []
    for n, client in enumerate(clients):
        page = client.get("/login")
        forms.append({"csrf_token": page.hidden("csrf_token"), "next": "", "name": f"guess{n}", "password": "no"})
    start = threading.Barrier(len(clients))
    answers: list[Answer] = []

    def post(client: Client, form: dict[str, str]) -> None:
        start.wait(30)
        answers.append(client.post("/login", form))

    threads = [threading.Thread(target=post, args=pair) for pair in zip(clients, forms, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    busy = [a for a in answers if a.status == 503]
    checked = [a for a in answers if a.status == 200]
    assert len(busy) + len(checked) == len(clients)
    assert busy, [a.status for a in answers]
    assert all(a.headers["retry-after"] == "2" for a in busy)
    assert all("The server is checking other logins just now. Try again in a few seconds." in a.body for a in busy)
    # Only the attempts checked count: fewer than the address's allowance (4 x 2), so the right password works.
    failed = [target for action, _, target in site.audit() if action == AuditAction.LOGIN_FAILED]
    assert len(failed) == len(checked)
    assert site.client().log_in("ann").status == 303


NEXT_PAGES = {
    "/dashboard?view=all": "/dashboard?view=all",
    "//evil.example": "/dashboard",
    "https://evil.example/dashboard": "/dashboard",
    "/\\evil.example": "/dashboard",
    "/login": "/dashboard",
}


def test_a_login_leads_only_to_a_staff_page(site: Site) -> None:
    for next_page, location in NEXT_PAGES.items():
        client = site.client()
        assert client.log_in("ann", next_page=next_page).headers["location"] == location, next_page
        # Logged in already, the login page leads on the same way.
        assert client.get("/login?" + urlencode({"next": next_page})).headers["location"] == location, next_page


# ---------------------------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------------------------


def typed_on_a_terminal(config: Path, args: list[str], lines: list[str]) -> tuple[int, str]:
    """Run ``campaign --config CONFIG ARGS`` on a terminal of its own (a pseudo-terminal, in a new session, so that
    it is the only terminal the command can find) and type ``lines``, each when the command has asked for one;
    return its exit status and all it wrote."""
    primary, secondary = os.openpty()
    command = [sys.executable, "-m", "campaign", "--config", str(config), *args]
    proc = subprocess.Popen(command, stdin=secondary, stdout=secondary, stderr=secondary, start_new_session=True)
    os.close(secondary)
    output = b""
    try:
        for line in [*lines, None]:
            asked = output.count(b": ")
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and (line is None or output.count(b": ") == asked):
                ready, _, _ = io_select.select([primary], [], [], 0.1)
                if ready:
                    try:
                        chunk = os.read(primary, 4096)
                    except OSError:  # the command ended and closed its terminal
                        chunk = b""
                    if not chunk:
                        break
                    output += chunk
                elif line is None and proc.poll() is not None:
                    break
            if line is not None:
                os.write(primary, line.encode() + b"\n")
        return proc.wait(30), output.decode(errors="replace")
    finally:
        os.close(primary)


def test_without_a_terminal_a_password_must_come_from_standard_input(db: Database, tmp_path: Path) -> None:
    # Piped into the prompt, getpass warned that it could not hide the input and echoed it, and the second line
    # was taken as the confirmation, or "Aborted!": one line instead, saying what to do.
    result = CliRunner().invoke(
        cli, ["--config", str(staff_config(tmp_path, db)), "users", "add", "zed", "--role", "staff"], input="x\n"
    )
    assert result.exit_code == 1
    assert result.output == (
        "Error: no terminal to ask for the password on: give it on the first line of standard input with "
        "--password-stdin\n"
    )


def test_users_are_added_listed_given_a_password_and_disabled_on_the_command_line(db: Database, tmp_path: Path) -> None:
    config = staff_config(tmp_path, db)
    run = cli_ok(config)
    assert run("users", "list") == "No users yet: add one with `campaign users add NAME --role admin`\n"
    secret = "a passphrase typed twice"
    status, out = typed_on_a_terminal(config, ["users", "add", "Carol", "--role", "admin"], [secret, secret])
    assert status == 0, out
    assert "Added user Carol (admin)" in out
    assert secret not in out  # not echoed
    assert run("users", "add", "dan", "--role", "analyst", "--password-stdin", input="dan's piped passphrase\n") == (
        "Added user dan (analyst)\n"
    )
    lines = run("users", "list").splitlines()
    assert lines[0].split() == ["name", "role", "added", "status"]
    assert [line.split()[:2] + line.split()[-1:] for line in lines[2:]] == [
        ["Carol", "admin", "active"],
        ["dan", "analyst", "active"],
    ]
    with db.read() as conn:
        hashes = list(conn.execute(select(users.c.password_hash)).scalars())
    assert all(h.startswith("$argon2id$") for h in hashes)
    assert secret not in "".join(hashes)

    acted: list[str] = []
    with running(config, serve(db, config, acted)) as web:
        client = Client(web)
        assert client.log_in("carol", secret).status == 303
        assert run("users", "password", "CAROL", "--password-stdin", input="a brand new passphrase\n") == (
            "New password set for Carol; sessions ended: 1\n"
        )
        assert client.get("/dashboard").status == 303  # the session ended with the old password
        assert client.log_in("Carol", secret).status == 200
        assert client.log_in("Carol", "a brand new passphrase").status == 303
        assert run("users", "disable", "carol") == "Disabled user Carol; sessions ended: 1\n"
        assert client.get("/dashboard").status == 303
        assert client.log_in("Carol", "a brand new passphrase").status == 200  # disabled: wrong password page
    assert run("users", "list").splitlines()[2].split()[-4] == "disabled"
    actions = [(action, target) for action, _, target in Site(db, config, web, acted).audit()]
    assert (AuditAction.USER_ADDED, "Carol") in actions
    assert actions[-2:] == [(AuditAction.USER_DISABLED, "Carol"), (AuditAction.LOGIN_FAILED, "Carol")]


def test_users_list_gives_times_on_this_machines_clock_and_in_utc(
    db: Database, tmp_path: Path, kathmandu: None
) -> None:
    # It gave them in UTC only, where the other commands give this machine's time first.
    add_user(db, "erin", Role.STAFF, "erin's long passphrase")
    disable_user(db, "erin")
    with db.read() as conn:
        added, disabled = conn.execute(select(users.c.created_at, users.c.disabled_at)).one()
    local, in_utc = added.astimezone(), added.astimezone(UTC)
    utc = f"{in_utc:%H:%M:%S}" if local.date() == in_utc.date() else f"{in_utc:%Y-%m-%d %H:%M:%S}"
    line = " ".join(cli_ok(staff_config(tmp_path, db))("users", "list").splitlines()[2].split())
    assert f"{local:%Y-%m-%d %H:%M:%S} +0545 ({utc} UTC)" in line
    assert f"disabled {disabled.astimezone():%Y-%m-%d %H:%M:%S} +0545" in line


@pytest.mark.parametrize(
    "args",
    [
        ["users", "add", "eve", "--role", "staff", "--password", "eve's passphrase"],
        ["users", "add", "eve", "eve's passphrase", "--role", "staff"],
        ["users", "add", "eve", "--role", "staff", "--password=eve's passphrase"],
        ["users", "password", "eve", "eve's passphrase"],
    ],
)
def test_a_password_is_never_taken_as_a_command_line_argument(db: Database, tmp_path: Path, args: list[str]) -> None:
    config = staff_config(tmp_path, db)
    result = CliRunner().invoke(cli, ["--config", str(config), *args], input="")
    assert result.exit_code == 2, result.output
    with db.read() as conn:
        assert conn.execute(select(users.c.id)).all() == []


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["add", "eve", "--role", "staff", "--password-stdin"], "short one\n", "at least 12"),
        (["add", "eve", "--role", "staff", "--password-stdin"], "", "standard input holds no password"),
        (["add", "eve", "--role", "root", "--password-stdin"], "eve's passphrase\n", "'root' is not one of"),
        (["add", "e ve", "--role", "staff", "--password-stdin"], "eve's passphrase\n", "must be 1 to 64 letters"),
        (["add", "ANN", "--role", "staff", "--password-stdin"], "eve's passphrase\n", "user 'ann' already exists"),
        (["disable", "nobody"], "", "no user named 'nobody'"),
        (["password", "nobody", "--password-stdin"], "eve's passphrase\n", "no user named 'nobody'"),
    ],
)
def test_bad_user_commands_fail_with_one_line(
    db: Database, tmp_path: Path, args: list[str], stdin: str, message: str
) -> None:
    add_user(db, "ann", Role.STAFF, PASSWORDS["ann"])
    result = CliRunner().invoke(cli, ["--config", str(staff_config(tmp_path, db)), "users", *args], input=stdin)
    assert result.exit_code in (1, 2)
    assert message in result.output
    assert "Traceback" not in result.output
    if stdin.strip():
        assert stdin.strip() not in result.output


def test_set_password_refuses_the_user_name_and_keeps_the_old_one(db: Database) -> None:
    add_user(db, "ann.lee.smith", Role.STAFF, PASSWORDS["ann"])
    with pytest.raises(ValueError, match="not be the user name"):
        set_password(db, "ann.lee.smith", "ANN.LEE.SMITH")


# ---------------------------------------------------------------------------------------------------------
# In a real browser
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def http_site(sqlite_db: Database, tmp_path: Path) -> Iterator[Site]:
    """As ``site``, published over plain http (a browser keeps no Secure cookie from http://127.0.0.1).
    On SQLite only: what the browser adds to the HTTP tests (which run on both backends) is the page's script
    and layout, the same on either, and a browser run costs seconds."""
    yield from make_site(sqlite_db, tmp_path, public_url="http://127.0.0.1")


def test_a_person_logs_in_through_the_form_at_phone_width_and_out_again(browser: WebDriver, http_site: Site) -> None:
    base = f"http://{http_site.web.host}:{http_site.web.port}"
    browser.delete_all_cookies()
    browser.set_window_size(375, 740)
    # A browser in Manila: the page's script says so with the login, and the pages' times are on its clock.
    browser.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": "Asia/Manila"})
    browser.get(f"{base}/dashboard")
    assert browser.current_url == f"{base}/login?next=%2Fdashboard"
    width: Any = browser.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1]  # nothing wider than the phone
    browser.find_element(By.ID, "name").send_keys("ann")
    browser.find_element(By.ID, "password").send_keys("a wrong passphrase")
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait = WebDriverWait(browser, WAIT_SECONDS)
    error = wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".error")))
    assert error.text == "Wrong user name or password."
    browser.find_element(By.ID, "password").send_keys(PASSWORDS["ann"])
    browser.find_element(By.CSS_SELECTOR, "button.primary").click()
    wait.until(expected_conditions.url_to_be(f"{base}/dashboard"))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Campaigns"
    assert "Philippine Standard Time" in browser.find_element(By.CSS_SELECTOR, ".as-of").text
    browser.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": ""})
    assert browser.find_element(By.CSS_SELECTOR, "tbody td").text == "c"
    # The stylesheet applied (the header's colour), loaded from the app under its policy.
    assert browser.find_element(By.TAG_NAME, "header").value_of_css_property("background-color") == (
        "rgba(26, 79, 139, 1)"
    )
    cookie = browser.get_cookie("campaign-session")
    assert cookie is not None
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    browser.find_element(By.CSS_SELECTOR, "header button").click()
    wait.until(expected_conditions.url_to_be(f"{base}/login"))
    assert browser.get_cookie("campaign-session") is None
    assert http_site.sessions() == []
