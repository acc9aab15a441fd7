"""The staff web interface tried as an attacker would, through real HTTP: the app on a real uvicorn server on
127.0.0.1 port 0 against a real SQLite file, spoken to by test_auth's cookie-keeping client.

Every check runs over :data:`ROUTES`, a table of every route the app serves and who may use it, so a new route
without an entry fails :func:`test_the_table_names_every_route_the_app_serves`:

* every POST without its CSRF token is a 403 that changes no row and no file; a form over the limit is a 413 with
  the token in the header too;
* an analyst gets 403 on every staff action (reports only), staff on every admin one, a visitor not logged in the
  login page; a GET changes nothing;
* unsafe input in every field (markup, template syntax, NUL, CR/LF, bidirectional overrides, ``javascript:``,
  100 KB, bytes that are not UTF-8 in an upload) is refused in one line beside the field or kept safely, and never
  served unescaped afterwards on any page; no answer is a 500 or a traceback, no error names a server folder but
  the configured ones; an event's text reaches a message as text, never as a header or a template; a template
  cannot leave Jinja's sandbox, and its output is shown only in the sandboxed frame;
* path parameters with ``..`` find nothing, no redirect leaves the site; every staff page carries a policy
  forbidding inline scripts and holds none, nor an ``on*`` attribute.

The login's ``next``, session fixation, the 50 MB streamed upload and the oversized one have their tests in
test_auth and test_web_contacts.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import html
import http.client
import re
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import select
from starlette.routing import Route

from campaign.config import Settings, load_settings
from campaign.models import Role
from campaign.rules import routes
from campaign.rules.routes import RoutePath
from campaign.rules.wave_specs import WaveOptionError
from campaign.services.context import AppContext
from campaign.services.events import get_event
from campaign.services.rendering import preview_contact
from campaign.services.waves import MAX_SUBJECT_LENGTH, WaveOptions, add_wave, create_with_waves
from campaign.store.engine import Database
from campaign.store.tables import contacts, lists
from campaign.web.auth import CSRF_REFUSED, NUL_REFUSED, WRONG_LOGIN
from tests.test_auth import Answer, Client, Site, staff_config
from tests.test_dashboard import add_users
from tests.test_delivery import TEMPLATES
from tests.test_scheduling import add_contacts, add_event_at
from tests.test_web import running
from tests.test_web_campaigns import PEOPLE
from tests.test_web_contacts import finished_import, multipart
from tests.test_web_events import sample_form

SCRIPT = "<script>alert(1)</script>"
ATTRIBUTE = '"><img src=x onerror=alert(1)>'
MARKERS = ("<script>alert(1)", "<img src=x onerror", "onerror=alert(1)>")
"""What must never appear in a page the app serves once unsafe input was typed (raw, unescaped)."""

# Who may use a route: public (no login), reports (analysts too), act (staff and admins), admin (admins only).
PUBLIC, REPORTS, ACT, ADMIN = "public", "reports", "act", "admin"


@dataclass(frozen=True)
class Entry:
    route: RoutePath
    who: str
    methods: tuple[str, ...] = ("GET",)
    form: tuple[tuple[str, str], ...] = ()
    """A POST's fields besides the token: what would change something if the guard let it through."""


EVENT_EDIT_FORM = (("title", "Changed"), ("action", "confirm"))
ROUTES: tuple[Entry, ...] = (
    Entry(routes.INDEX, PUBLIC),
    Entry(routes.HEALTH, PUBLIC),
    Entry(routes.OPEN, PUBLIC),
    Entry(routes.CLICK, PUBLIC),
    Entry(routes.CALENDAR, PUBLIC),
    Entry(routes.UNSUBSCRIBE, PUBLIC, ("GET", "POST")),
    Entry(routes.REGISTRATION_HOOK, PUBLIC, ("POST",)),
    Entry(routes.LOGIN, PUBLIC, ("GET", "POST")),
    Entry(routes.LOGOUT, PUBLIC, ("POST",)),
    Entry(routes.STATIC, PUBLIC),
    Entry(routes.DASHBOARD, REPORTS),
    Entry(routes.CAMPAIGN_PAGE, REPORTS),
    Entry(routes.CAMPAIGN_RETRY, ACT, ("POST",)),
    Entry(routes.MAILBOX, REPORTS),
    Entry(routes.MAILBOX_MESSAGE, REPORTS),
    Entry(routes.MAILBOX_HTML, REPORTS),
    Entry(routes.CONTACTS, ACT),
    Entry(routes.CONTACTS_UPLOAD, ACT, ("POST",), (("list", "forged"),)),
    Entry(routes.CONTACTS_IMPORT, ACT),
    Entry(routes.CONTACTS_REJECTS, ACT),
    Entry(routes.CONTACTS_LIST, ACT),
    Entry(routes.CONTACT_PAGE, ACT),
    Entry(routes.CONTACT_SUPPRESS, ACT, ("POST",)),
    Entry(routes.CONTACT_UNSUPPRESS, ACT, ("POST",)),
    Entry(routes.EVENTS, ACT),
    Entry(routes.EVENT_NEW, ACT, ("GET", "POST"), (("action", "save"),)),
    Entry(routes.EVENT_PAGE, ACT),
    Entry(routes.EVENT_EDIT, ACT, ("GET", "POST"), EVENT_EDIT_FORM),
    Entry(routes.EVENT_CANCEL, ACT, ("GET", "POST"), (("action", "confirm"),)),
    Entry(routes.CAMPAIGN_NEW, ACT, ("GET", "POST"), (("name", "forged"), ("list", "guests"))),
    Entry(routes.CAMPAIGN_MANAGE, ACT),
    Entry(routes.CAMPAIGN_PREVIEW_HTML, ACT),
    Entry(routes.CAMPAIGN_LAUNCH, ACT, ("GET", "POST")),
    Entry(routes.CAMPAIGN_MOVE, ACT, ("GET", "POST"), (("to", "cancel"),)),
    Entry(routes.CAMPAIGN_TEST_SEND, ACT, ("POST",), (("to", "staff@example.org"),)),
    Entry(routes.CAMPAIGN_TEMPLATES, ACT),
    Entry(routes.CAMPAIGN_TEMPLATE_EDIT, ACT, ("GET", "POST"), (("text", "forged"), ("action", "save"))),
    Entry(routes.CAMPAIGN_TEMPLATE_PREVIEW, ACT, ("POST",), (("text", "forged"),)),
    Entry(routes.CAMPAIGN_TEMPLATE_FRAME, ACT),
    Entry(routes.CAMPAIGN_TEMPLATE_REVERT, ACT, ("POST",)),
    Entry(routes.CAMPAIGN_WAVE_NEW, ACT, ("GET", "POST"), (("name", "forged"), ("kind", "reminder"))),
    Entry(routes.CAMPAIGN_WAVE_EDIT, ACT, ("GET", "POST"), (("offset", "-1h"),)),
    Entry(routes.CAMPAIGN_WAVE_REMOVE, ACT, ("GET", "POST")),
    Entry(routes.CAMPAIGN_WAVES_STATUS, ACT),
    Entry(routes.SETTINGS, ACT),
    Entry(routes.USERS, ADMIN, ("GET", "POST"), (("name", "mallory"), ("role", "admin"))),
    Entry(routes.USER_DISABLE, ADMIN, ("POST",)),
    Entry(routes.USER_PASSWORD, ADMIN, ("POST",), (("password", "a new long passphrase"),)),
)
STAFF = [e for e in ROUTES if e.who != PUBLIC]
POSTS = [e for e in STAFF if "POST" in e.methods] + [e for e in ROUTES if e.route is routes.LOGOUT]
GETS = [e for e in STAFF if "GET" in e.methods]


@dataclass
class World:
    site: Site
    settings: Settings
    campaign_id: int
    values: dict[str, str]  # a value for each path parameter

    @property
    def folders(self) -> tuple[Path, ...]:
        """The folders of the settings, which staff pages may name."""
        return (self.settings.data_dir, self.settings.templates_dir)

    def client(self, name: str) -> Client:
        client = self.site.client()
        assert client.log_in(name).status == 303
        return client

    def path(self, route: RoutePath, **given: str) -> str:
        return route.path(**{name: given.get(name, self.values[name]) for name in route.parameters})

    def snapshot(self) -> dict[str, Any]:
        """Every row that an action could change (not sessions, caches or worker heartbeats), and every file of
        the data folder but the database's own and the previews'."""
        rows: dict[str, Any] = {}
        with self.site.db.read() as conn:
            for table in contacts.metadata.sorted_tables:
                if table.name not in ("sessions", "report_snapshots", "workers"):
                    rows[table.name] = sorted(map(repr, conn.execute(select(table)).all()))
        data = self.settings.data_dir
        previews = self.settings.resolve(self.settings.render.preview_dir)  # what a preview writes: a cache
        rows["files"] = {
            str(p.relative_to(data)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(data.rglob("*"))
            if p.is_file() and not p.name.startswith("campaign.db") and not p.is_relative_to(previews)
        }
        return rows


@pytest.fixture
def world(db: Database, tmp_path: Path) -> Iterator[World]:
    add_contacts(db, tmp_path, PEOPLE)
    add_event_at(db, (datetime.now(UTC) + timedelta(days=10)).replace(second=0, microsecond=0))
    config = staff_config(tmp_path, db)
    with config.open("a") as fh:
        fh.write(f'[paths]\ntemplates = "{TEMPLATES}"\n')
    add_users(db, ann=Role.STAFF, bob=Role.ADMIN, ana=Role.ANALYST)
    settings = load_settings(config, environ={})
    AppContext(settings_given=settings).signing_key()
    campaign_id = create_with_waves(db, settings, event_ref="talk", list_name="guests", name="c").campaign.id
    with db.read() as conn:
        contact_id = conn.execute(select(contacts.c.id).order_by(contacts.c.id)).scalars().first()
        list_id = conn.execute(select(lists.c.id)).scalar_one()
    values = {
        "token": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "name": "staff.css",
        "campaign": str(campaign_id),
        "message": "1-2-000003",
        "job": "nojob",
        "list": str(list_id),
        "contact": str(contact_id),
        "event": "talk",
        "file": "invitation.html",
        "frame": "noframe",
        "wave": settings.waves.specs[0].name,  # a pending wave of the default ones
        "user": "ann",
    }
    with running(config) as web:
        yield World(Site(db, config, web, []), settings, campaign_id, values)


def post(client: Client, path: str, form: dict[str, str]) -> Answer:
    """A POST as a browser sends it; the contacts upload as multipart (its form is one)."""
    if path != routes.CONTACTS_UPLOAD.path():
        return client.post(path, form)
    content_type, pieces = multipart(form, "c.csv", [b"email\nforged@example.org\n"])
    return _raw(client, path, content_type, b"".join(pieces))


def _raw(client: Client, path: str, content_type: str, body: bytes) -> Answer:
    headers = {"Content-Type": content_type, "Cookie": "; ".join(f"{k}={v}" for k, v in client.cookies.items())}
    with closing(http.client.HTTPConnection(client.web.host, client.web.port, timeout=30)) as conn:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        text = response.read().decode()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, {}, text)


ERROR_TEXT = re.compile(r'<(?:p|li|ul)\b[^>]*class="[^"]*\berror\b[^"]*"[^>]*>(.*?)</(?:p|li)>', re.S)
"""The text of an error a page shows (beside a field, or at its top)."""


def unsafe(answer: Answer, where: str, folders: tuple[Path, ...] = ()) -> list[str]:
    """What is wrong with ``answer``: a server error, a traceback, something typed served raw, an error that is not
    one line, or that names a path of the server's other than ``folders`` (the configured ones staff see)."""
    found = []
    if answer.status >= 500 or "Traceback" in answer.body:
        found.append(f"{where}: {answer.status} {answer.body[:200]!r}")
    found += [f"{where}: {marker} served raw" for marker in MARKERS if marker in answer.body]
    for error in ERROR_TEXT.findall(answer.body):
        text = re.sub(r"<[^>]+>", "", error).strip()
        for folder in folders:
            text = text.replace(str(folder), "")
        if "\n" in text or "\r" in text:
            found.append(f"{where}: an error of several lines {text[:200]!r}")
        # An error names what to fix in the user's terms, never a folder of the server.
        if any(folder in text for folder in ("/tmp/", "/work/", "/home/", "/var/", "/usr/")):
            found.append(f"{where}: an error naming a server path {text[:200]!r}")
    return found


def assert_safe(answer: Answer, where: str, folders: tuple[Path, ...]) -> None:
    """No server error, no traceback, nothing typed served raw (:func:`unsafe`)."""
    assert unsafe(answer, where, folders) == []


# ---------------------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------------------


def test_the_table_names_every_route_the_app_serves(world: World) -> None:
    served = {
        (r.name, method)
        for r in world.site.web.server.app.router.routes
        if isinstance(r, Route) and r.methods
        for method in r.methods
        if method != "HEAD"
    }
    listed = {(e.route.name, method) for e in ROUTES for method in e.methods}
    assert served == listed
    assert len({e.route.name for e in ROUTES}) == len(ROUTES)


# ---------------------------------------------------------------------------------------------------------
# CSRF, roles, logged out
# ---------------------------------------------------------------------------------------------------------


def test_every_post_without_its_csrf_token_is_refused_and_changes_nothing(world: World) -> None:
    bob = world.client("bob")  # an admin: every action is his to do, but for the token
    before = world.snapshot()
    for entry in POSTS:
        path = world.path(entry.route)
        for token in ({}, {"csrf_token": ""}, {"csrf_token": bob.csrf() + "x"}):
            answer = post(bob, path, {**token, **dict(entry.form)})
            assert (answer.status, answer.body) == (403, CSRF_REFUSED), (path, token)
    assert world.snapshot() == before
    assert bob.get("/dashboard").status == 200  # the logout without its token did not log him out


def test_an_analyst_reads_reports_only_and_a_staff_member_is_no_admin(world: World) -> None:
    clients = {"ana": world.client("ana"), "ann": world.client("ann")}
    before = world.snapshot()
    for name, refused in (("ana", (ACT, ADMIN)), ("ann", (ADMIN,))):
        client = clients[name]
        token = client.csrf()
        for entry in STAFF if name == "ana" else [e for e in STAFF if e.who == ADMIN]:
            path = world.path(entry.route)
            for method in entry.methods:
                if method == "GET":
                    answer = client.get(path)
                else:
                    answer = post(client, path, {"csrf_token": token, **dict(entry.form)})
                if entry.who in refused:
                    assert answer.status == 403, (name, method, path)
                    assert "Not allowed" in answer.body, (name, method, path)
                else:
                    assert answer.status in (200, 404), (name, method, path, answer.status)
    assert world.snapshot() == before


def test_a_visitor_not_logged_in_gets_the_login_page_and_never_a_staff_page(world: World) -> None:
    visitor = world.site.client()
    before = world.snapshot()
    for entry in STAFF:
        path = world.path(entry.route)
        for method in entry.methods:
            answer = visitor.get(path) if method == "GET" else post(visitor, path, dict(entry.form))
            assert answer.status == 303, (method, path)
            assert answer.headers["location"].startswith("/login"), (method, path)
            assert answer.body == "", (method, path)
    assert world.snapshot() == before


# ---------------------------------------------------------------------------------------------------------
# Paths and redirects
# ---------------------------------------------------------------------------------------------------------

TRAVERSALS = ("..%2F..%2Fconfig.toml", "%2e%2e%2fconfig.toml", "..%5C..%5Cconfig.toml", "%2Fetc%2Fpasswd", "..")


def test_path_parameters_never_reach_outside_their_folders(world: World) -> None:
    bob = world.client("bob")
    token = bob.csrf()
    before = world.snapshot()
    secret = (world.site.config.parent / "config.toml").read_text()
    # The static files and the tokens' routes too; not the pixel, the same GIF whatever its address.
    public = [e for e in ROUTES if e.who == PUBLIC and e.route.parameters and e.route is not routes.OPEN]
    for entry in GETS + [e for e in POSTS if e.route.parameters] + public:
        for parameter in entry.route.parameters:
            for bad in TRAVERSALS:
                path = world.path(entry.route, **{parameter: "PARAMETER"}).replace("PARAMETER", bad)
                for method in entry.methods:
                    answer = bob.get(path) if method == "GET" else post(bob, path, {"csrf_token": token})
                    assert answer.status in (400, 404, 405), (method, path, answer.status)
                    assert "[database]" not in answer.body
                    assert secret not in answer.body
                    assert "root:" not in answer.body
    assert world.snapshot() == before


def test_every_redirect_stays_on_this_site(world: World) -> None:
    """The login's ``next`` has its own test (test_auth); here every page, with each parameter that could name
    where to go (``next``, ``done``, ``to``) set to another site."""
    ann = world.client("ann")
    visitor = world.site.client()
    for evil in ("//evil.example", "https://evil.example", "/\\evil.example", "javascript:alert(1)"):
        query = "&".join(f"{name}={quote(evil)}" for name in ("next", "done", "to"))
        for client in (ann, visitor):
            for entry in [*GETS, Entry(routes.LOGIN, PUBLIC)]:
                answer = client.get(world.path(entry.route) + "?" + query)
                assert_safe(answer, query, world.folders)
                if answer.status in (301, 302, 303, 307, 308):
                    location = answer.headers["location"]
                    assert location.startswith("/"), location
                    assert not location.startswith(("//", "/\\")), location
                    assert "evil" not in location.split("?")[0], location
                assert 'href="//evil' not in answer.body
                assert 'href="javascript:' not in answer.body
                assert 'value="//evil' not in answer.body  # the login form's hidden next


# ---------------------------------------------------------------------------------------------------------
# Headers and scripts
# ---------------------------------------------------------------------------------------------------------

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.I)
EVENT_ATTRIBUTE = re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.I)


def test_every_staff_page_forbids_inline_scripts_and_holds_none(world: World) -> None:
    bob = world.client("bob")
    editor = bob.get(world.path(routes.CAMPAIGN_TEMPLATE_EDIT)).body
    frame = re.search(r'<iframe[^>]*src="[^"]*/frames/([^"]+)"', editor)
    assert frame, "the editor shows its preview in a frame"
    given = {routes.CAMPAIGN_TEMPLATE_FRAME: {"frame": frame.group(1)}}
    query = {routes.CAMPAIGN_PREVIEW_HTML: f"?email={quote(sorted(PEOPLE)[0])}", routes.CAMPAIGN_MOVE: "?to=cancel"}
    served = 0
    before = world.snapshot()
    for entry in GETS:
        path = world.path(entry.route, **given.get(entry.route, {})) + query.get(entry.route, "")
        answer = bob.get(path)
        if answer.status == 404 and entry.route.parameters:  # the import pages of no import, the mailbox's
            continue
        assert answer.status == 200, path
        served += 1
        headers = answer.headers
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["cache-control"] == "no-store", path
        policy = {d.split()[0]: d.split()[1:] for d in headers["content-security-policy"].split(";") if d.strip()}
        assert "'unsafe-inline'" not in policy.get("script-src", policy.get("default-src", [])), path
        assert "'unsafe-eval'" not in policy.get("script-src", []), path
        if entry.route in (routes.CAMPAIGN_PREVIEW_HTML, routes.CAMPAIGN_TEMPLATE_FRAME, routes.MAILBOX_HTML):
            assert "sandbox" in policy, path  # a message's own HTML: a sandbox of its own, no script at all
            assert "script-src" not in policy, path
            continue
        assert policy["frame-ancestors"] == ["'none'"], path
        if answer.headers["content-type"].startswith("text/html"):
            assert not INLINE_SCRIPT.search(answer.body), (path, INLINE_SCRIPT.search(answer.body))
            assert not EVENT_ATTRIBUTE.search(answer.body), (path, EVENT_ATTRIBUTE.search(answer.body))
    assert served >= len(GETS) - 5
    # A GET changes nothing: another site may send a person's browser to any address (a top-level navigation
    # carries the SameSite=Lax cookie), never make it post a form with the token.
    assert world.snapshot() == before


# ---------------------------------------------------------------------------------------------------------
# Unsafe input in every field
# ---------------------------------------------------------------------------------------------------------

LONG = "x" * 100_000
PAYLOADS = (
    SCRIPT,
    ATTRIBUTE,
    "{{ 7*7 }}{% raw %}",
    "nul\x00byte",
    "rtl \u202egnp.exe",
    "Talk\r\nBcc: mallory@example.org",
    "javascript:alert(1)",
    LONG,
)
EVENT_FIELDS = (*sample_form(), "speaker-1-name", "speaker-1-role")


def forms(world: World) -> Iterator[tuple[str, dict[str, str], str]]:
    """Each form (its path and valid fields) and each of its fields typed by a user."""
    cid = str(world.campaign_id)
    event = str(get_event(world.site.db, "talk").id)
    n = 0
    for name in EVENT_FIELDS:
        if name not in ("slug", "rows"):
            n += 1
            yield routes.EVENT_NEW.path(), {**sample_form(), "slug": f"hostile-{n}", "action": "save"}, name
    yield routes.EVENT_NEW.path(), {**sample_form(), "action": "save"}, "slug"
    yield world.path(routes.EVENT_EDIT), {**sample_form(), "slug": "talk", "action": "save"}, "title"
    for name in ("name", "event", "list"):
        yield routes.CAMPAIGN_NEW.path(), {"name": f"hostile-{name}", "event": event, "list": "guests"}, name
    for name in ("to", "as"):
        yield world.path(routes.CAMPAIGN_TEST_SEND), {"to": "staff@example.org", "as": ""}, name
    yield world.path(routes.CAMPAIGN_MOVE), {"to": "paused"}, "to"
    for name in ("text", "email"):
        for file in ("invitation.html", "invitation.subject"):
            for action in ("preview", "save"):
                path = routes.CAMPAIGN_TEMPLATE_EDIT.path(campaign=cid, file=file)
                yield path, {"text": "Hello {{ contact.name }}", "email": "", "action": action}, name
            path = routes.CAMPAIGN_TEMPLATE_PREVIEW.path(campaign=cid, file=file)
            yield path, {"text": "Hello", "email": ""}, name
    wave = {"name": "", "kind": "reminder", "template": "reminder", "timing": "offset", "offset": "-1h"}
    for name in ("name", "kind", "template", "timing", "offset", "local", "audience", "window", "expires", "subject"):
        yield world.path(routes.CAMPAIGN_WAVE_NEW), {**wave, "name": f"hostile-{name}"}, name
    for name in ("name", "password", "password_again", "role"):
        users = {"name": f"hostile{name.replace('_', '')}", "password": "a long passphrase indeed", "role": "staff"}
        yield routes.USERS.path(), {**users, "password_again": users["password"]}, name
    pw = {"password": "a long passphrase indeed", "password_again": "a long passphrase indeed"}
    for name in ("password", "password_again"):
        yield world.path(routes.USER_PASSWORD, user="ana"), pw, name


QUERIES = {
    routes.CONTACTS_LIST: ("q", "after"),
    routes.CAMPAIGN_PAGE: ("who", "zone", "wave", "what"),
    routes.CAMPAIGN_MANAGE: ("email", "checks", "done"),
    routes.CAMPAIGN_TEMPLATES: ("kind", "ext", "locale"),
    routes.CAMPAIGN_TEMPLATE_EDIT: ("email", "done"),
    routes.CAMPAIGN_MOVE: ("to",),
    routes.CAMPAIGN_PREVIEW_HTML: ("email",),
    routes.CONTACT_PAGE: ("done",),
    routes.EVENT_PAGE: ("done",),
    routes.USERS: ("done",),
}
"""The query parameters a staff page reads."""


def test_unsafe_input_in_every_field_is_refused_or_kept_and_never_served_raw(world: World) -> None:
    bob = world.client("bob")
    token = bob.csrf()
    problems: list[str] = []
    for path, valid, name in forms(world):
        for n, payload in enumerate(PAYLOADS):
            # Each post makes its own event, campaign, wave or user when it is taken: nothing refused as a double.
            fields = {key: f"{value}x{n}" if value.startswith("hostile") else value for key, value in valid.items()}
            answer = bob.post(path, {"csrf_token": token, **fields, name: payload})
            problems += unsafe(answer, f"POST {path} {name}={payload[:40]!r}", world.folders)
    for route, names in QUERIES.items():
        for name in names:
            for payload in PAYLOADS[:-1]:
                path = world.path(route) + "?" + f"{name}={quote(payload)}"
                problems += unsafe(bob.get(path), f"GET {path[:80]}", world.folders)
    # Afterwards, every page the app serves, those of what was made included: nothing typed is served raw.
    problems += crawl(world, bob)
    assert problems == [], "\n".join(problems)


def test_a_nul_character_in_a_query_or_a_form_is_a_400_before_anything_is_looked_up(world: World) -> None:
    # PostgreSQL refuses NUL in any text value: a lookup by a name holding one was a 500 there (SQLite: "no such").
    bob = world.client("bob")
    before = world.snapshot()
    form = {"csrf_token": bob.csrf(), "name": "nul-campaign", "event": "talk", "list": "gu\x00ests"}
    for answer in (
        bob.post(routes.CAMPAIGN_NEW.path(), form),
        bob.get(world.path(routes.CONTACTS_LIST) + "?q=a%00b"),
        bob.get(world.path(routes.CAMPAIGN_MANAGE) + "?email=x%00@example.org"),
    ):
        assert (answer.status, answer.body) == (400, NUL_REFUSED)
    assert world.snapshot() == before
    # A login name holding one is a wrong login like any other, never a server error.
    stranger = world.site.client()
    answer = stranger.log_in("b\x00ob", "a long passphrase indeed")
    assert answer.status == 200
    assert WRONG_LOGIN in html.unescape(answer.body)


def crawl(world: World, client: Client) -> list[str]:
    """Every staff page of every row the database holds, as ``client``: no marker of unsafe input raw."""
    with world.site.db.read() as conn:
        from campaign.store.tables import campaigns, events

        refs = {
            "event": [str(i) for i in conn.execute(select(events.c.id)).scalars()],
            "campaign": [str(i) for i in conn.execute(select(campaigns.c.id)).scalars()],
            "contact": [str(i) for i in conn.execute(select(contacts.c.id)).scalars()],
            "list": [str(i) for i in conn.execute(select(lists.c.id)).scalars()],
        }
    seen = 0
    problems = []
    for entry in GETS:
        params = entry.route.parameters
        choices = refs.get(params[0], [world.values[params[0]]]) if params else [""]
        for value in choices:
            path = world.path(entry.route, **({params[0]: value} if params else {}))
            answer = client.get(path)
            problems += unsafe(answer, f"GET {path}", world.folders)
            seen += answer.status == 200
    assert seen > 20
    return problems


def test_what_an_event_holds_reaches_a_message_as_text_never_as_a_header_or_a_template(world: World) -> None:
    bob = world.client("bob")
    start = datetime.now(UTC) + timedelta(days=20)
    fields = {**sample_form(), "slug": "crafted", "action": "save", "speaker-1-name": "x" * 301}
    fields |= {"start": f"{start:%Y-%m-%dT12:00}", "end": f"{start:%Y-%m-%dT13:00}"}
    fields |= {"title": "{{ 7*7 }} Talk\r\nBcc: mallory@example.org", "organiser_name": "Org\r\nBcc: m@example.org"}
    refused = bob.post(routes.EVENT_NEW.path(), {"csrf_token": bob.csrf(), **fields})
    # A speaker's name as long as no name is: refused beside its row, as the organiser's name would be.
    assert refused.status == 400
    assert re.search(r'id="speaker-1-name-error"[^>]*>[^<]*at most 300', refused.body), refused.body[-3000:]
    made = bob.post(routes.EVENT_NEW.path(), {"csrf_token": bob.csrf(), **fields, "speaker-1-name": "Ann \u202eX"})
    assert made.status == 303
    event = get_event(world.site.db, "crafted")
    # Kept as text a person reads: the line breaks and the bidirectional override gone, the braces as typed.
    assert event.title == "{{ 7*7 }} Talk Bcc: mallory@example.org"
    assert event.organiser_name == "Org Bcc: m@example.org"
    assert event.speakers[0].name == "Ann X"
    create_with_waves(world.site.db, world.settings, event_ref="crafted", list_name="guests", name="crafted")
    key = AppContext(settings_given=world.settings).signing_key()
    preview = preview_contact(world.site.db, world.settings, key, "crafted", sorted(PEOPLE)[0])
    message = email.message_from_bytes(preview.eml_path.read_bytes(), policy=email.policy.default)
    assert "Bcc" not in message
    assert "{{ 7*7 }} Talk" in str(message["Subject"])
    assert "49" not in str(message["Subject"])  # the title is a value in the template, never a template itself


SANDBOX_ESCAPES = (
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ contact.__class__.__init__.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    '{% include "../../secret.key" %}',
    '{% include "/etc/passwd" %}',
    '{% include "../../../config.toml" %}',
)


@pytest.mark.parametrize("attempt", SANDBOX_ESCAPES)
def test_a_template_cannot_leave_the_sandbox_and_its_output_is_shown_only_in_the_sandboxed_frame(
    world: World, attempt: str
) -> None:
    ann = world.client("ann")
    cid = str(world.campaign_id)
    path = routes.CAMPAIGN_TEMPLATE_EDIT.path(campaign=cid, file="invitation.html")
    text = f"<p>Hello {SCRIPT}</p><p>{attempt}</p>"
    before = world.snapshot()
    for action in ("preview", "save"):
        answer = ann.post(path, {"csrf_token": ann.csrf(), "text": text, "email": "", "action": action})
        assert_safe(answer, action, world.folders)
        assert "&lt;class" not in answer.body  # nothing of Python's shown, not even escaped
        assert "__globals__" not in answer.body.replace(html_escape(attempt), "")
        frames = re.findall(r'<iframe[^>]*src="([^"]+)"', answer.body)
        for frame in frames:
            shown = ann.get(frame)
            policy = shown.headers["content-security-policy"]
            assert "sandbox" in policy
            assert "script-src" not in policy
            assert "<class" not in shown.body
            assert "function " not in shown.body
            assert "root:" not in shown.body
            assert "[database]" not in shown.body
        assert "root:" not in answer.body
        assert "[database]" not in answer.body
    assert world.snapshot() == before  # nothing saved: the sandbox refused it


def html_escape(text: str) -> str:
    from markupsafe import escape

    return str(escape(text))


BAD_BYTES = (b"\xff\xfe\xfa bad utf-8", b"nul\x00byte", "rtl \u202egnp".encode(), SCRIPT.encode(), b"x" * 100_000)


def test_unsafe_bytes_in_every_field_of_an_upload_are_one_line_or_kept_safely(world: World) -> None:
    ann = world.client("ann")
    token = ann.csrf()
    problems: list[str] = []
    for field in ("list", "encoding", "delimiter", "file_name"):
        for bad in BAD_BYTES:
            boundary = "----hostile"
            values = {"csrf_token": token.encode(), "list": b"uploaded", "encoding": b"detect", "delimiter": b"detect"}
            name = bad if field == "file_name" else b"c.csv"
            if field != "file_name":
                values[field] = bad
            body = b"".join(
                b"--"
                + boundary.encode()
                + b'\r\nContent-Disposition: form-data; name="'
                + key.encode()
                + b'"\r\n\r\n'
                + value
                + b"\r\n"
                for key, value in values.items()
            )
            body += (
                b"--"
                + boundary.encode()
                + b'\r\nContent-Disposition: form-data; name="file"; filename="'
                + name
                + b'"\r\nContent-Type: text/csv\r\n\r\nemail\nsomeone@example.org\r\n--'
                + boundary.encode()
                + b"--\r\n"
            )
            answer = _raw(ann, routes.CONTACTS_UPLOAD.path(), f"multipart/form-data; boundary={boundary}", body)
            problems += unsafe(answer, f"upload {field}={bad[:20]!r}", world.folders)
            assert answer.status in (303, 400), (field, bad[:20], answer.status, answer.body[:300])
    assert problems == [], "\n".join(problems)
    quoted = '"' + ATTRIBUTE.replace('"', '""') + '"'
    # A file whose cells are unsafe too: its contacts' pages, its rejects and its list are crawled below.
    rows = [
        "email,name,timezone,note",
        f"hostile@example.org,{SCRIPT},Europe/Zurich,{quoted}",
        'rtl@example.org,rtl \u202egnp,Europe/Zurich,=HYPERLINK("http://evil.example")',
        f"{SCRIPT}@example.org,x,Europe/Zurich,",
    ]
    content_type, pieces = multipart({"csrf_token": token, "list": SCRIPT, "encoding": "detect", "delimiter": "detect"},
                                     f"{ATTRIBUTE}.csv", ["\n".join(rows).encode()])  # fmt: skip
    answer = _raw(ann, routes.CONTACTS_UPLOAD.path(), content_type, b"".join(pieces))
    assert answer.status == 303, answer.body[:500]
    problems += unsafe(answer, "upload", world.folders)
    page = finished_import(ann, answer.headers["location"])
    assert "rejected" in page
    assert "&lt;script&gt;" in page  # the list's name, the file's, the rejected address: shown escaped
    problems += unsafe(Answer(200, {}, {}, page), "the import's page", world.folders)
    rejects = ann.get(answer.headers["location"] + "/rejects.csv")
    assert rejects.status == 200
    assert "=HYPERLINK" not in rejects.body.replace("'=HYPERLINK", "")  # no cell a spreadsheet runs
    problems += crawl(world, ann)
    assert problems == [], "\n".join(problems)


def test_a_form_over_the_limit_is_a_413_with_the_token_in_the_header_too(world: World) -> None:
    ann = world.client("ann")
    token = ann.csrf()
    before = world.snapshot()
    # Fields under the form parser's own limit each (1 MB), over the staff forms' limit together.
    fields = {**sample_form(), "slug": "big", "action": "save", "description": "x" * 900_000, "rows": "1" * 900_000}
    for path in (routes.EVENT_NEW.path(), world.path(routes.CAMPAIGN_TEMPLATE_PREVIEW)):
        answer = ann.request("POST", path, fields, **{"X-CSRF-Token": token})
        assert answer.status == 413, (path, answer.status)
    assert world.snapshot() == before


def test_a_waves_template_is_a_name_and_its_subject_a_line_of_reasonable_length(world: World) -> None:
    ann = world.client("ann")
    path = world.path(routes.CAMPAIGN_WAVE_NEW)
    wave = {"csrf_token": ann.csrf(), "kind": "reminder", "template": "", "timing": "offset", "offset": "-1h"}
    before = world.snapshot()
    for n, (field, value) in enumerate(
        [("template", "../email/invitation"), ("template", "/etc/passwd"), ("template", LONG)]
    ):
        answer = ann.post(path, {**wave, "name": f"w{n}", field: value})
        assert answer.status == 400, (field, value[:40], answer.status)
        error = re.search(rf'id="{field}-error"[^>]*>([^<]*)<', answer.body)
        assert error, (field, value[:40])
        assert "\n" not in error.group(1)
    assert world.snapshot() == before
    # The form cuts a long subject to its field's length; the command line's is refused over a subject file's.
    options = WaveOptions(kind="reminder", at="-1h", subject="x" * (MAX_SUBJECT_LENGTH + 1))
    with pytest.raises(WaveOptionError, match="at most 1000"):
        add_wave(world.site.db, world.settings, "c", "long", options)
    assert world.snapshot() == before
