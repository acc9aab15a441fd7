"""The settings and users pages through real HTTP: the app on a real uvicorn server on 127.0.0.1 port 0 against a
real SQLite database, spoken to by test_auth's cookie-keeping client.

The site: staff ann, admin bob, analyst ana (test_dashboard's users, their hashes made once per run). What the
users page changes is checked by logging in (or failing to) and in the database's users and audit tables, never
by what the page says alone.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from markupsafe import escape

from campaign.config import load_settings
from campaign.models import AuditAction, Role
from campaign.rules.access import MIN_PASSWORD_LENGTH
from campaign.services.users import list_users
from campaign.services.workers import leader as leader_of
from campaign.services.workers import registry, running_workers
from campaign.store import workers as worker_store
from campaign.store.engine import Database
from campaign.web.auth import CSRF_REFUSED, WRONG_LOGIN
from scheduler.lock import ServiceLock
from tests.test_auth import Answer, Client, Site, staff_config
from tests.test_dashboard import HOSTILE, add_users
from tests.test_web import running

SMTP_PASSWORD = "smtp-password-that-must-stay-hidden"
SECRET_KEY = "signing-key-that-must-stay-hidden-0123456789"
HOOK_SECRET = "hook-secret-that-must-stay-hidden"
RELAY_USER = "relay-login-name"
CAROL_PASSWORD = "carol's own long passphrase"


def make_site(db: Database, tmp_path: Path) -> Iterator[Site]:
    config = staff_config(tmp_path, db)
    with config.open("a") as fh:  # after staff_config's [links]
        fh.write(f'[smtp]\nmode = "relay"\nhost = "relay.example.net"\nport = 2525\nusername = "{RELAY_USER}"\n')
        fh.write('servers = ["backup.example.net:587:2"]\n')
    add_users(db, ann=Role.STAFF, bob=Role.ADMIN, ana=Role.ANALYST)
    with running(config) as web:
        yield Site(db, config, web, [])


def set_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every secret the process could know, set where the app reads them: none may reach a page."""
    monkeypatch.setenv("CAMPAIGN_SMTP_PASSWORD", SMTP_PASSWORD)
    monkeypatch.setenv("CAMPAIGN_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("CAMPAIGN_REGISTRATION_HOOK_SECRET", HOOK_SECRET)


@pytest.fixture
def site(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    """The site on each backend, every secret set."""
    set_secrets(monkeypatch)
    yield from make_site(db, tmp_path)


@pytest.fixture
def sqlite_site(sqlite_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    """The site on a SQLite file, every secret set: for the service's lock file beside it."""
    set_secrets(monkeypatch)
    yield from make_site(sqlite_db, tmp_path)


def logged_in(site: Site, name: str) -> Client:
    client = site.client()
    assert client.log_in(name).status == 303
    return client


def users(site: Site) -> dict[str, tuple[Role, bool]]:
    """Each user's role and whether disabled, as the database has them."""
    return {u.name: (u.role, u.disabled_at is not None) for u in list_users(site.db)}


def add(client: Client, name: str, password: str, again: str | None = None, role: str = "staff") -> Answer:
    form = {"name": name, "role": role, "password": password, "password_again": password if again is None else again}
    return client.post("/users", {"csrf_token": client.csrf(), **form})


def field_error(page: Answer, field_id: str) -> str:
    """The error beside field ``field_id``, after checking the field points at it and is marked invalid."""
    found = re.search(rf'<p class="field-error[^"]*" id="{re.escape(field_id)}-error">([^<]*)</p>', page.body)
    assert found, f"no error beside {field_id}"
    tag = re.search(rf'<(?:input|select) id="{re.escape(field_id)}"[^>]*>', page.body)
    assert tag, field_id
    assert f"{field_id}-error" in tag.group(0)
    assert 'aria-invalid="true"' in tag.group(0)
    return html.unescape(found.group(1))


def row_number(page: Answer, name: str) -> int:
    """The line of user ``name`` in the list (its forms' field ids carry it)."""
    names = re.findall(r'<tr data-user="([^"]*)">', page.body)
    return names.index(name) + 1


# ---------------------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------------------


def test_settings_show_sender_relays_url_database_and_service_but_no_secret(site: Site) -> None:
    ann = logged_in(site, "ann")
    page = ann.get("/settings")
    assert page.status == 200, page.body
    text = html.unescape(page.body)
    assert "Events team <invitations@example.org>" in text
    assert re.search(
        r'data-mode="relay">relay: messages go out through relay.example.net:2525, backup.example.net:587', text
    )
    assert "https://campaign.example.org" in text
    assert f"<dt>Database</dt><dd>{site.db.backend}</dd>" in text
    assert site.db.describe() not in text
    # No leader in the registry: not running on a SQLite file (its lock is free), not known on PostgreSQL.
    if site.db.is_sqlite:
        assert re.search(r'data-running="no">\s*not running', text)
    else:
        assert re.search(r'data-running="unknown">\s*not known', text)
    for secret in (SMTP_PASSWORD, SECRET_KEY, HOOK_SECRET, RELAY_USER):
        assert secret not in text
    key_file = (site.config.parent / "data" / "secret.key").read_text().strip()
    assert len(key_file) >= 32
    assert key_file not in text


def test_settings_show_the_service_running_while_its_lock_beside_the_sqlite_file_is_held(sqlite_site: Site) -> None:
    # SQLite itself: the service's lock is a file beside the database (on PostgreSQL the registry tells, below).
    ann = logged_in(sqlite_site, "ann")
    assert re.search(r'data-running="no">\s*not running', html.unescape(ann.get("/settings").body))
    with ServiceLock(sqlite_site.db):
        again = html.unescape(ann.get("/settings").body)
    assert re.search(r'data-running="yes">\s*running \(process \d+\)', again)


def test_settings_name_the_scheduler_leader_and_the_workers_alive_as_campaign_workers_judges_them(
    site: Site,
) -> None:
    now = datetime.now(UTC)
    rows = [  # name, role, state, pid, heartbeat age (seconds); the lease is 30 s
        ("sched-a", worker_store.SCHEDULER, worker_store.LEADER, 101, 1),
        ("sched-b", worker_store.SCHEDULER, worker_store.STANDBY, 102, 1),
        ("sched-dead", worker_store.SCHEDULER, worker_store.LEADER, 103, 3600),  # said leader, stopped beating
        ("w-1", worker_store.WORKER, worker_store.ALIVE, 201, 2),
        (HOSTILE, worker_store.WORKER, worker_store.ALIVE, 202, 12),
        ("w-stale", worker_store.WORKER, worker_store.ALIVE, 203, 3600),
        ("w-stopped", worker_store.WORKER, worker_store.STOPPED, 204, 5),
    ]
    with site.db.write() as conn:
        for name, role, state, pid, age in rows:
            at = now - timedelta(seconds=age)
            worker_store.register(conn, name=name, role=role, host="mail-1", pid=pid, state=state, now=at)
        worker_store.beat(conn, "w-1", state=worker_store.ALIVE, now=now - timedelta(seconds=2),
                          counts=worker_store.Counts(claimed=9, sent=7, failed=0, lost=0, rate=3.5))  # fmt: skip
    page = logged_in(site, "ann").get("/settings")
    assert page.status == 200, page.body
    assert HOSTILE not in page.body  # a worker's name is whatever --name said: escaped
    text = html.unescape(page.body)
    leader = re.search(r'<dd id="leader" data-leader="([^"]*)">([^<]*)</dd>', text)
    assert leader, text
    assert leader.group(1) == "sched-a"
    assert re.fullmatch(r"sched-a \(process 101 on mail-1\), heartbeat (\d+\.\d) s ago", leader.group(2)), leader
    assert 0.5 <= float(re.findall(r"heartbeat (\S+) s ago", leader.group(2))[0]) < 30
    assert re.search(r'data-running="yes">\s*running \(process 101\)', text)  # on PostgreSQL too: the leader says
    # Read from the page as sent (escaped), so that a hostile name cannot fake the markup read.
    shown = {html.unescape(name): row for name, row in re.findall(r'<tr data-worker="([^"]*)">(.*?)</tr>', page.body)}
    assert list(shown) == [HOSTILE, "w-1"], "alive workers only (by start), not the stale, stopped or schedulers"
    assert '<dd id="workers-alive">2</dd>' in text
    cells = {name: [html.unescape(c) for c in re.findall(r"<td[^>]*>([^<]*)</td>", row)] for name, row in shown.items()}
    assert cells["w-1"][:3] == ["w-1", "mail-1", "201"]
    assert cells["w-1"][4:] == ["0", "7", "3.5"]  # in hand, sent, msg/s from its last beat
    ages = {name: float(row[3].removesuffix(" s ago")) for name, row in cells.items()}
    assert 1.5 <= ages["w-1"] < 30, ages
    assert 11.5 <= ages[HOSTILE] < 30, ages
    # The same judgement as `campaign workers` and `campaign status`: one registry read, one rule.
    states = registry(site.db, load_settings(site.config, environ={}))
    assert [s.record.name for s in running_workers(states)] == list(shown)
    found = leader_of(states)
    assert found is not None
    assert found.record.name == "sched-a"

    # The leader gone: none leads, and the page says so.
    with site.db.write() as conn:
        worker_store.set_state(conn, "sched-a", worker_store.STOPPED, now)
    text = html.unescape(logged_in(site, "ann").get("/settings").body)
    assert '<dd id="leader" data-leader="">none leads now' in text


def test_settings_are_for_staff_and_admins_and_the_nav_offers_only_what_a_role_may_open(site: Site) -> None:
    ann, bob, ana = (logged_in(site, name) for name in ("ann", "bob", "ana"))
    assert bob.get("/settings").status == 200
    refused = ana.get("/settings")
    assert refused.status == 403
    assert "Not allowed" in refused.body
    assert "relay.example.net" not in refused.body
    links = {name: re.findall(r'<a href="(/settings|/users)">', c.get("/dashboard").body) for name, c in
             (("ann", ann), ("bob", bob), ("ana", ana))}  # fmt: skip
    assert links == {"ann": ["/settings"], "bob": ["/settings", "/users"], "ana": []}


# ---------------------------------------------------------------------------------------------------------
# Users
# ---------------------------------------------------------------------------------------------------------


def test_an_admin_adds_a_user_who_can_then_log_in_and_the_audit_log_names_the_admin(site: Site) -> None:
    bob = logged_in(site, "bob")
    listed = bob.get("/users")
    assert listed.status == 200
    assert re.findall(r'<tr data-user="([^"]*)">', listed.body) == ["ana", "ann", "bob"]
    done = add(bob, "carol", CAROL_PASSWORD, role="analyst")
    assert done.status == 303
    assert done.headers["location"] == "/users?done=added&user=carol"
    assert users(site)["carol"] == (Role.ANALYST, False)
    shown = bob.get(done.headers["location"]).body
    assert "User carol added." in shown
    assert (AuditAction.USER_ADDED.value, "bob", "carol") in site.audit()
    # The users page shows it in its history, by bob, with the role given; logins are not shown there.
    history = shown.split('<section id="history">', 1)[1]
    assert re.findall(r'<tr data-action="([a-z-]+)">', history) == [AuditAction.USER_ADDED.value]
    assert "role: analyst" in history
    assert "<td>bob</td><td>carol</td>" in history  # by bob, to carol
    carol = site.client()
    assert carol.log_in("carol", CAROL_PASSWORD).status == 303
    assert carol.get("/dashboard").status == 200


def test_a_refused_password_is_explained_beside_its_field_and_the_name_and_role_are_kept(site: Site) -> None:
    bob = logged_in(site, "bob")
    short = add(bob, "carol", "too short", role="admin")
    assert short.status == 400
    assert field_error(short, "password") == (
        f"the password is 9 characters long; give one of at least {MIN_PASSWORD_LENGTH} (a few words make a good one)"
    )
    assert re.search(r'<input id="name" name="name" type="text" value="carol"', short.body)
    assert '<option value="admin" selected>' in short.body
    assert "too short" not in short.body  # a password typed is never sent back
    differ = add(bob, "carol", CAROL_PASSWORD, again=CAROL_PASSWORD + "!")
    assert differ.status == 400
    assert "differ" in field_error(differ, "password")
    own_name = add(bob, "carol.the.admin", "carol.the.admin")
    assert "must not be the user name" in field_error(own_name, "password")
    taken = add(bob, "ANN", CAROL_PASSWORD)
    assert taken.status == 409
    assert "already exists" in field_error(taken, "name")
    assert set(users(site)) == {"ann", "bob", "ana"}


def test_unsafe_input_in_a_user_name_is_refused_and_shown_escaped(site: Site) -> None:
    bob = logged_in(site, "bob")
    page = add(bob, HOSTILE, CAROL_PASSWORD, role='"><script>x</script>')
    assert page.status == 400
    assert "<script>" not in page.body
    assert HOSTILE in field_error(page, "name")  # the name as typed, escaped in the page
    assert "choose a role" in field_error(page, "role")
    assert str(escape(HOSTILE)) in page.body  # as Jinja escapes it, in the field kept for correcting
    assert set(users(site)) == {"ann", "bob", "ana"}


def test_staff_and_analysts_get_403_on_every_users_page_and_change_nothing(site: Site) -> None:
    for name in ("ann", "ana"):
        client = logged_in(site, name)
        assert client.get("/users").status == 403
        token = client.csrf()
        assert add(client, "carol", CAROL_PASSWORD).status == 403
        assert client.post("/users/bob/disable", {"csrf_token": token}).status == 403
        reset = {"csrf_token": token, "password": CAROL_PASSWORD, "password_again": CAROL_PASSWORD}
        assert client.post("/users/bob/password", reset).status == 403
    assert users(site) == {"ann": (Role.STAFF, False), "bob": (Role.ADMIN, False), "ana": (Role.ANALYST, False)}
    assert logged_in(site, "bob").get("/users").status == 200  # bob's password unchanged


def test_a_users_post_without_its_csrf_token_is_refused_and_changes_nothing(site: Site) -> None:
    bob = logged_in(site, "bob")
    form = {"name": "carol", "role": "staff", "password": CAROL_PASSWORD, "password_again": CAROL_PASSWORD}
    for path, fields in (("/users", form), ("/users/ann/disable", {}), ("/users/ann/password", form)):
        for token in ({}, {"csrf_token": "forged"}):
            refused = bob.post(path, {**fields, **token})
            assert (refused.status, refused.body) == (403, CSRF_REFUSED)
    assert set(users(site)) == {"ann", "bob", "ana"}
    assert not users(site)["ann"][1]
    assert site.client().log_in("ann").status == 303  # ann keeps her password


def test_disabling_a_user_ends_their_session_and_their_logins_but_never_the_admins_own(site: Site) -> None:
    bob, ana = logged_in(site, "bob"), logged_in(site, "ana")
    page = bob.get("/users")
    assert "/users/bob/disable" not in page.body
    assert "/users/ana/disable" in page.body
    done = bob.post("/users/ana/disable", {"csrf_token": bob.csrf()})
    assert done.status == 303
    assert done.headers["location"] == "/users?done=disabled&user=ana"
    assert users(site)["ana"] == (Role.ANALYST, True)
    assert (AuditAction.USER_DISABLED.value, "bob", "ana") in site.audit()
    assert ana.get("/dashboard").status == 303  # her session ended: back to the login page
    again = site.client().log_in("ana")
    assert again.status == 200
    assert html.escape(WRONG_LOGIN) in again.body
    listed = bob.get("/users")
    assert re.search(r'<tr data-user="ana">.*?disabled <span class="rate">since', listed.body, re.S)
    # Bob's own account: refused with one line beside it, still enabled, bob still logged in.
    own = bob.post("/users/bob/disable", {"csrf_token": bob.csrf()})
    assert own.status == 400
    assert "you cannot disable yourself; another admin can" in html.unescape(own.body)
    assert users(site)["bob"] == (Role.ADMIN, False)
    assert bob.get("/users").status == 200
    assert bob.post("/users/nobody/disable", {"csrf_token": bob.csrf()}).status == 404


def test_an_admin_gives_a_user_a_new_password_checked_by_the_same_rules(site: Site) -> None:
    bob, ann = logged_in(site, "bob"), logged_in(site, "ann")
    token = bob.csrf()
    number = row_number(bob.get("/users"), "ann")
    bad = bob.post("/users/ann/password", {"csrf_token": token, "password": "ann", "password_again": "ann"})
    assert bad.status == 400
    assert "at least" in field_error(bad, f"password-{number}")
    new = "ann's brand new passphrase"
    done = bob.post("/users/ann/password", {"csrf_token": token, "password": new, "password_again": new})
    assert done.status == 303
    assert done.headers["location"] == "/users?done=password&user=ann"
    assert (AuditAction.PASSWORD_SET.value, "bob", "ann") in site.audit()
    assert ann.get("/dashboard").status == 303  # the old session ended with the old password
    assert site.client().log_in("ann").status == 200  # the old password no longer works
    assert site.client().log_in("ann", new).status == 303
