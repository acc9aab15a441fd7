"""The tracking endpoints through real HTTP: a campaign sent by the delivery worker to a real aiosmtpd server, the
links pulled from the messages it received, and the web app on a real uvicorn server on 127.0.0.1 port 0 against
the same database (SQLite and PostgreSQL: the ``db`` fixture); what was recorded is read back from the database
after the recorder's flush."""

from __future__ import annotations

import asyncio
import base64
import email.message
import http.client
import logging
import re
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ical.calendar_stream import IcsCalendarStream
from sqlalchemy import insert, select, update

from campaign.config import Settings, load_settings
from campaign.models import TrackingKind
from campaign.rules.event_fields import parse_event_document
from campaign.services.delivery_request import DeliveryRequest
from campaign.services.dispatch import send_due
from campaign.services.events import get_event, update_event
from campaign.services.lifecycle import launch
from campaign.services.tracking import HitRecorder
from campaign.store.engine import Database
from campaign.store.tables import contacts, links, messages, registrations, tracking_events
from campaign.store.tables import events as event_rows
from campaign.tokens import SigningKeys, TokenClaims, sign, verify
from campaign.web import tracking as tracking_web
from campaign.web.tracking import PIXEL, TrackingEndpoints
from tests.test_delivery import TEMPLATES, Sink, pipelining_smtp, prepare
from tests.test_tracking_recorder import events
from tests.test_web import assert_security_headers, running

__all__ = ["pipelining_smtp"]  # a fixture used here

SECRET = "tracking-web-test-signing-key-0123456789abcdef"
OTHER_SECRET = "another-installations-signing-key-0123456789"
PUBLIC = "https://t.example.org"
CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
NO_CACHE = "no-store, no-cache, must-revalidate, private, max-age=0"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes
    seconds: float


def fetch(
    port: int, path: str, method: str = "GET", user_agent: str = CHROME, headers: dict[str, str] | None = None
) -> Reply:
    """One request on a connection of its own, the path sent as given (percent-encoding and all)."""
    started = time.monotonic()
    with closing(http.client.HTTPConnection("127.0.0.1", port, timeout=10)) as conn:
        conn.putrequest(method, path, skip_accept_encoding=True)
        conn.putheader("User-Agent", user_agent)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        body = response.read()
        headers = {k.lower(): v for k, v in response.getheaders()}
    return Reply(response.status, headers, body, time.monotonic() - started)


@dataclass
class Sent:
    """A campaign sent to two people, the messages they received, and the web app serving its links."""

    db: Database
    settings: Settings
    config: Path
    message_ids: dict[str, int]  # by address
    received: dict[str, email.message.EmailMessage]

    def html(self, address: str) -> str:
        """The HTML part of the message ``address`` received."""
        body = self.received[address].get_body(("html",))
        assert body is not None
        html: str = body.get_content()
        return html

    def links(self, address: str) -> list[str]:
        """The paths under the public URL of every link and image of ``address``'s message, in order."""
        html = self.html(address)
        return [url.removeprefix(PUBLIC) for url in re.findall(r'(?:href|src)="(https://t\.example\.org/[^"]+)"', html)]

    def path(self, address: str, prefix: str) -> str:
        [found] = [p for p in self.links(address) if p.startswith(prefix)]
        return found


def write_config(tmp_path: Path, db: Database, flush_seconds: float = 0.05) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[database]\nurl = "{db.url.render_as_string(hide_password=False)}"\n'
        f'[paths]\ntemplates = "{TEMPLATES}"\n'
        f'[links]\npublic_url = "{PUBLIC}"\n'
        "[web]\nport = 0\n"
        f'[tracking]\nflush_seconds = {flush_seconds}\nrepeat_seconds = 0\nip = "full"\n'
        "[delivery]\npoll_seconds = 0.05\n"
    )
    return config


@pytest.fixture
def signing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """SECRET as the installation's key, where the web app reads it (the environment)."""
    monkeypatch.setenv("CAMPAIGN_SECRET_KEY", SECRET)
    monkeypatch.delenv("CAMPAIGN_PREVIOUS_SECRET_KEY", raising=False)


def send_invitations(
    db: Database,
    tmp_path: Path,
    smtp: Sink,
    config: Path,
    *,
    public_url: str = PUBLIC,
    registration_url: str | None = None,
) -> Sent:
    """Campaign ``c`` to two people, sent by the delivery worker to ``smtp`` with its links under ``public_url``
    (and the event's registration link at ``registration_url`` when given), delivered an hour ago."""
    settings = load_settings(config, environ={})
    addresses = prepare(db, tmp_path, count=2)
    if registration_url is not None:
        with db.write() as conn:
            conn.execute(update(event_rows).values(registration_url=registration_url))
    launch(db, settings, SECRET.encode(), "c")
    # Messages are rendered when sent, so under the public URL of the send: the launch's check refuses links that
    # are not https, which a test's server on loopback (plain HTTP) is not.
    settings = replace(settings, links=replace(settings.links, public_url=public_url))
    summary = asyncio.run(send_due(DeliveryRequest(db, settings, SECRET.encode(), smtp.servers(), campaign_ref="c")))
    assert summary.counts == {"sent": 2}
    # Delivered an hour ago: a click within seconds of delivery is a scanner's, and these are people's.
    with db.write() as conn:
        conn.execute(update(messages).values(sent_at=datetime.now(UTC) - timedelta(hours=1)))
        rows = conn.execute(select(contacts.c.email, messages.c.id).join(messages)).all()
    received = {a: m for a in addresses for m in smtp.handler.messages_for(a)}
    return Sent(db, settings, config, {r.email: r.id for r in rows}, received)


@pytest.fixture
def sent(db: Database, tmp_path: Path, pipelining_smtp: Sink, signing_key: None) -> Sent:
    return send_invitations(db, tmp_path, pipelining_smtp, write_config(tmp_path, db))


@pytest.fixture
def port(sent: Sent) -> Iterator[int]:
    with running(sent.config) as web:
        yield web.port


def recorded(db: Database) -> list[tuple[int, str, int | None, bool, str | None]]:
    """The tracking events written, without the IP: (message, kind, link, machine, reason)."""
    return [(m, kind, link, machine, reason) for m, kind, link, machine, reason, _ in events(db)]


def wait_recorded(db: Database, count: int, seconds: float = 5) -> list[tuple[int, str, int | None, bool, str | None]]:
    """The tracking events once there are ``count`` of them (the recorder writes every flush_seconds)."""
    deadline = time.monotonic() + seconds
    while len(rows := recorded(db)) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(rows) == count, rows
    return rows


def token_of(path: str) -> str:
    return path.rsplit("/", 1)[1].removesuffix(".gif")


def bad_tokens(sent: Sent, address: str, kind: TrackingKind, link_index: int = 0) -> list[str]:
    """Tokens that must record nothing: forged, truncated, extended, for another purpose, signed with another
    key, for a message that does not exist."""
    message = sent.message_ids[address]
    good = sign(SECRET.encode(), kind, message, link_index)
    flipped = good[:-3] + ("A" if good[-3] != "A" else "B") + good[-2:]
    return [
        flipped,
        good[:-1],
        good + "A",
        base64.urlsafe_b64encode(b"x" * 27).decode(),
        # Every other purpose (an unsubscribe token on /o/ and /c/ among them).
        *(sign(SECRET.encode(), other, message, link_index) for other in TrackingKind if other is not kind),
        sign(OTHER_SECRET.encode(), kind, message, link_index),
        sign(SECRET.encode(), kind, 10**9, link_index),  # no such message
    ]


# ---------------------------------------------------------------------------------------------------------
# The open pixel
# ---------------------------------------------------------------------------------------------------------


def test_the_pixel_of_a_received_message_is_a_gif_that_is_never_cached_and_records_the_open(
    sent: Sent, port: int
) -> None:
    address = "guest000@example.org"
    pixel = sent.path(address, "/o/")
    assert pixel.endswith(".gif")
    reply = fetch(port, pixel)
    assert reply.status == 200
    assert reply.body == PIXEL
    assert len(PIXEL) == 43
    assert PIXEL.startswith(b"GIF89a\x01\x00\x01\x00")
    assert reply.headers["content-type"] == "image/gif"
    assert reply.headers["cache-control"] == NO_CACHE
    assert (reply.headers["pragma"], reply.headers["expires"]) == ("no-cache", "0")
    [(message, kind, link, machine, reason)] = wait_recorded(sent.db, 1)
    assert (message, kind, link, machine, reason) == (sent.message_ids[address], "open", None, False, None)
    with sent.db.read() as conn:
        assert conn.scalar(select(tracking_events.c.ip)) == "127.0.0.1"
        assert conn.scalar(select(tracking_events.c.user_agent)) == CHROME


def test_a_bad_token_on_the_pixel_still_gets_the_gif_and_records_nothing(sent: Sent, port: int) -> None:
    address = "guest000@example.org"
    for token in bad_tokens(sent, address, TrackingKind.OPEN):
        reply = fetch(port, f"/o/{token}.gif")
        assert (reply.status, reply.body, reply.headers["cache-control"]) == (200, PIXEL, NO_CACHE), token
    # A valid open after them: once it is written, everything before it has been too.
    fetch(port, sent.path("guest001@example.org", "/o/"))
    assert wait_recorded(sent.db, 1) == [(sent.message_ids["guest001@example.org"], "open", None, False, None)]


def test_healthz_reports_what_the_recorder_recorded_repeated_and_dropped(sent: Sent) -> None:
    config = write_config(sent.config.parent, sent.db)
    config.write_text(config.read_text().replace("repeat_seconds = 0", "repeat_seconds = 10"))
    with running(config) as web:
        pixel = sent.path("guest000@example.org", "/o/")
        fetch(web.port, pixel)
        fetch(web.port, pixel)  # the same hit again at once: a repeat, recorded once
        fetch(web.port, sent.path("guest001@example.org", "/o/"), method="HEAD")  # a machine's
        wait_recorded(sent.db, 2)
        body = fetch(web.port, "/healthz").body.decode()
    assert body.splitlines() == ["ok", "tracking recorded=2 machine=1 repeats=1 dropped=0 failed_batches=0"]


def test_hits_still_buffered_are_written_when_the_server_stops(sent: Sent, tmp_path: Path) -> None:
    config = write_config(tmp_path, sent.db, flush_seconds=60)  # no flush while it runs
    with running(config) as web:
        assert fetch(web.port, sent.path("guest000@example.org", "/o/")).status == 200
        time.sleep(0.2)
        assert recorded(sent.db) == []
    assert [kind for _, kind, *_ in recorded(sent.db)] == ["open"]


def test_a_forwarded_for_header_is_not_taken_for_the_clients_address(sent: Sent, port: int) -> None:
    # From 127.0.0.1, where uvicorn trusts X-Forwarded-For unless told not to: anyone on the machine could claim
    # any address so.
    headers = {"X-Forwarded-For": "198.51.100.7", "Forwarded": "for=198.51.100.7"}
    assert fetch(port, sent.path("guest000@example.org", "/o/"), headers=headers).status == 200
    wait_recorded(sent.db, 1)
    with sent.db.read() as conn:
        assert conn.scalar(select(tracking_events.c.ip)) == "127.0.0.1"


def test_behind_a_trusted_proxy_the_forwarded_address_is_recorded(sent: Sent) -> None:
    config = write_config(sent.config.parent, sent.db)
    config.write_text(config.read_text().replace("port = 0\n", 'port = 0\ntrusted_proxies = ["127.0.0.0/8"]\n'))
    with running(config) as web:
        headers = {"X-Forwarded-For": "198.51.100.7"}
        assert fetch(web.port, sent.path("guest000@example.org", "/o/"), headers=headers).status == 200
        wait_recorded(sent.db, 1)
    with sent.db.read() as conn:
        assert conn.scalar(select(tracking_events.c.ip)) == "198.51.100.7"


def test_the_pixel_answers_like_every_page_and_only_get_and_head(sent: Sent, port: int) -> None:
    pixel = sent.path("guest000@example.org", "/o/")
    get, head = fetch(port, pixel), fetch(port, pixel, method="HEAD")
    for reply in (get, head):
        assert (reply.status, reply.headers["content-type"], reply.headers["content-length"]) == (
            200,
            "image/gif",
            "43",
        )
        assert reply.headers["cache-control"] == NO_CACHE
        assert_security_headers(reply)  # type: ignore[arg-type]
    assert (get.body, head.body) == (PIXEL, b"")
    posted = fetch(port, pixel, method="POST")
    assert posted.status == 405
    assert set(posted.headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD"}
    # Only one path segment is a token, and not an empty one, as the route's template says.
    for path in ("/o/.gif", "/o/a/b.gif", "/o/x.png"):
        assert fetch(port, path).status == 404, path
    assert [kind for _, kind, *_ in wait_recorded(sent.db, 2)] == ["open", "open"]  # the GET's and the HEAD's


def test_the_pixel_the_server_answers_itself_is_the_apps_answer_and_recorded_alike(sent: Sent, port: int) -> None:
    # A plain keep-alive GET is answered by the server's protocol; with a query string, or over HTTP/1.0, by the
    # app (campaign.web.server): the same answer but the date, and the same hit recorded.
    pixel = sent.path("guest000@example.org", "/o/")
    fast = fetch(port, pixel)
    by_app = fetch(port, pixel + "?via=app")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {pixel} HTTP/1.0\r\nUser-Agent: {CHROME}\r\n\r\n".encode())
        old = b"".join(iter(lambda: sock.recv(65536), b""))
    head, _, old_body = old.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert old_body == PIXEL
    assert {k: v for k, v in fast.headers.items() if k != "date"} == {
        k: v for k, v in by_app.headers.items() if k != "date"
    }
    assert fast.body == by_app.body == PIXEL
    message_id = sent.message_ids["guest000@example.org"]
    assert wait_recorded(sent.db, 3) == [(message_id, "open", None, False, None)] * 3


def test_an_idle_keep_alive_connection_is_closed_after_the_timeout_counted_from_its_last_answer(
    sent: Sent, port: int
) -> None:
    pixel = sent.path("guest000@example.org", "/o/")
    request = f"GET {pixel} HTTP/1.1\r\nHost: x\r\nUser-Agent: {CHROME}\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")
        time.sleep(3)  # within uvicorn's 5 s: still open, and idle from the next answer on
        sock.sendall(request)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")
        answered = time.monotonic()
        assert sock.recv(65536) == b""  # closed by the server
        assert 4.5 < time.monotonic() - answered < 7


def test_the_recorder_says_what_it_recorded_when_the_server_stops(sent: Sent, caplog: pytest.LogCaptureFixture) -> None:
    config = write_config(sent.config.parent, sent.db, flush_seconds=60)  # none written before the stop
    config.write_text(config.read_text().replace("repeat_seconds = 0", "repeat_seconds = 10"))
    with caplog.at_level(logging.INFO, "campaign.services.tracking"), running(config) as web:
        for _ in range(2):  # the second one a repeat
            assert fetch(web.port, sent.path("guest000@example.org", "/o/")).status == 200
        assert fetch(web.port, sent.path("guest001@example.org", "/o/"), method="HEAD").status == 200
    assert [r.getMessage() for r in caplog.records if r.name == "campaign.services.tracking"] == [
        "tracking: 2 hits recorded (1 machines'), 1 repeats, 0 ignored, 0 dropped, 0 not written"
    ]
    assert len(recorded(sent.db)) == 2


# ---------------------------------------------------------------------------------------------------------
# Clicks
# ---------------------------------------------------------------------------------------------------------


def stored_links(db: Database) -> dict[int, tuple[str, str]]:
    with db.read() as conn:
        return {r.link_index: (r.name, r.url) for r in conn.execute(select(links))}


def test_each_link_of_a_received_message_redirects_to_its_stored_destination_and_is_recorded(
    sent: Sent, port: int
) -> None:
    address = "guest000@example.org"
    clicks = [p for p in sent.links(address) if p.startswith("/c/")]
    stored = stored_links(sent.db)
    by_name = {name: (index, url) for index, (name, url) in stored.items()}
    assert {"register", "join"} <= set(by_name)
    assert by_name["register"][1] == "https://events.example.org/register"
    locations = {}
    for path in clicks:
        reply = fetch(port, path)
        assert reply.status == 302, path
        assert reply.headers["cache-control"] == NO_CACHE
        assert reply.headers["referrer-policy"] == "no-referrer"  # the token does not travel to the destination
        locations[path] = reply.headers["location"]
        time.sleep(1.1)  # one person clicking, not a scanner walking every link within a second
    # Each link leads to a stored destination, each to another one, Register among them.
    assert set(locations.values()) <= {url for _, url in stored.values()}
    assert len(set(locations.values())) == len(clicks) >= 3
    assert "https://events.example.org/register" in locations.values()
    rows = wait_recorded(sent.db, len(clicks))
    message = sent.message_ids[address]
    assert {(m, kind, machine, reason) for m, kind, _, machine, reason in rows} == {(message, "click", False, None)}
    # Each click recorded with the index of the link followed.
    assert sorted(stored[index][1] for _, _, index, _, _ in rows if index is not None) == sorted(locations.values())
    # The click on Register is a registration for the event.
    with sent.db.read() as conn:
        registered = conn.execute(select(registrations.c.source, registrations.c.message_id)).all()
    assert [tuple(r) for r in registered] == [("link", message)]


def test_a_head_request_on_a_link_redirects_but_is_recorded_as_a_machines(sent: Sent, port: int) -> None:
    address = "guest001@example.org"
    path = next(p for p in sent.links(address) if p.startswith("/c/"))
    reply = fetch(port, path, method="HEAD")
    assert reply.status == 302
    assert reply.headers["location"].startswith("https://events.example.org/")
    [(message, kind, _, machine, reason)] = wait_recorded(sent.db, 1)
    assert (message, kind, machine) == (sent.message_ids[address], "click", True)
    assert reason
    with sent.db.read() as conn:
        assert conn.scalar(select(registrations.c.id)) is None


def test_a_bad_click_token_is_a_404_without_a_redirect_and_records_nothing(sent: Sent, port: int) -> None:
    address = "guest000@example.org"
    register = next(index for index, (name, _) in stored_links(sent.db).items() if name == "register")
    for token in [
        *bad_tokens(sent, address, TrackingKind.CLICK, register),
        sign(SECRET.encode(), TrackingKind.CLICK, sent.message_ids[address], 999),
    ]:
        reply = fetch(port, f"/c/{token}")
        assert reply.status == 404, token
        assert "location" not in reply.headers
        assert reply.body.startswith(b"404 Not Found\n")
    fetch(port, sent.path("guest001@example.org", "/o/"))
    assert [kind for _, kind, *_ in wait_recorded(sent.db, 1)] == ["open"]


def test_a_click_token_names_its_wave_and_every_way_of_answering_it_is_the_same(sent: Sent, port: int) -> None:
    # Links in mail sign the message's wave (token version 2): the first click is looked up by the app, the next
    # ones the server answers itself from memory (campaign.web.protocol); with a query string or over HTTP/1.0 the
    # app answers. A version-1 token of the same link (mail sent before waves were signed in) still works. Each
    # answer is the same redirect but the date, and each click is recorded once with its message and link.
    address = "guest000@example.org"
    message = sent.message_ids[address]
    register = next(p for p in sent.links(address) if p.startswith("/c/") and _link_name(sent, p) == "register")
    claims = verify(SigningKeys(SECRET.encode()), TrackingKind.CLICK, token_of(register))
    with sent.db.read() as conn:
        wave_id: int = conn.execute(select(messages.c.wave_id).where(messages.c.id == message)).scalar_one()
    assert (claims.message_id, claims.wave_id) == (message, wave_id)
    version_1 = "/c/" + sign(SECRET.encode(), TrackingKind.CLICK, message, claims.link_index)
    replies = [fetch(port, register), fetch(port, register), fetch(port, register + "?via=app"), fetch(port, version_1)]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {register} HTTP/1.0\r\nUser-Agent: {CHROME}\r\n\r\n".encode())
        old = b"".join(iter(lambda: sock.recv(65536), b""))
    assert old.startswith(b"HTTP/1.1 302 Found\r\n")
    assert b"\r\nlocation: https://events.example.org/register\r\n" in old.lower()
    assert [r.status for r in replies] == [302] * 4
    assert all(r.body == b"" for r in replies)
    without_date = [{k: v for k, v in r.headers.items() if k != "date"} for r in replies]
    assert all(headers == without_date[0] for headers in without_date)
    assert without_date[0]["location"] == "https://events.example.org/register"
    rows = wait_recorded(sent.db, 5)
    assert {(m, kind, link) for m, kind, link, _, _ in rows} == {(message, "click", claims.link_index)}
    # Another wave's or another link's destinations are no redirect: a 404, nothing recorded.
    for token in [
        sign(SECRET.encode(), TrackingKind.CLICK, message, claims.link_index, wave_id + 1000),
        sign(SECRET.encode(), TrackingKind.CLICK, message, 999, wave_id),
    ]:
        for _ in range(2):  # the second time too: nothing unknown is kept as if found
            reply = fetch(port, f"/c/{token}")
            assert reply.status == 404
            assert "location" not in reply.headers
    time.sleep(0.2)
    assert len(recorded(sent.db)) == 5


def _link_name(sent: Sent, path: str) -> str:
    index = verify(SigningKeys(SECRET.encode()), TrackingKind.CLICK, token_of(path)).link_index
    return stored_links(sent.db)[index][0]


def test_clicks_at_once_on_links_not_looked_up_yet_each_lead_to_their_own_destination(sent: Sent, port: int) -> None:
    # Looked up together (one query for those asked at the same time): each answer must still be its own link's.
    stored = {index: url for index, (_, url) in stored_links(sent.db).items()}
    clicks = [
        (path, sent.message_ids[address], index)
        for address in sent.message_ids
        for path in sent.links(address)
        if path.startswith("/c/")
        and (index := verify(SigningKeys(SECRET.encode()), TrackingKind.CLICK, token_of(path)).link_index)
    ]
    assert len(clicks) >= 6
    with ThreadPoolExecutor(len(clicks)) as pool:
        replies = list(pool.map(lambda click: fetch(port, click[0]), clicks))
    assert [r.status for r in replies] == [302] * len(clicks)
    assert [r.headers["location"] for r in replies] == [stored[index] for _, _, index in clicks]
    rows = wait_recorded(sent.db, len(clicks))
    assert sorted((m, link) for m, _, link, _, _ in rows) == sorted((m, index) for _, m, index in clicks)


@pytest.mark.parametrize(
    "path",
    [
        "/c/https://evil.example",
        "/c/https:%2F%2Fevil.example",
        "/c/%2F%2Fevil.example",
        "/c//evil.example",
        "/c///evil.example",
        "/c/%5Cevil.example",
        "/c/%5C%5Cevil.example",
        "/c/\\evil.example",
        "/c/javascript:alert(1)",
        "/c/javascript%3Aalert(1)",
        "/c/%E2%88%95%E2%88%95evil.example",  # division slashes
        "/c/%EF%BC%8F%EF%BC%8Fevil.example",  # fullwidth solidi
        "/c/%E3%80%82evil.example",  # ideographic full stop
        "/c/?url=https://evil.example",
        "/c/x?next=https://evil.example",
        "/c/%00",
    ],
)
def test_open_redirect_attempts_are_404_without_a_location(sent: Sent, port: int, path: str) -> None:
    reply = fetch(port, path)
    assert reply.status == 404, path
    assert "location" not in reply.headers


def test_a_stored_destination_that_is_not_http_is_never_redirected_to(sent: Sent, port: int) -> None:
    with sent.db.write() as conn:
        wave_id = conn.scalar(select(messages.c.wave_id))
        for index, url in [(900, "javascript:alert(1)"), (901, "//evil.example"), (902, "data:text/html,x")]:
            conn.execute(
                insert(links).values(
                    wave_id=wave_id,
                    link_index=index,
                    name="bad",
                    url=url,
                    url_key=str(index),
                    created_at=datetime.now(UTC),
                )
            )
    message = sent.message_ids["guest000@example.org"]
    for index in (900, 901, 902):
        reply = fetch(port, f"/c/{sign(SECRET.encode(), TrackingKind.CLICK, message, index)}")
        assert reply.status == 404
        assert "location" not in reply.headers


def test_a_huge_path_is_refused_fast_and_records_nothing(sent: Sent, port: int) -> None:
    for prefix, suffix, answer in (("/c/", "", 404), ("/o/", ".gif", 200), ("/ics/", "", 404)):
        # 100 KB: the server refuses a request head that long (431) before the parser or the app sees it.
        huge = fetch(port, prefix + "A" * 100_000 + suffix)
        # 8 KB: the app sees it, and a token of the wrong length is refused before any decoding.
        long = fetch(port, prefix + "A" * 8_000 + suffix)
        assert (huge.status, long.status) == (431, answer), prefix
        for reply in (huge, long):
            assert "location" not in reply.headers
            assert reply.seconds < 1
    fetch(port, sent.path("guest001@example.org", "/o/"))
    assert [kind for _, kind, *_ in wait_recorded(sent.db, 1)] == ["open"]


# ---------------------------------------------------------------------------------------------------------
# Calendar files
# ---------------------------------------------------------------------------------------------------------


def attached_calendar(message: email.message.EmailMessage) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/calendar":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode()
    raise AssertionError("no calendar attached")


def test_the_calendar_link_is_the_recipients_calendar_with_the_attachments_uid_and_sequence(
    sent: Sent, port: int
) -> None:
    address = "guest000@example.org"
    reply = fetch(port, sent.path(address, "/ics/"))
    assert reply.status == 200
    assert reply.headers["content-type"] == "text/calendar; charset=utf-8"
    assert reply.headers["content-disposition"] == 'attachment; filename="invite.ics"'
    served = IcsCalendarStream.calendar_from_ics(reply.body.decode())  # strict: raises on anything wrong
    attached = IcsCalendarStream.calendar_from_ics(attached_calendar(sent.received[address]))
    [event], [original] = served.events, attached.events
    assert (event.uid, event.sequence, event.dtstart, event.summary) == (
        original.uid,
        original.sequence,
        original.dtstart,
        original.summary,
    )
    assert "METHOD:PUBLISH\r\n" in reply.body.decode()
    assert [kind for _, kind, *_ in wait_recorded(sent.db, 1)] == ["calendar"]


def test_a_bad_calendar_token_is_a_404_and_records_nothing(sent: Sent, port: int) -> None:
    for token in bad_tokens(sent, "guest000@example.org", TrackingKind.CALENDAR):
        reply = fetch(port, f"/ics/{token}")
        assert reply.status == 404, token
        assert b"BEGIN:VCALENDAR" not in reply.body
    fetch(port, sent.path("guest001@example.org", "/o/"))
    assert [kind for _, kind, *_ in wait_recorded(sent.db, 1)] == ["open"]


def test_with_request_invitations_the_calendar_names_the_recipient_as_attendee(sent: Sent, tmp_path: Path) -> None:
    config = write_config(tmp_path, sent.db)
    config.write_text(config.read_text() + '[render]\ncalendar_method = "REQUEST"\n')
    address = "guest001@example.org"
    with running(config) as web:
        reply = fetch(web.port, sent.path(address, "/ics/"))
    assert reply.status == 200
    assert "METHOD:REQUEST\r\n" in reply.body.decode()
    [event] = IcsCalendarStream.calendar_from_ics(reply.body.decode()).events
    assert [attendee.uri for attendee in event.attendees] == [f"mailto:{address}"]
    [original] = IcsCalendarStream.calendar_from_ics(attached_calendar(sent.received[address])).events
    assert event.uid == original.uid


def _exchange(port: int, *parts: bytes, answers: int = 1) -> bytes:
    """What the server says to ``parts`` sent in turn on one connection (a pause between them), once it has given
    ``answers`` answers or closed the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for n, part in enumerate(parts):
            if n:
                time.sleep(0.1)
            sock.sendall(part)
        said = b""
        while said.count(b"HTTP/1.1 ") < answers or not said.endswith((PIXEL, b"\r\n\r\n")):
            if not (more := sock.recv(65536)):
                break
            said += more
    return said


def test_a_pixel_request_the_server_parses_itself_is_recorded_as_one_parsed_by_httptools(sent: Sent, port: int) -> None:
    # campaign.web.protocol answers a whole simple head itself, parsed by a regular expression; anything else goes
    # through httptools. Both keep a header value's trailing blanks and drop its leading ones, and read names in any
    # case; pipelined, split, closing, bodied and obs-text requests are each answered and recorded once, a control
    # character is a 400 and records nothing.
    pixel = sent.path("guest000@example.org", "/o/")
    head = "User-Agent: \tUA {}  \r\nsec-PURPOSE: prefetch;prerender\r\nHost: x\r\n"
    itself = _exchange(port, f"GET {pixel} HTTP/1.1\r\n{head.format('itself')}\r\n".encode())
    via_app = _exchange(port, f"GET {pixel}?via=app HTTP/1.1\r\n{head.format('itself')}\r\n".encode())
    assert itself.startswith(b"HTTP/1.1 200 OK\r\n")
    assert itself.endswith(PIXEL)
    assert via_app.startswith(b"HTTP/1.1 200 OK\r\n")
    assert via_app.endswith(PIXEL)

    def get(agent: str, extra: str = "", body: str = "") -> bytes:
        return f"GET {pixel} HTTP/1.1\r\nHost: x\r\nUser-Agent: {agent}\r\n{extra}\r\n{body}".encode()

    pipelined = _exchange(port, get("UA first") + get("UA second"), answers=2)
    assert pipelined.count(b"HTTP/1.1 200 OK\r\n") == 2
    split = get("UA split")
    assert _exchange(port, split[:20], split[20:]).endswith(PIXEL)
    # A read that looks like a whole request but ends one the parser has begun is that request's (its header's
    # value): the open of guest000's message recorded, not guest001's.
    begun = f"GET {pixel} HTTP/1.1\r\nUser-Agent: UA begun\r\nX-Note: ".encode()
    other = sent.path("guest001@example.org", "/o/")
    assert _exchange(port, begun, f"GET {other} HTTP/1.1\r\n\r\n".encode()).endswith(PIXEL)
    closing_reply = _exchange(port, get("UA closing", "Connection: close\r\n"), answers=2)  # closed after one
    assert closing_reply.count(b"HTTP/1.1 ") == 1
    assert b"\r\nconnection: close\r\n" in closing_reply.lower()
    assert _exchange(port, get("UA body", "Content-Length: 3\r\n", "abc")).endswith(PIXEL)
    assert _exchange(port, get("UA caf\u00e9").replace("\u00e9".encode(), b"\xe9")).endswith(PIXEL)
    assert _exchange(port, get("UA \x01 control")).startswith(b"HTTP/1.1 400 ")
    rows = [(m, kind, machine, reason) for m, kind, _, machine, reason in wait_recorded(sent.db, 9)]
    message_id = sent.message_ids["guest000@example.org"]
    prefetch = (message_id, "open", True, "sec-purpose header: prefetch")
    assert rows == [prefetch, prefetch] + [(message_id, "open", False, None)] * 7
    with sent.db.read() as conn:
        agents = list(conn.scalars(select(tracking_events.c.user_agent).order_by(tracking_events.c.id)))
    assert agents == [
        "UA itself  ",
        "UA itself  ",
        "UA first",
        "UA second",
        "UA split",
        "UA begun",
        "UA closing",
        "UA body",
        "UA café",
    ]


def test_hits_of_one_user_agent_share_its_text_and_long_or_countless_agents_are_not_kept(
    db: Database, tmp_path: Path
) -> None:
    # A hit's user agent is decoded once per distinct agent and shared; the memory of agents is bounded in count
    # and in size, whatever clients send (a head may be 32 KiB).
    settings = load_settings(write_config(tmp_path, db))
    endpoints = TrackingEndpoints(db, settings, SigningKeys(b"k" * 32), HitRecorder(db, settings.tracking))
    claims = TokenClaims(TrackingKind.OPEN, 1)

    def agent_of(raw: bytes) -> str | None:
        scope = {"method": "GET", "headers": [(b"host", b"x"), (b"user-agent", raw)], "client": ("192.0.2.1", 9)}
        return endpoints._hit(scope, claims).user_agent

    first, second = agent_of(b"Mozilla/5.0 (X11) Firefox/133.0"), agent_of(b"Mozilla/5.0 (X11) Firefox/133.0")
    assert first == "Mozilla/5.0 (X11) Firefox/133.0"
    assert first is second
    huge = "é".encode("latin-1") * 20_000
    assert agent_of(huge) == "é" * 20_000  # recorded (the recorder keeps the first 1,000 characters)
    assert huge not in endpoints._agents
    for n in range(10_050):
        agent_of(b"agent %d" % n)
    assert 0 < len(endpoints._agents) <= 10_000


def test_links_already_sent_follow_the_event_when_its_links_or_time_change(
    sent: Sent, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A new user's review: after `events update` moved the session, the invitation's Google Calendar button added
    # the old time (the attached .ics was right), and a changed registration or meeting link was not followed.
    monkeypatch.setattr(tracking_web, "DESTINATION_SECONDS", 0.2)
    address = "guest000@example.org"
    clicks = {_link_name(sent, p): p for p in sent.links(address) if p.startswith("/c/")}
    assert {"register", "calendar_google", "calendar_outlook"} <= set(clicks)
    event = get_event(sent.db, "event-c")
    moved = event.starts_at + timedelta(hours=1)
    old_dates = f"{event.starts_at:%Y%m%dT%H%M%SZ}"
    with running(sent.config) as web:
        assert fetch(web.port, clicks["register"]).headers["location"] == "https://events.example.org/register"
        assert old_dates in fetch(web.port, clicks["calendar_google"]).headers["location"]
        outlook = fetch(web.port, clicks["calendar_outlook"]).headers["location"]
        values = parse_event_document(
            {
                "slug": "event-c",
                "title": event.title,
                "description": event.description,
                "start": moved.isoformat(),
                "end": (moved + timedelta(hours=1)).isoformat(),
                "timezone": event.timezone,
                "registration_url": "https://events.example.org/register-2027",
                "join_url": "https://meet.example.org/new-room",
            },
            "test event",
        )
        update_event(sent.db, sent.settings, "event-c", values)
        time.sleep(0.6)  # the server's memory of destinations forgotten meanwhile
        register = fetch(web.port, clicks["register"]).headers["location"]
        assert register == "https://events.example.org/register-2027"
        google = fetch(web.port, clicks["calendar_google"]).headers["location"]
        assert f"{moved:%Y%m%dT%H%M%SZ}" in google
        assert old_dates not in google
        assert "new-room" in google  # the meeting, the entry's location
        assert fetch(web.port, clicks["calendar_outlook"]).headers["location"] != outlook
