"""The unsubscribe page and RFC 8058 one-click, through real HTTP: the app on a real uvicorn server on 127.0.0.1
port 0, spoken to with ``http.client`` (no cookies, no redirects followed), against a real database; what is
queued afterwards is delivered for real to an aiosmtpd server, to see who still gets mail."""

from __future__ import annotations

import http.client
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from campaign.config import Settings, load_settings
from campaign.models import SuppressionReason, TrackingKind
from campaign.rules.contact_fields import email_key
from campaign.services.campaigns import create_campaign
from campaign.services.context import AppContext
from campaign.services.lifecycle import launch
from campaign.store import suppressions as suppression_store
from campaign.store.engine import Database
from campaign.store.outbox import EVENT_UNSUBSCRIBED
from campaign.store.tables import contacts, event_unsubscribes, events, messages, suppressions, tracking_events
from campaign.tokens import SigningKeys, sign
from campaign.web.server import WebServer
from campaign.web.unsubscribe import form_fields, mask_address
from tests.test_delivery import (
    KEY,
    TEMPLATES,
    Sink,
    add_future_event,
    outbox_rows,
    pipelining_smtp,
    prepare,
    send,
    statuses,
    tuned,
)
from tests.test_web import Reply, Running, running

smtp = pipelining_smtp


# ---------------------------------------------------------------------------------------------------------
# Set-up: a launched campaign, its messages queued, and the web app serving
# ---------------------------------------------------------------------------------------------------------


def settings_for(tmp_path: Path, db: Database) -> tuple[Path, Settings]:
    config = tmp_path / "web.toml"
    url = db.url.render_as_string(hide_password=False)
    config.write_text(f'[paths]\ntemplates = "{TEMPLATES}"\n[database]\nurl = "{url}"\n[web]\nport = 0\n')
    return config, load_settings(config, environ={})


@pytest.fixture
def site(db: Database, tmp_path: Path) -> Iterator[Site]:
    """Campaign ``c`` (event-c) launched to six guests, its messages queued, and the web app on it."""
    config, settings = settings_for(tmp_path, db)
    emails = prepare(db, tmp_path, 6)
    assert launch(db, tuned(settings), KEY, "c").queued == 6
    context = AppContext(settings_given=settings)
    context._keys = SigningKeys(KEY)
    with running(config, WebServer(context, host="127.0.0.1", port=0)) as web:
        yield Site(db, tuned(settings), web, emails)


class Site:
    def __init__(self, db: Database, settings: Settings, web: Running, emails: list[str]) -> None:
        self.db, self.settings, self.web, self.emails = db, settings, web, emails

    def message_id(self, address: str, campaign: str = "c") -> int:
        return outbox_rows(self.db, campaign)[address].id

    def path(self, address: str, campaign: str = "c", kind: TrackingKind = TrackingKind.UNSUBSCRIBE) -> str:
        return f"/u/{sign(KEY, kind, self.message_id(address, campaign))}"

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> Reply:
        with closing(http.client.HTTPConnection(self.web.host, self.web.port, timeout=10)) as conn:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read().decode())

    def post_form(self, path: str, fields: dict[str, str]) -> Reply:
        body = "&".join(f"{k}={v}" for k, v in fields.items()).encode()
        return self.request("POST", path, body, {"Content-Type": "application/x-www-form-urlencoded"})

    def state(self) -> dict[str, Any]:
        """Everything an unsubscribe could write."""
        with self.db.read() as conn:
            return {
                "suppressions": sorted(conn.execute(select(suppressions.c.email_key, suppressions.c.reason)).all()),
                "event_unsubscribes": sorted(
                    conn.execute(select(event_unsubscribes.c.event_id, event_unsubscribes.c.email_key)).all()
                ),
                "tracking_events": conn.execute(select(func.count()).select_from(tracking_events)).scalar_one(),
                "messages": sorted(conn.execute(select(messages.c.id, messages.c.status)).all()),
            }

    def suppression(self, address: str) -> tuple[str, int | None] | None:
        with self.db.read() as conn:
            row = conn.execute(
                select(suppressions.c.reason, suppressions.c.message_id).where(
                    suppressions.c.email_key == email_key(address)
                )
            ).first()
        return None if row is None else (row.reason, row.message_id)

    def unsubscribe_events(self) -> list[tuple[int, bool]]:
        with self.db.read() as conn:
            stmt = select(tracking_events.c.message_id, tracking_events.c.is_machine).where(
                tracking_events.c.kind == TrackingKind.UNSUBSCRIBE.value
            )
            return sorted((m, bool(machine)) for m, machine in conn.execute(stmt))


def multipart(fields: dict[str, str]) -> tuple[bytes, str]:
    boundary = f"----form{uuid.uuid4().hex}"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ]
    return ("".join(parts) + f"--{boundary}--\r\n").encode(), f"multipart/form-data; boundary={boundary}"


ONE_CLICK = {"List-Unsubscribe": "One-Click"}
URLENCODED = "application/x-www-form-urlencoded"


# ---------------------------------------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------------------------------------


def test_the_page_shows_the_masked_address_the_event_and_both_choices_and_a_get_changes_nothing(site: Site) -> None:
    address = site.emails[2]  # guest002@example.org
    before = site.state()
    reply = site.request("GET", site.path(address))
    assert reply.status == 200
    assert reply.headers["content-type"] == "text/html; charset=utf-8"
    assert "g***2@example.org" in reply.body
    assert address not in reply.body
    assert "Labour migration summit" in reply.body
    assert "Unsubscribe from this event only" in reply.body
    assert "Unsubscribe from everything" in reply.body
    assert "Subscribe again" not in reply.body
    assert re.findall(r'name="scope" value="(\w+)"', reply.body) == ["event", "all"]
    # The forms post back to this very URL (relative, so a proxy's path prefix is kept).
    token = site.path(address).removeprefix("/u/")
    assert re.findall(r'<form method="post" action="([^"]*)">', reply.body) == [token, token]
    assert "<script" not in reply.body
    assert 'name="viewport"' in reply.body
    # The one style carries this response's nonce; the policy allows it, posting to this site, nothing else.
    [nonce] = re.findall(r'<style nonce="([^"]+)">', reply.body)
    assert reply.headers["content-security-policy"] == (
        f"default-src 'none'; style-src 'nonce-{nonce}'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
    assert reply.headers["x-frame-options"] == "DENY"
    assert reply.headers["cache-control"] == "no-store"
    assert "set-cookie" not in reply.headers
    again = site.request("GET", site.path(address))
    assert re.findall(r'<style nonce="([^"]+)">', again.body) != [nonce]  # one per response
    head = site.request("HEAD", site.path(address))
    assert (head.status, head.body) == (200, "")
    assert site.state() == before


def test_an_event_title_with_markup_is_shown_escaped(site: Site) -> None:
    with site.db.write() as conn:
        conn.execute(update(events).values(title='<script>alert("x")</script> & <b>more</b>'))
    reply = site.request("GET", site.path(site.emails[0]))
    assert reply.status == 200
    assert "<script>" not in reply.body
    assert "<b>" not in reply.body
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;more&lt;/b&gt;" in reply.body


def test_a_contact_whose_locale_is_spanish_gets_the_page_in_spanish(site: Site) -> None:
    address = site.emails[1]
    with site.db.write() as conn:
        conn.execute(update(contacts).where(contacts.c.email_key == email_key(address)).values(locale="es-MX"))
    reply = site.request("GET", site.path(address))
    assert '<html lang="es">' in reply.body
    assert "Darme de baja solo de este evento" in reply.body
    assert '<html lang="en">' in site.request("GET", site.path(site.emails[0])).body


# ---------------------------------------------------------------------------------------------------------
# RFC 8058 one-click
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_one_click_suppresses_at_once_without_cookies_or_redirect_and_queued_mail_is_not_sent(
    site: Site, smtp: Sink, encoding: str
) -> None:
    address = site.emails[3]
    if encoding == "urlencoded":
        body, content_type = b"List-Unsubscribe=One-Click", "application/x-www-form-urlencoded"
    else:
        body, content_type = multipart(ONE_CLICK)
    reply = site.request("POST", site.path(address), body, {"Content-Type": content_type})
    assert reply.status == 200
    assert "location" not in reply.headers
    assert "set-cookie" not in reply.headers
    assert reply.headers["content-type"] == "text/plain; charset=utf-8"
    assert reply.body == "Unsubscribed: g***3@example.org will get no more messages from us.\n"
    message_id = site.message_id(address)
    assert site.suppression(address) == (SuppressionReason.UNSUBSCRIBED.value, message_id)
    assert site.unsubscribe_events() == [(message_id, False)]

    # Again (a provider retrying): the same answer, nothing more written.
    assert site.request("POST", site.path(address), body, {"Content-Type": content_type}).status == 200
    assert site.unsubscribe_events() == [(message_id, False)]

    # Its message, queued before, is not sent: the claim finds the suppression.
    summary = send(site.db, site.settings, smtp.servers(), campaign=None)
    assert summary.counts == {"sent": 5, "suppressed": 1}
    assert address not in smtp.handler.received()
    assert outbox_rows(site.db, "c")[address].status == "suppressed"
    assert outbox_rows(site.db, "c")[address].last_error == SuppressionReason.UNSUBSCRIBED.value


def test_the_list_unsubscribe_header_of_a_sent_message_leads_to_one_click(site: Site, smtp: Sink) -> None:
    send(site.db, site.settings, smtp.servers(), campaign=None)
    address = site.emails[5]
    [message] = smtp.handler.messages_for(address)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    [url] = re.findall(r"<(https://[^>]+)>", message["List-Unsubscribe"])
    path = site.path(address)
    assert url == f"{site.settings.links.public_url}{path}"
    reply = site.request(
        "POST", path, b"List-Unsubscribe=One-Click", {"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert reply.status == 200
    assert site.suppression(address) == ("unsubscribed", site.message_id(address))


# ---------------------------------------------------------------------------------------------------------
# The page's choices
# ---------------------------------------------------------------------------------------------------------


def test_leaving_one_event_stops_its_mail_and_not_another_events(
    db: Database, tmp_path: Path, site: Site, smtp: Sink
) -> None:
    add_future_event(db, "event-d")
    create_campaign(db, event_ref="event-d", list_name="guests", name="d")
    assert launch(db, site.settings, KEY, "d").queued == 6
    leaver = site.emails[4]

    reply = site.post_form(site.path(leaver), {"scope": "event"})
    assert reply.status == 200
    assert "location" not in reply.headers
    assert "Unsubscribed from this event" in reply.body
    assert "g***4@example.org will get no more messages about “Labour migration summit”" in reply.body
    assert re.findall(r'name="scope" value="(\w+)"', reply.body) == ["all", "resubscribe"]
    assert site.suppression(leaver) is None
    assert site.unsubscribe_events() == [(site.message_id(leaver), False)]

    summary = send(db, site.settings, smtp.servers(), campaign=None)
    assert summary.counts == {"sent": 11, "suppressed": 1}
    assert smtp.handler.received() == Counter({e: 1 if e == leaver else 2 for e in site.emails})
    assert (outbox_rows(db, "c")[leaver].status, outbox_rows(db, "c")[leaver].last_error) == (
        "suppressed",
        EVENT_UNSUBSCRIBED,
    )
    assert statuses(db, "d") == {"sent": 6}
    # The page now says so, and a GET still changes nothing.
    page = site.request("GET", site.path(leaver))
    assert "Unsubscribed from this event" in page.body


def test_subscribing_again_lifts_an_unsubscribe_and_an_event_opt_out_but_never_a_bounce(site: Site) -> None:
    leaver, bounced = site.emails[0], site.emails[1]
    assert site.post_form(site.path(leaver), {"scope": "event"}).status == 200
    reply = site.post_form(site.path(leaver), {"scope": "all"})
    assert "Unsubscribed" in reply.body
    assert re.findall(r'name="scope" value="(\w+)"', reply.body) == ["resubscribe"]
    assert site.suppression(leaver) == ("unsubscribed", site.message_id(leaver))

    reply = site.post_form(site.path(leaver), {"scope": "resubscribe"})
    assert reply.status == 200
    assert "You are subscribed again." in reply.body
    assert re.findall(r'name="scope" value="(\w+)"', reply.body) == ["event", "all"]
    assert site.suppression(leaver) is None
    assert site.state()["event_unsubscribes"] == []

    with site.db.write() as conn:
        suppression_store.add(
            conn, email_key(bounced), SuppressionReason.BOUNCED, "550 no such user", None, datetime.now(UTC)
        )
    page = site.request("GET", site.path(bounced))
    assert "We send no messages to g***1@example.org." in page.body
    assert "<form" not in page.body
    before = site.state()
    for scope in ("resubscribe", "all", "event"):
        reply = site.post_form(site.path(bounced), {"scope": scope})
        assert reply.status == 200
        assert "<form" not in reply.body
    after = site.state()
    assert site.suppression(bounced) == ("bounced", None)
    # Only the event opt-out was written (an address may leave an event whatever else holds): no lifted bounce.
    assert after["suppressions"] == before["suppressions"]


# ---------------------------------------------------------------------------------------------------------
# Bad requests: nothing written
# ---------------------------------------------------------------------------------------------------------


def test_forged_truncated_cross_purpose_and_unknown_tokens_are_404_and_nothing_is_written(site: Site) -> None:
    address = site.emails[0]
    good = site.path(address).removeprefix("/u/")
    forged = sign(b"another-key-entirely-0123456789abcdef", TrackingKind.UNSUBSCRIBE, site.message_id(address))
    flipped = good[:-1] + ("A" if good[-1] != "A" else "B")
    tokens = {
        "forged": forged,
        "flipped": flipped,
        "truncated": good[:-1],
        "extended": good + "A",
        "open token": sign(KEY, TrackingKind.OPEN, site.message_id(address)),
        "click token": sign(KEY, TrackingKind.CLICK, site.message_id(address)),
        "no such message": sign(KEY, TrackingKind.UNSUBSCRIBE, 987_654),
        "garbage": "%3Cscript%3E",
    }
    before = site.state()
    for name, token in tokens.items():
        for method in ("GET", "POST"):
            body = b"List-Unsubscribe=One-Click" if method == "POST" else None
            reply = site.request(method, f"/u/{token}", body, {"Content-Type": "application/x-www-form-urlencoded"})
            assert reply.status == 404, (name, method)
            assert reply.body.startswith("404 Not Found\n"), name
    assert site.state() == before


def test_a_post_that_is_neither_one_click_nor_the_form_is_400_and_changes_nothing(site: Site) -> None:
    path = site.path(site.emails[0])
    before = site.state()
    for body, content_type in [
        (b"", "application/x-www-form-urlencoded"),
        (b"List-Unsubscribe=Yes-Please", "application/x-www-form-urlencoded"),
        (b"scope=everything", "application/x-www-form-urlencoded"),
        (b"List-Unsubscribe=One-Click", "text/plain"),
        (b"not multipart at all", "multipart/form-data; boundary=x"),
        (
            b"&".join(b"f%d=1" % i for i in range(50)) + b"&List-Unsubscribe=One-Click",
            "application/x-www-form-urlencoded",
        ),
    ]:
        reply = site.request("POST", path, body, {"Content-Type": content_type})
        assert reply.status == 400, (body, content_type)
        assert "List-Unsubscribe=One-Click" in reply.body
    assert site.state() == before


def test_a_body_over_10_kb_is_413_and_changes_nothing(site: Site) -> None:
    path = site.path(site.emails[0])
    before = site.state()
    big = b"List-Unsubscribe=One-Click&pad=" + b"x" * 11_000
    reply = site.request("POST", path, big, {"Content-Type": "application/x-www-form-urlencoded"})
    assert reply.status == 413
    # Chunked: no Content-Length to go by, found out while reading.
    with closing(http.client.HTTPConnection(site.web.host, site.web.port, timeout=10)) as conn:
        conn.request(
            "POST",
            path,
            body=iter([big[:6000], big[6000:]]),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            encode_chunked=True,
        )
        assert conn.getresponse().status == 413
    assert site.state() == before
    # Just under the limit is read.
    fits = b"List-Unsubscribe=One-Click&pad=" + b"x" * 9_000
    assert site.request("POST", path, fits, {"Content-Type": "application/x-www-form-urlencoded"}).status == 200


# ---------------------------------------------------------------------------------------------------------
# The helpers
# ---------------------------------------------------------------------------------------------------------


def test_form_fields_reads_both_encodings_and_skips_files() -> None:
    body, content_type = multipart({"List-Unsubscribe": "One-Click", "scope": "all"})
    assert form_fields(content_type, body) == {"List-Unsubscribe": "One-Click", "scope": "all"}
    assert form_fields("application/x-www-form-urlencoded; charset=utf-8", b"scope=event&scope=all") == {
        "scope": "event"
    }
    with_file = b'--b\r\nContent-Disposition: form-data; name="scope"; filename="x.txt"\r\n\r\nall\r\n--b--\r\n'
    assert form_fields("multipart/form-data; boundary=b", with_file) == {}
    assert form_fields("multipart/form-data; boundary=\u00e9", b"") == {}
    many, content_type = multipart({f"f{i}": "1" for i in range(30)} | {"List-Unsubscribe": "One-Click"})
    assert form_fields(content_type, many) == {}


@pytest.mark.parametrize(
    ("address", "masked"),
    [("guest001@example.org", "g***1@example.org"), ("ab@example.org", "a***@example.org"), ("x@y.org", "x***@y.org")],
)
def test_mask_address(address: str, masked: str) -> None:
    assert mask_address(address) == masked
