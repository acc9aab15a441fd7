"""``POST /hooks/registration`` through real HTTP: the web app on a real uvicorn server on 127.0.0.1 port 0 against
a real database, spoken to with ``http.client``; each request signed here as Zoom signs it (hmac, computed
independently of the code under test), and what was recorded read back from the database."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from campaign.exceptions import ConfigError
from campaign.models import Audience
from campaign.rules.routes import REGISTRATION_HOOK
from campaign.secrets import REGISTRATION_HOOK_SECRET_ENV, registration_hook_secret
from campaign.services.campaigns import create_campaign, get_campaign
from campaign.services.events import add_event
from campaign.store import audiences
from campaign.store.engine import Database
from campaign.store.tables import contacts, events, registrations
from campaign.web.hooks import MAX_BODY_BYTES
from tests.test_scheduling import add_contacts, event_values
from tests.test_web import Reply, Running, config_for, running

SECRET = "zoom-secret-token-for-tests-0123"
OTHER_SECRET = "another-apps-secret-token-4567"
PATH = REGISTRATION_HOOK.path()
WEBINAR = 89967603066
START = datetime(2030, 6, 18, 12, tzinfo=UTC)
REGISTERED_AT = datetime(2030, 5, 2, 8, 15, 30, 125000, tzinfo=UTC)
PEOPLE = ("ann@example.org", "bob@example.org", "cy@example.org")


# ---------------------------------------------------------------------------------------------------------
# Set-up: contacts, an event whose join link is the Zoom webinar, another event, and the web app serving
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Hook:
    """The web app serving, its database, and how to post to the endpoint."""

    db: Database
    web: Running

    def post(self, body: bytes, headers: dict[str, str]) -> Reply:
        with closing(http.client.HTTPConnection(self.web.host, self.web.port, timeout=10)) as conn:
            conn.request("POST", PATH, body=body, headers={"Content-Type": "application/json", **headers})
            response = conn.getresponse()
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read().decode())

    def send(self, document: Any, secret: str = SECRET) -> Reply:
        """``document`` as JSON, signed now with ``secret``."""
        body = json.dumps(document).encode()
        return self.post(body, signed(body, secret))

    def recorded(self) -> list[tuple[str, str, str, datetime]]:
        """Every registration: (event slug, address, source, registered at in UTC)."""
        stmt = (
            select(events.c.slug, contacts.c.email, registrations.c.source, registrations.c.registered_at)
            .join(events, events.c.id == registrations.c.event_id)
            .join(contacts, contacts.c.id == registrations.c.contact_id)
            .order_by(events.c.slug, contacts.c.email)
        )
        with self.db.read() as conn:
            return [(slug, email, source, _utc(at)) for slug, email, source, at in conn.execute(stmt)]

    def registered_audience(self) -> int:
        """How many of campaign ``c``'s list its ``registered`` audience selects now."""
        campaign = get_campaign(self.db, "c").campaign
        with self.db.read() as conn:
            return sum(
                z.selected for z in audiences.zone_sizes(conn, campaign.list_id, campaign.id, Audience.REGISTERED)
            )


def _utc(at: datetime) -> datetime:
    # SQLite gives back naive UTC; PostgreSQL an aware time.
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def signed(body: bytes, secret: str = SECRET, at: float | None = None) -> dict[str, str]:
    """Zoom's headers for ``body``: the timestamp (Unix seconds) and v0= HMAC-SHA256 of v0:{timestamp}:{body}."""
    timestamp = str(int(time.time() if at is None else at))
    mac = hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {"x-zm-request-timestamp": timestamp, "x-zm-signature": f"v0={mac}"}


def prepare(db: Database, tmp_path: Path) -> None:
    """Three contacts in list ``guests``; event ``talk`` on Zoom webinar WEBINAR (its join link) with campaign
    ``c``, and event ``other`` on another webinar (its registration link)."""
    add_contacts(db, tmp_path, dict.fromkeys(PEOPLE, ""))
    add_event(db, event_values(START, "talk", join_url=f"https://us02web.zoom.us/j/{WEBINAR}?pwd=Xy12"))
    add_event(db, event_values(START, "other", registration_url="https://zoom.us/webinar/register/11122233344"))
    create_campaign(db, event_ref="talk", list_name="guests", name="c")


def config_of(tmp_path: Path, db: Database) -> Path:
    """A config.toml on ``db`` (SQLite or PostgreSQL), its web service on any free port."""
    return config_for(tmp_path, db.url.render_as_string(hide_password=False))


@pytest.fixture
def hook(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hook]:
    """The web app serving on each backend, the endpoint's secret set."""
    prepare(db, tmp_path)
    monkeypatch.setenv(REGISTRATION_HOOK_SECRET_ENV, SECRET)
    with running(config_of(tmp_path, db)) as web:
        yield Hook(db, web)


def zoom_registration(
    email: str,
    *,
    kind: str = "webinar.registration_created",
    webinar: int | str = WEBINAR,
    status: str | None = "approved",
    at: datetime = REGISTERED_AT,
) -> dict[str, Any]:
    """A delivery as Zoom sends it: the webinar and its registrant, ``event_ts`` in milliseconds."""
    registrant: dict[str, Any] = {
        "id": "hfk3yKbxQkaEX28ZgQ2EPQ",
        "first_name": "Ann",
        "last_name": "Example",
        "email": email,
        "join_url": f"https://us02web.zoom.us/w/{webinar}?tk=abc.def",
    }
    if status is not None:
        registrant["status"] = status
    return {
        "event": kind,
        "event_ts": int(at.timestamp() * 1000),
        "payload": {
            "account_id": "AAAAAABBBB",
            "object": {
                "uuid": "Gd6Ao7NGRTqJ0D4lOXb2iQ==",
                "id": webinar,
                "host_id": "x1yCzABCDEfg23HiJKl4mN",
                "topic": "A talk",
                "type": 5,
                "start_time": "2030-06-18T12:00:00Z",
                "duration": 60,
                "timezone": "Europe/Zurich",
                "registrant": registrant,
            },
        },
    }


def one_line(reply: Reply) -> str:
    assert reply.headers["content-type"] == "text/plain; charset=utf-8"
    assert reply.body.endswith("\n"), reply.body
    assert reply.body.count("\n") == 1, reply.body
    return reply.body.strip()


# ---------------------------------------------------------------------------------------------------------
# Zoom
# ---------------------------------------------------------------------------------------------------------


def test_a_signed_zoom_registration_is_recorded_once_and_the_registered_audience_sees_it(
    hook: Hook, caplog: pytest.LogCaptureFixture
) -> None:
    assert hook.registered_audience() == 0
    # The platform's spelling of an address is matched to the contact.
    delivery = zoom_registration("Ann@EXAMPLE.org")
    with caplog.at_level(logging.INFO, "campaign.web.hooks"):
        reply = hook.send(delivery)
    assert reply.status == 200, reply.body
    assert reply.headers["content-type"] == "application/json"
    assert reply.headers["cache-control"] == "no-store"
    assert json.loads(reply.body) == {
        "result": "recorded",
        "events": ["talk"],
        "added": 1,
        "known": 0,
        "not_contacts": [],
    }
    assert hook.recorded() == [("talk", "ann@example.org", "webhook", REGISTERED_AT)]
    assert hook.registered_audience() == 1
    assert "events=talk added=1 known=0" in caplog.text
    assert SECRET not in caplog.text

    # Zoom delivers again (a retry): signed anew, recorded once, its first time kept.
    again = hook.send(delivery)
    assert json.loads(again.body) == {
        "result": "recorded",
        "events": ["talk"],
        "added": 0,
        "known": 1,
        "not_contacts": [],
    }
    assert hook.recorded() == [("talk", "ann@example.org", "webhook", REGISTERED_AT)]
    assert hook.registered_audience() == 1

    # The webinar's number as a string, as some payloads give it, and the approval event: a registration too.
    approved = zoom_registration("bob@example.org", kind="webinar.registration_approved", webinar=str(WEBINAR))
    assert json.loads(hook.send(approved).body)["added"] == 1
    assert hook.registered_audience() == 2


def test_zooms_url_validation_challenge_is_answered_with_the_tokens_hmac(hook: Hook) -> None:
    plain = "qgg8vlvZRS6UYooatFL8Aw"
    challenge = {"payload": {"plainToken": plain}, "event_ts": 1654503849680, "event": "endpoint.url_validation"}
    reply = hook.send(challenge)
    assert reply.status == 200, reply.body
    expected = hmac.new(SECRET.encode(), plain.encode(), hashlib.sha256).hexdigest()
    assert json.loads(reply.body) == {"plainToken": plain, "encryptedToken": expected}
    # Unsigned, the answer would be the HMAC of anything anyone asks: a signature forged for them.
    body = json.dumps(challenge).encode()
    assert hook.post(body, {}).status == 401
    assert hook.post(body, signed(body, OTHER_SECRET)).status == 401
    assert one_line(hook.send({"event": "endpoint.url_validation", "payload": {}})) == "payload.plainToken: missing"


def test_forged_changed_replayed_and_unsigned_requests_are_401_and_record_nothing(
    hook: Hook, caplog: pytest.LogCaptureFixture
) -> None:
    body = json.dumps(zoom_registration("ann@example.org")).encode()
    now = time.time()
    valid = signed(body)
    attempts = {
        "another secret": (body, signed(body, OTHER_SECRET)),
        "a signature over another body": (body.replace(b"ann@", b"bob@"), valid),
        "6 minutes old (a replay)": (body, signed(body, at=now - 360)),
        "6 minutes ahead": (body, signed(body, at=now + 360)),
        "a timestamp changed after signing": (body, {**valid, "x-zm-request-timestamp": str(int(now) - 1)}),
        "no headers": (body, {}),
        "no signature": (body, {"x-zm-request-timestamp": valid["x-zm-request-timestamp"]}),
        "no timestamp": (body, {"x-zm-signature": valid["x-zm-signature"]}),
        "a timestamp that is no time": (body, {**valid, "x-zm-request-timestamp": "soon"}),
    }
    with caplog.at_level(logging.WARNING, "campaign.web.hooks"):
        for what, (sent, headers) in attempts.items():
            reply = hook.post(sent, headers)
            assert reply.status == 401, (what, reply.body)
            assert one_line(reply), what
    assert hook.recorded() == []
    assert "x-zm-signature does not match the body" in caplog.text
    assert "more than 5 minutes from now" in caplog.text
    assert SECRET not in caplog.text
    # The same body, signed now with the secret: recorded.
    assert hook.post(body, signed(body)).status == 200
    assert len(hook.recorded()) == 1


def test_a_webinar_of_no_event_and_other_zoom_events_are_ignored_with_200(
    hook: Hook, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, "campaign.web.hooks"):
        reply = hook.send(zoom_registration("ann@example.org", webinar=12345678901))
        other_kind = hook.send(zoom_registration("ann@example.org", kind="webinar.registration_cancelled"))
    assert reply.status == 200, reply.body
    assert json.loads(reply.body) == {
        "result": "ignored",
        "reason": "no event has Zoom webinar 12345678901 in its join_url or registration_url",
    }
    assert other_kind.status == 200
    assert json.loads(other_kind.body)["reason"] == "Zoom event 'webinar.registration_cancelled' is not a registration"
    assert "ignored a delivery: no event has Zoom webinar 12345678901" in caplog.text
    assert hook.recorded() == []
    # The webinar of event `other`, named in its registration link, is found there.
    assert json.loads(hook.send(zoom_registration("cy@example.org", webinar=11122233344)).body)["events"] == ["other"]
    assert hook.recorded() == [("other", "cy@example.org", "webhook", REGISTERED_AT)]


def test_a_pending_registration_is_recorded_only_once_approved(hook: Hook) -> None:
    pending = hook.send(zoom_registration("ann@example.org", status="pending"))
    assert pending.status == 200
    assert json.loads(pending.body) == {
        "result": "ignored",
        "reason": "registration status 'pending': recorded once approved",
    }
    assert hook.recorded() == []
    approved_at = REGISTERED_AT + timedelta(days=1)
    approval = zoom_registration("ann@example.org", kind="webinar.registration_approved", at=approved_at)
    assert json.loads(hook.send(approval).body)["added"] == 1
    assert hook.recorded() == [("talk", "ann@example.org", "webhook", approved_at)]
    # A registrant without a status (automatic approval) is registered.
    assert json.loads(hook.send(zoom_registration("bob@example.org", status=None)).body)["added"] == 1


def test_a_registrant_who_is_not_a_contact_is_reported_and_logged_but_not_added(
    hook: Hook, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, "campaign.web.hooks"):
        reply = hook.send(zoom_registration("stranger@example.net"))
    assert reply.status == 200
    assert json.loads(reply.body) == {
        "result": "recorded",
        "events": ["talk"],
        "added": 0,
        "known": 0,
        "not_contacts": ["stranger@example.net"],
    }
    assert "1 registrant(s) not contacts, not recorded: s***r@example.net" in caplog.text
    assert "stranger@" not in caplog.text
    assert hook.recorded() == []
    with hook.db.read() as conn:
        assert "stranger@example.net" not in set(conn.scalars(select(contacts.c.email)))


# ---------------------------------------------------------------------------------------------------------
# The generic format
# ---------------------------------------------------------------------------------------------------------


def test_the_generic_format_records_one_registrant_or_a_list(hook: Hook) -> None:
    one = hook.send({"event": "talk", "email": "ann@example.org", "registered_at": "2030-05-02T10:15:30.125+02:00"})
    assert one.status == 200, one.body
    assert json.loads(one.body)["added"] == 1
    before = datetime.now(UTC)
    batch = {
        "event": "other",
        "registrants": [
            {"email": "bob@example.org", "registered_at": "2030-05-03T08:00:00Z"},
            {"email": "cy@example.org"},  # no time: now
            {"email": "dee@example.net"},
        ],
    }
    reply = hook.send(batch)
    assert json.loads(reply.body) == {
        "result": "recorded",
        "events": ["other"],
        "added": 2,
        "known": 0,
        "not_contacts": ["dee@example.net"],
    }
    recorded = hook.recorded()
    assert recorded[:2] == [
        ("other", "bob@example.org", "webhook", datetime(2030, 5, 3, 8, tzinfo=UTC)),
        ("other", "cy@example.org", "webhook", recorded[1][3]),
    ]
    assert before - timedelta(seconds=1) <= recorded[1][3] <= datetime.now(UTC)
    assert recorded[2] == ("talk", "ann@example.org", "webhook", REGISTERED_AT)
    assert hook.registered_audience() == 1  # campaign c is event talk's


@pytest.mark.parametrize(
    ("document", "line"),
    [
        ([], "the body must be a JSON object"),
        ({"email": "ann@example.org"}, "event: the event's slug is missing"),
        ({"event": "nope", "email": "ann@example.org"}, "event: no event 'nope'"),
        ({"event": "talk"}, "email: missing"),
        ({"event": "talk", "email": "not an address"}, "email: 'not an address' is not a valid address"),
        ({"event": "talk", "email": "ann@example.org", "registered_at": "2030-05-02 10:15"}, "needs its UTC offset"),
        ({"event": "talk", "email": "ann@example.org", "registered_at": "9999-12-31T23:30:00-05:00"}, "out of range"),
        ({"event": "talk", "email": "ann@example.org", "registered_at": "tomorrow"}, "must be an ISO 8601 time"),
        ({"event": "talk", "registrants": [{"email": "ann@example.org"}, {}]}, "registrants[1].email: missing"),
        ({"event": "talk", "registrants": "ann@example.org"}, "registrants: must be a list of objects"),
        ({"event": "talk", "email": "a@example.org", "registrants": []}, "give either email or registrants"),
        (zoom_registration("ann@example.org", webinar="WN_abc"), "payload.object.id: the webinar's number is missing"),
        # Signed, but a year no report can show (9999 made every report of the event fail, kept until deleted).
        (zoom_registration("ann@example.org", at=datetime(9999, 12, 31, tzinfo=UTC)), "event_ts: 253402214400000"),
        (zoom_registration("ann@example.org", at=datetime(9999, 12, 31, tzinfo=UTC)), "the year must be 1900 to"),
        (zoom_registration("ann@example.org", at=datetime(1, 1, 1, tzinfo=UTC)), "(0001-01-01) is out of range"),
        ({"event": "webinar.registration_created", "payload": {}}, "payload.object: must be an object"),
    ],
)
def test_a_body_that_does_not_fit_its_format_is_400_naming_the_field(hook: Hook, document: Any, line: str) -> None:
    reply = hook.send(document)
    assert reply.status == 400, reply.body
    assert line in one_line(reply)
    assert hook.recorded() == []


def test_a_body_that_is_not_json_is_400(hook: Hook) -> None:
    for body in (b"{not json", b"\xff\xfe\x00", b"[" * 60_000):
        reply = hook.post(body, signed(body))
        assert (reply.status, one_line(reply)) == (400, "the body is not JSON")


# ---------------------------------------------------------------------------------------------------------
# Limits and method
# ---------------------------------------------------------------------------------------------------------


def test_a_body_over_64_kb_is_413_unread_and_records_nothing(hook: Hook) -> None:
    document = {"event": "talk", "email": "ann@example.org", "pad": "x" * MAX_BODY_BYTES}
    body = json.dumps(document).encode()
    reply = hook.post(body, signed(body))
    assert reply.status == 413
    assert one_line(reply) == "413 Request Entity Too Large"
    # Chunked: no Content-Length to go by, found out while reading.
    with closing(http.client.HTTPConnection(hook.web.host, hook.web.port, timeout=10)) as conn:
        chunks = iter([body[:40_000], body[40_000:]])
        conn.request("POST", PATH, body=chunks, headers=signed(body), encode_chunked=True)
        assert conn.getresponse().status == 413
    assert hook.recorded() == []
    # Just under the limit is read, checked and recorded.
    document["pad"] = "x" * (MAX_BODY_BYTES - 100)
    assert hook.send(document).status == 200
    assert len(hook.recorded()) == 1


def test_only_post_is_answered(hook: Hook) -> None:
    for method in ("GET", "PUT"):
        reply = hook.web.get(PATH, method=method)
        assert reply.status == 405, method
        assert reply.headers["allow"] == "POST"


# ---------------------------------------------------------------------------------------------------------
# The secret
# ---------------------------------------------------------------------------------------------------------


def test_without_the_secret_the_endpoint_is_off_and_records_nothing(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    prepare(db, tmp_path)
    monkeypatch.delenv(REGISTRATION_HOOK_SECRET_ENV, raising=False)
    with caplog.at_level(logging.WARNING, "campaign.web.hooks"), running(config_of(tmp_path, db)) as web:
        hook = Hook(db, web)
        for secret in (SECRET, OTHER_SECRET):
            reply = hook.send(zoom_registration("ann@example.org"), secret)
            assert reply.status == 404
            assert reply.body.startswith("404 Not Found\n")
    assert hook.recorded() == []
    # Said once, whatever the number of deliveries.
    assert caplog.text.count(f"it is off: {REGISTRATION_HOOK_SECRET_ENV} is not set") == 1


def test_a_secret_shorter_than_16_characters_is_refused_in_one_line() -> None:
    assert registration_hook_secret({}) is None
    assert registration_hook_secret({REGISTRATION_HOOK_SECRET_ENV: "s" * 16}) == b"s" * 16
    for short in ("", "s" * 15):
        with pytest.raises(ConfigError, match=rf"^environment {REGISTRATION_HOOK_SECRET_ENV} must be at least 16"):
            registration_hook_secret({REGISTRATION_HOOK_SECRET_ENV: short})
