"""The staff contacts pages through real HTTP: the app on a real uvicorn server on 127.0.0.1 port 0 against a real
SQLite file, spoken to by test_auth's cookie-keeping client (and raw multipart requests for uploads); a real headless
Chromium for the upload a person makes.

What the pages show is compared with the sample files' own rows (their lines, what is wrong with them) and with
the database, never with what the import service says.
"""

from __future__ import annotations

import csv
import html
import http.client
import io
import re
import secrets
import time
import tracemalloc
from collections.abc import Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from markupsafe import escape
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait
from sqlalchemy import func, select

from campaign.config import load_settings
from campaign.models import AuditAction, Role
from campaign.render.localtime import zone_name
from campaign.rules import routes
from campaign.services.import_jobs import ImportJobs
from campaign.store.engine import Database
from campaign.store.tables import (
    audit_log,
    campaigns,
    contacts,
    list_members,
    lists,
    messages,
    suppressions,
    tracking_events,
    waves,
)
from campaign.web.auth import CSRF_REFUSED
from tests.test_auth import PASSWORDS, Client, Site
from tests.test_browser import RELOADING, WAIT_SECONDS, browser, log_in_on_the_way, read_now
from tests.test_dashboard import HOSTILE, add_users
from tests.test_reports import seed
from tests.test_web import config_for, running

__all__ = ["browser"]  # a fixture used here

DATA = Path(__file__).resolve().parent.parent / "data"
SAMPLE = DATA / "contacts.csv"
WITH_ERRORS = DATA / "contacts-with-errors.csv"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
LIMIT_MB = 60
IMPORT_SECONDS = 20


@dataclass
class Contacts:
    site: Site
    uploads: Path  # where the app saves uploads

    @property
    def db(self) -> Database:
        return self.site.db

    def client(self, name: str) -> Client:
        client = self.site.client()
        assert client.log_in(name).status == 303
        return client

    def upload_files(self) -> list[str]:
        return sorted(p.name for p in self.uploads.iterdir()) if self.uploads.exists() else []

    def count(self, stmt: object) -> int:
        with self.db.read() as conn:
            return int(conn.execute(stmt).scalar_one())  # type: ignore[call-overload]


def make_site(db: Database, tmp_path: Path) -> Iterator[Contacts]:
    config = config_for(tmp_path, db.url.render_as_string(hide_password=False))
    with config.open("a") as fh:  # [web] is the file's last table
        fh.write(f'max_upload_mb = {LIMIT_MB}\n[links]\npublic_url = "http://127.0.0.1"\n')
    add_users(db, ann=Role.STAFF, bob=Role.ADMIN, ana=Role.ANALYST)
    uploads = load_settings(config, environ={}).data_dir / "uploads"
    with running(config) as web:
        yield Contacts(Site(db, config, web, []), uploads)


@pytest.fixture
def site(db: Database, tmp_path: Path) -> Iterator[Contacts]:
    """The site on each backend: uploads, imports and pages (keyset pages, prefixes, history)."""
    yield from make_site(db, tmp_path)


@pytest.fixture
def sqlite_site(sqlite_db: Database, tmp_path: Path) -> Iterator[Contacts]:
    """The site on SQLite only, for the browser test: what it adds to the HTTP tests above (the page's script
    and layout) is the same on either backend, and a browser run costs seconds."""
    yield from make_site(sqlite_db, tmp_path)


# ---------------------------------------------------------------------------------------------------------
# Uploads as a browser sends them: multipart, the token first
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: str


def multipart(fields: dict[str, str], file_name: str, content: Iterable[bytes]) -> tuple[str, Iterator[bytes]]:
    """The content type and the body (in pieces: a large file is never whole in the test's memory either)."""
    boundary = "----test" + secrets.token_hex(8)

    def pieces() -> Iterator[bytes]:
        for name, value in fields.items():
            yield (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n').encode()
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{file_name}"\r\n'
            "Content-Type: text/csv\r\n\r\n"
        ).encode()
        yield from content
        yield f"\r\n--{boundary}--\r\n".encode()

    return f"multipart/form-data; boundary={boundary}", pieces()


def upload(
    client: Client,
    content: bytes | Iterable[bytes],
    *,
    list_name: str = "invitees",
    file_name: str = "contacts.csv",
    token: str | None = "session",
    chunked: bool = False,
) -> Reply:
    """POST a file to the upload endpoint as ``client``; ``token``: "session" for the session's own, or None."""
    fields = {} if token is None else {"csrf_token": client.csrf() if token == "session" else token}
    fields |= {"list": list_name, "encoding": "detect", "delimiter": "detect"}
    pieces: Iterable[bytes] = [content] if isinstance(content, bytes) else content
    content_type, body = multipart(fields, file_name, pieces)
    headers = {"Content-Type": content_type, "Cookie": "; ".join(f"{k}={v}" for k, v in client.cookies.items())}
    with closing(http.client.HTTPConnection(client.web.host, client.web.port, timeout=60)) as conn:
        if chunked:
            conn.request("POST", "/contacts/upload", body=body, headers=headers, encode_chunked=True)
        else:
            parts = list(body)  # references to the pieces, not copies: the length without a body in memory
            headers["Content-Length"] = str(sum(len(part) for part in parts))
            conn.request("POST", "/contacts/upload", body=iter(parts), headers=headers)
        response = conn.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read().decode())


def finished_import(client: Client, location: str) -> str:
    """The import page once the import has ended (it refreshes itself every second meanwhile)."""
    deadline = time.monotonic() + IMPORT_SECONDS
    while True:
        page = client.get(location)
        assert page.status == 200, page.body
        status = re.search(r'id="import-status" data-status="(\w+)"', page.body)
        assert status, page.body
        if status.group(1) != "running":
            assert '<meta http-equiv="refresh"' not in page.body
            return page.body
        assert '<meta http-equiv="refresh" content="1">' in page.body
        assert time.monotonic() < deadline, "the import did not end"
        time.sleep(0.1)


def rows_of(body: str, table_id: str) -> dict[str, list[str]]:
    """The rows of a table by their ``data-line``/``data-count``/``data-contact`` key: each cell's text."""
    found = re.search(rf'<table id="{table_id}">(.*?)</table>', body, re.S)
    assert found, f"no table {table_id}"
    rows = {}
    for key, cells in re.findall(r'<tr data-[a-z]+="([^"]+)">(.*?)</tr>', found.group(1), re.S):
        rows[key] = [
            html.unescape(re.sub(r"<[^>]+>", "", c)).strip()
            for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", cells, re.S)
        ]
    return rows


def sample_lines(path: Path, delimiter: str) -> list[tuple[int, dict[str, str]]]:
    """Each data row of a sample file with the line it starts on."""
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter=delimiter))
    assert "\n" not in path.read_text(encoding="utf-8").replace("\r\n", "\n").rstrip("\n").replace("\n", "", len(rows))
    return [(n + 2, row) for n, row in enumerate(rows)]  # the header is line 1


# ---------------------------------------------------------------------------------------------------------
# Uploading
# ---------------------------------------------------------------------------------------------------------


def test_staff_upload_the_sample_and_the_file_with_errors_and_download_its_rejects(site: Contacts) -> None:
    ann = site.client("ann")
    sample = sample_lines(SAMPLE, ",")
    answer = upload(ann, SAMPLE.read_bytes(), list_name="invitees")
    assert answer.status == 303, answer.body
    body = finished_import(ann, answer.headers["location"])
    counts = {key: int(cells[-1]) for key, cells in rows_of(body, "import-counts").items()}
    assert counts["new"] == len(sample) == 41
    assert counts["rejected"] == 0
    assert 'id="rejected"' not in body
    assert "rejects-download" not in body
    # Flagged: the rows with no zone whose country has several (or none), by their line.
    zoneless = {str(line) for line, row in sample if not row["timezone"] and row["country"] in ("", "US")}
    assert set(rows_of(body, "flagged")) == zoneless == {"27"}
    list_id = site.count(select(lists.c.id).where(lists.c.name == "invitees"))
    assert site.count(select(func.count()).select_from(list_members).where(list_members.c.list_id == list_id)) == 41
    # The list page shows it with its size; the upload file is gone, no rejects file was made.
    assert rows_of(ann.get("/contacts").body, "lists")[str(list_id)][1] == "41"
    assert site.upload_files() == []

    answer = upload(ann, WITH_ERRORS.read_bytes(), list_name="invitees", file_name="with-errors.csv")
    assert answer.status == 303
    location = answer.headers["location"]
    body = finished_import(ann, location)
    rejected = rows_of(body, "rejected")
    expected = {
        "4": "not-an-email",  # not an address
        "5": "missing",  # no address
        "6": "Mars/Olympus_Mons",  # no such zone
        "7": "xx-QQ",  # no such locale
        "8": "ZZ",  # no such country
        "13": "migrants.test",  # a reserved domain
    }
    assert set(rejected) == set(expected)
    for line, why in expected.items():
        assert why in rejected[line][2], (line, rejected[line])
    counts = {key: int(cells[-1]) for key, cells in rows_of(body, "import-counts").items()}
    assert counts["rejected"] == 6
    assert counts["duplicates"] == 1

    download = ann.get(location + "/rejects.csv")
    assert download.status == 200
    assert download.headers["content-type"].startswith("text/csv")
    assert 'filename="with-errors.rejects.csv"' in download.headers["content-disposition"]
    reader = csv.reader(io.StringIO(download.body.lstrip("\ufeff")), delimiter=";")
    header, *rows = list(reader)
    assert header[:3] == ["line", "reason", "E-mail"]
    assert sorted(int(row[0]) for row in rows) == sorted(int(line) for line in expected)
    # Only the rejects file is left in the uploads folder, until the job is forgotten.
    assert site.upload_files() == [Path(location).name + ".rejects.csv"]
    with site.db.read() as conn:
        entries = conn.execute(select(audit_log.c.action, audit_log.c.target).order_by(audit_log.c.id)).all()
    imported = [tuple(e) for e in entries if e[0] == AuditAction.CONTACTS_IMPORTED.value]
    assert imported == [("contacts-imported", "invitees")] * 2
    # The list's page shows both files, newest first, who imported them and what came of each.
    history = ann.get(routes.CONTACTS_LIST.path(list=str(list_id))).body.split('id="history"', 1)[1]
    newest, oldest = history.split('<tr data-action="contacts-imported">')[1:]
    assert "<td>ann</td>" in newest
    assert "<td>ann</td>" in oldest
    # The details in the order of their names, whatever the database.
    second = f"new: {counts['new']}; rejected: {counts['rejected']}; updated: {counts['updated']}"  # its page's
    assert f"<td>file: with-errors.csv; {second}</td>" in newest
    assert "<td>file: contacts.csv; new: 41; rejected: 0; updated: 0</td>" in oldest


def test_an_import_waiting_or_under_way_shows_its_progress_and_refreshes_itself(site: Contacts) -> None:
    ann = site.client("ann")
    imports: ImportJobs = site.site.web.server.app.state.contacts.imports
    with imports.one_at_a_time:  # another import under way: this one waits
        answer = upload(ann, SAMPLE.read_bytes(), list_name="waiting")
        assert answer.status == 303
        page = ann.get(answer.headers["location"])
        assert 'data-status="running"' in page.body
        assert '<meta http-equiv="refresh" content="1">' in page.body
        assert '<progress id="import-progress" max="100" value="0">' in page.body
        assert site.count(select(func.count()).select_from(lists)) == 0
    body = finished_import(ann, answer.headers["location"])
    assert 'data-status="finished"' in body
    assert "<progress" not in body


def test_an_upload_over_the_limit_is_refused_and_leaves_no_file(site: Contacts) -> None:
    ann = site.client("ann")
    header = b"email,name\n"
    row = b"someone@example.org,Some One\n" * 1000  # 29 kB
    over = LIMIT_MB * 1_000_000 // len(row) + 2
    # Sent without a length (chunked): found too large as it streams, the partial file removed.
    answer = upload(ann, [header, *[row] * over], chunked=True)
    assert answer.status == 413
    error = re.search(r'<p class="error field-error" id="file-error" role="alert">([^<]*)</p>', answer.body)
    assert error
    assert error.group(1) == f"the file is larger than the limit of {LIMIT_MB} MB (web.max_upload_mb)"
    assert site.upload_files() == []
    # Announced too large (Content-Length): refused before a byte of it is written; the rest is read and dropped.
    answer = upload(ann, [header, *[row] * (over + 40)])
    assert answer.status == 413
    assert "larger than the limit" in answer.body
    assert site.upload_files() == []
    assert site.count(select(func.count()).select_from(lists)) == 0


def test_a_body_cut_short_not_multipart_or_with_bad_fields_is_refused_with_one_line(site: Contacts) -> None:
    ann = site.client("ann")
    token = ann.csrf()
    cookie = "; ".join(f"{k}={v}" for k, v in ann.cookies.items())

    def post(body: bytes, content_type: str) -> tuple[int, str]:
        with closing(http.client.HTTPConnection(ann.web.host, ann.web.port, timeout=30)) as conn:
            headers = {"Content-Type": content_type, "Cookie": cookie, "X-CSRF-Token": token}
            conn.request("POST", "/contacts/upload", body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.read().decode()

    content_type, pieces = multipart({"list": "cut"}, "cut.csv", [b"email\nsomeone@example.org\n"])
    whole = b"".join(pieces)
    status, body = post(whole[: whole.rindex(b"\r\n--")], content_type)  # no closing boundary
    assert status == 400
    assert "the upload was cut short" in body
    status, body = post(b"email=someone@example.org", "application/x-www-form-urlencoded")
    assert status == 400
    assert "multipart/form-data" in body
    # A list name too long, an encoding not offered: each said beside its field, the form as it was typed.
    fields = {"csrf_token": token, "list": "x" * 201, "encoding": "ebcdic", "delimiter": "detect"}
    content_type, pieces = multipart(fields, "ok.csv", [b"email\nsomeone@example.org\n"])
    status, body = post(b"".join(pieces), content_type)
    assert status == 400
    assert '<p class="error field-error" id="list-error">at most 200 characters</p>' in body
    assert '<p class="error field-error" id="encoding-error">choose one of the encodings offered</p>' in body
    assert 'id="delimiter-error"' not in body
    assert site.upload_files() == []
    assert site.count(select(func.count()).select_from(lists)) == 0


def test_a_large_upload_streams_to_disk_without_being_held_in_memory(site: Contacts) -> None:
    ann = site.client("ann")
    token = ann.csrf()
    block = (b"x" * 99 + b"\n") * 10_000  # 1 MB of lines
    size_mb = 50  # the figure
    tracemalloc.start()
    try:
        # A file with no email column: written whole, then refused by the import at once (the test is the upload).
        answer = upload(ann, [b"name\n", *[block] * size_mb], token=token, chunked=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert answer.status == 303, answer.body
    # The test's own pieces are 1 MB each; the server's buffers are chunks of the stream.
    assert peak < 8_000_000, peak
    body = finished_import(ann, answer.headers["location"])
    assert "Nothing was imported" in body
    assert "email" in body
    assert str(site.uploads) not in body  # the server's folders stay its own
    assert site.upload_files() == []


# ---------------------------------------------------------------------------------------------------------
# Who may, and CSRF
# ---------------------------------------------------------------------------------------------------------


def test_an_analyst_cannot_reach_the_contacts_pages_nor_act(site: Contacts) -> None:
    ann = site.client("ann")
    answer = upload(ann, SAMPLE.read_bytes())
    finished_import(ann, answer.headers["location"])
    contact_id = site.count(select(func.min(contacts.c.id)))
    list_id = site.count(select(func.min(lists.c.id)))
    ana = site.client("ana")
    assert 'href="/contacts"' not in ana.get("/dashboard").body  # no link to what they may not do
    assert 'href="/contacts"' in ann.get("/dashboard").body
    job = answer.headers["location"]
    person = f"/contacts/people/{contact_id}"
    for page in ("/contacts", f"/contacts/lists/{list_id}", person, job, f"{job}/rejects.csv"):
        reply = ana.get(page)
        assert reply.status == 403, page
        assert "Not allowed" in reply.body, page
    token = ana.csrf()
    for action in ("suppress", "unsuppress"):
        reply = ana.post(f"/contacts/people/{contact_id}/{action}", {"csrf_token": token})
        assert reply.status == 403
        assert "Not allowed" in reply.body
    sent = upload(ana, SAMPLE.read_bytes(), list_name="analysts", token=token)
    assert sent.status == 403
    assert "Not allowed" in sent.body
    assert site.count(select(func.count()).select_from(suppressions)) == 0
    assert site.count(select(func.count()).select_from(lists)) == 1
    assert site.upload_files() == []


def test_a_post_without_its_csrf_token_is_refused_and_changes_nothing(site: Contacts) -> None:
    ann = site.client("ann")
    answer = upload(ann, SAMPLE.read_bytes())
    finished_import(ann, answer.headers["location"])
    contact_id = site.count(select(func.min(contacts.c.id)))
    audited = site.count(select(func.count()).select_from(audit_log))
    for form in ({}, {"csrf_token": "not-the-token"}):
        reply = ann.post(f"/contacts/people/{contact_id}/suppress", form)
        assert (reply.status, reply.body) == (403, CSRF_REFUSED)
    for token in (None, "not-the-token"):
        sent = upload(ann, SAMPLE.read_bytes(), list_name="forged", token=token)
        assert (sent.status, sent.body) == (403, CSRF_REFUSED)
    assert site.count(select(func.count()).select_from(suppressions)) == 0
    assert site.count(select(func.count()).select_from(lists).where(lists.c.name == "forged")) == 0
    assert site.count(select(func.count()).select_from(audit_log)) == audited
    assert site.upload_files() == []


# ---------------------------------------------------------------------------------------------------------
# Browsing, a contact's page, suppressing by hand
# ---------------------------------------------------------------------------------------------------------


def test_keyset_pages_walk_every_contact_of_a_list_exactly_once(site: Contacts) -> None:
    ann = site.client("ann")
    people = 137  # two full pages of 50 and a part
    content = "email,name,timezone\n" + "".join(
        f"p{n:03d}@example.org,{'Zed' if n % 10 == 0 else 'Person'} {n},Europe/Zurich\n" for n in range(people)
    )
    finished_import(ann, upload(ann, content.encode(), list_name="many").headers["location"])
    upload_other = "email\nother@example.org\n"  # a contact of another list, never on this one's pages
    finished_import(ann, upload(ann, upload_other.encode(), list_name="other").headers["location"])
    with site.db.read() as conn:
        list_id = conn.execute(select(lists.c.id).where(lists.c.name == "many")).scalar_one()
        stored = set(conn.execute(select(list_members.c.contact_id).where(list_members.c.list_id == list_id)).scalars())

    def walk(first: str) -> list[int]:
        seen: list[int] = []
        location: str | None = first
        while location is not None:
            body = ann.get(location).body
            seen += [int(key) for key in rows_of(body, "contacts")] if 'id="contacts"' in body else []
            found = re.search(r'<a id="next-page" rel="next" href="([^"]+)">', body)
            location = html.unescape(found.group(1)) if found else None
            if location:
                assert "after=" in location
                assert "offset" not in location
        return seen

    everyone = walk(f"/contacts/lists/{list_id}")
    assert len(everyone) == people
    assert set(everyone) == stored
    assert everyone == sorted(everyone)
    # A name prefix, and an address prefix in another letter case.
    zeds = walk(f"/contacts/lists/{list_id}?q=zed")
    assert len(zeds) == len(set(zeds)) == 14
    assert len(walk(f"/contacts/lists/{list_id}?q=P00")) == 10
    assert walk(f"/contacts/lists/{list_id}?q=other") == []
    # A page key that is no number is one line, not a traceback.
    reply = ann.get(f"/contacts/lists/{list_id}?after=x")
    assert reply.status == 400
    assert 'class="error"' in reply.body


def test_a_hostile_name_is_shown_escaped_and_suppressing_by_hand_is_audited(site: Contacts) -> None:
    ann = site.client("ann")
    content = f'email,name,organisation\nhostile@example.org,"{HOSTILE.replace(chr(34), chr(34) * 2)}",{HOSTILE[:8]}\n'
    finished_import(ann, upload(ann, content.encode(), list_name=HOSTILE).headers["location"])
    contact_id = site.count(select(contacts.c.id))
    list_id = site.count(select(lists.c.id))
    for path in ("/contacts", f"/contacts/lists/{list_id}", f"/contacts/people/{contact_id}"):
        body = ann.get(path).body
        assert "<script>" not in body, path
        assert str(escape(HOSTILE)) in body, path

    page = ann.get(f"/contacts/people/{contact_id}")
    assert 'id="suppress"' in page.body
    assert 'id="suppression"' not in page.body
    token = page.hidden("csrf_token")
    reply = ann.post(f"/contacts/people/{contact_id}/suppress", {"csrf_token": token})
    assert reply.status == 303
    assert reply.headers["location"] == f"/contacts/people/{contact_id}?done=suppressed"
    with site.db.read() as conn:
        assert conn.execute(select(suppressions.c.email_key, suppressions.c.reason)).all() == [
            ("hostile@example.org", "manual")
        ]
    page = ann.get(reply.headers["location"])
    assert "suppressed: manual" in page.body
    assert 'id="unsuppress"' in page.body
    # Twice is once: nothing changes, nothing more is audited.
    assert (
        ann.post(f"/contacts/people/{contact_id}/suppress", {"csrf_token": token})
        .headers["location"]
        .endswith("done=unchanged")
    )
    reply = ann.post(f"/contacts/people/{contact_id}/unsuppress", {"csrf_token": token})
    assert reply.headers["location"].endswith("done=unsuppressed")
    assert site.count(select(func.count()).select_from(suppressions)) == 0
    assert [row for row in site.site.audit() if row[0].startswith("contact-")] == [
        ("contact-suppressed", "ann", "hostile@example.org"),
        ("contact-unsuppressed", "ann", "hostile@example.org"),
    ]
    # The contact's page shows what staff did to the address, newest first, and by whom.
    history = ann.get(f"/contacts/people/{contact_id}").body.split('<section id="history">', 1)[1]
    rows = re.findall(r'<tr data-action="([a-z-]+)"><td>[^<]*</td><td>[a-z-]+</td><td>([^<]*)</td>', history)
    assert rows == [("contact-unsuppressed", "ann"), ("contact-suppressed", "ann")]
    # An unsubscribe is the person's: staff cannot lift it.
    with site.db.write() as conn:
        conn.execute(
            suppressions.insert().values(
                email_key="hostile@example.org", reason="unsubscribed", created_at=func.current_timestamp()
            )
        )
    page = ann.get(f"/contacts/people/{contact_id}")
    assert 'id="unsuppress"' not in page.body
    assert "Only the person" in page.body
    reply = ann.post(f"/contacts/people/{contact_id}/unsuppress", {"csrf_token": token})
    assert reply.status == 409
    assert "only they can undo that" in reply.body
    assert site.count(select(func.count()).select_from(suppressions)) == 1
    assert ann.get("/contacts/people/999999").status == 404


def test_a_contacts_page_shows_its_messages_and_tracking_in_its_own_zone(site: Contacts) -> None:
    seed(site.db, people=8)
    ann = site.client("ann")
    tracked = 0
    with site.db.read() as conn:
        for zone in ("Asia/Kolkata", None):
            contact_id = conn.execute(
                select(func.min(contacts.c.id)).where(
                    contacts.c.timezone.is_(None) if zone is None else contacts.c.timezone == zone
                )
            ).scalar_one()
            sent = conn.execute(
                select(campaigns.c.name, waves.c.name, messages.c.status, messages.c.sent_at)
                .join(waves, waves.c.id == messages.c.wave_id)
                .join(campaigns, campaigns.c.id == waves.c.campaign_id)
                .where(messages.c.contact_id == contact_id)
            ).all()
            hits = conn.execute(
                select(func.count())
                .select_from(tracking_events)
                .join(messages, messages.c.id == tracking_events.c.message_id)
                .where(messages.c.contact_id == contact_id)
            ).scalar_one()
            body = ann.get(f"/contacts/people/{contact_id}").body
            shown = rows_of(body, "messages").values()
            shown_zone = zone or "UTC"
            expected = {
                (
                    campaign,
                    wave,
                    status,
                    # "2026-06-02 21:09 India Standard Time": the zone's CLDR name, not strftime's "IST"
                    f"{at.astimezone(ZoneInfo(shown_zone)):%Y-%m-%d %H:%M} {zone_name(at, shown_zone)}" if at else "–",
                )
                for campaign, wave, status, at in sent
            }
            assert {(c[0], c[1], c[2].split()[0] if c[2] else c[2], c[4]) for c in shown} == expected
            assert len(shown) == len(sent) > 1
            assert f"Times in the contact's zone ({shown_zone})" in body
            if hits:
                assert len(rows_of(body, "activity")) == hits
                tracked += 1
            else:
                assert "Nothing recorded." in body
    assert tracked  # at least one of them has a tracking history to show


# ---------------------------------------------------------------------------------------------------------
# A person uploads in a browser
# ---------------------------------------------------------------------------------------------------------


def test_a_person_uploads_the_sample_in_a_browser(browser: WebDriver, sqlite_site: Contacts) -> None:
    site = sqlite_site
    ARTIFACTS.mkdir(exist_ok=True)
    base = f"http://{site.site.web.host}:{site.site.web.port}"
    wait = WebDriverWait(browser, WAIT_SECONDS)
    log_in_on_the_way(browser, wait, f"{base}/contacts", "ann", PASSWORDS["ann"], (1280, 1000))
    browser.find_element(By.ID, "list").send_keys("Invitees")
    browser.find_element(By.ID, "file").send_keys(str(WITH_ERRORS))
    browser.save_screenshot(str(ARTIFACTS / "contacts-upload.png"))
    browser.find_element(By.CSS_SELECTOR, "form.upload button.primary").click()
    wait.until(expected_conditions.url_contains("/contacts/imports/"))
    WebDriverWait(browser, IMPORT_SECONDS, ignored_exceptions=RELOADING).until(
        lambda driver: read_now(driver, "#import-status", "data-status") not in (None, "running")
    )
    assert browser.find_element(By.ID, "import-status").get_attribute("data-status") == "finished"
    lines = [row.get_attribute("data-line") for row in browser.find_elements(By.CSS_SELECTOR, "#rejected tbody tr")]
    assert lines == ["4", "5", "6", "7", "8", "13"]
    assert browser.find_element(By.ID, "rejects-download").is_displayed()
    browser.save_screenshot(str(ARTIFACTS / "contacts-import-result.png"))
    # Each click loads a page: wait for it, never read the page the click left.
    browser.find_element(By.LINK_TEXT, "Contacts").click()
    wait.until(expected_conditions.url_to_be(f"{base}/contacts"))
    browser.find_element(By.LINK_TEXT, "Invitees").click()
    wait.until(expected_conditions.url_contains("/contacts/lists/"))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#contacts tbody tr")) == 8
    browser.find_element(By.CSS_SELECTOR, "#contacts tbody tr a").click()
    wait.until(expected_conditions.url_contains("/contacts/people/"))
    browser.set_window_size(390, 844)  # a phone: the page fits its width
    browser.find_element(By.ID, "suppress").click()
    notice = wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "p.notice")))
    assert "Suppressed: no message" in notice.text
    assert browser.execute_script("return document.documentElement.scrollWidth") <= 390
    browser.save_screenshot(str(ARTIFACTS / "contacts-contact-phone.png"))
