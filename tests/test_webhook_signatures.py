"""Zoom's v0 webhook signature (rules.webhook_signatures): the signature, the five-minute window both ways, the
timestamp's units, and the URL-validation answer; each expected value computed here with hmac, independently."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from campaign.rules.webhook_signatures import refusal, request_time, signature, url_validation_answer

SECRET = b"zoom-secret-token-0123"
NOW = datetime(2030, 6, 1, 9, 30, tzinfo=UTC)
BODY = b'{"event":"webinar.registration_created","payload":{}}'
SIGNED = "(the timestamp's own valid signature)"


def zoom_signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """As Zoom documents it: v0= and the hex HMAC-SHA256 of v0:{timestamp}:{body}."""
    return "v0=" + hmac.new(secret, b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()


def stamp(at: datetime) -> str:
    return str(int(at.timestamp()))


def test_the_signature_is_zooms_v0_hmac_of_timestamp_and_body() -> None:
    timestamp = stamp(NOW)
    assert signature(SECRET, timestamp, BODY) == zoom_signature(SECRET, timestamp, BODY)
    assert refusal(SECRET, timestamp, zoom_signature(SECRET, timestamp, BODY), BODY, NOW) is None


@pytest.mark.parametrize(
    ("timestamp", "given", "body", "secret", "words"),
    [
        # Another secret, another body, another timestamp than the one signed: each a mismatch.
        (stamp(NOW), zoom_signature(b"another-secret-token-99", stamp(NOW), BODY), BODY, SECRET, "does not match"),
        (stamp(NOW), zoom_signature(SECRET, stamp(NOW), BODY), BODY + b" ", SECRET, "does not match"),
        (stamp(NOW), zoom_signature(SECRET, stamp(NOW - timedelta(seconds=1)), BODY), BODY, SECRET, "does not match"),
        (stamp(NOW), "v0=" + "0" * 64, BODY, SECRET, "does not match"),
        (stamp(NOW), "v0=ünïcode", BODY, SECRET, "does not match"),
        # A replay, and a request dated ahead to be replayed later.
        (stamp(NOW - timedelta(minutes=6)), SIGNED, BODY, SECRET, "more than 5 minutes from now"),
        (stamp(NOW + timedelta(minutes=6)), SIGNED, BODY, SECRET, "more than 5 minutes from now"),
        # Missing or malformed headers.
        (None, "v0=00", BODY, SECRET, "headers are required"),
        (stamp(NOW), None, BODY, SECRET, "headers are required"),
        ("", "", BODY, SECRET, "headers are required"),
        ("-1", "v0=00", BODY, SECRET, "must be a Unix time"),
        (" 1906450200", "v0=00", BODY, SECRET, "must be a Unix time"),
        ("1906450200.5", "v0=00", BODY, SECRET, "must be a Unix time"),
        ("1" * 17, "v0=00", BODY, SECRET, "must be a Unix time"),
    ],
)
def test_what_is_refused_and_why(
    timestamp: str | None, given: str | None, body: bytes, secret: bytes, words: str
) -> None:
    # A stale timestamp is refused even with its own valid signature.
    if given == SIGNED and timestamp:
        given = zoom_signature(secret, timestamp, body)
    reason = refusal(secret, timestamp, given, body, NOW)
    assert reason is not None
    assert words in reason
    assert "\n" not in reason
    assert SECRET.decode() not in reason


def test_the_window_is_five_minutes_either_way_inclusive() -> None:
    for offset in (-300, -1, 0, 1, 300):
        timestamp = stamp(NOW + timedelta(seconds=offset))
        assert refusal(SECRET, timestamp, zoom_signature(SECRET, timestamp, BODY), BODY, NOW) is None, offset
    for offset in (-301, 301):
        timestamp = stamp(NOW + timedelta(seconds=offset))
        assert refusal(SECRET, timestamp, zoom_signature(SECRET, timestamp, BODY), BODY, NOW) is not None, offset


def test_timestamps_in_seconds_or_milliseconds_are_told_apart_by_magnitude() -> None:
    assert request_time(stamp(NOW)) == NOW
    assert request_time(str(int(NOW.timestamp() * 1000) + 250)) == NOW + timedelta(milliseconds=250)
    # The smallest value read as milliseconds (1973) and the largest read as seconds (5138).
    assert request_time(str(10**11)) == datetime(1973, 3, 3, 9, 46, 40, tzinfo=UTC)
    assert request_time(str(10**11 - 1)) == datetime(5138, 11, 16, 9, 46, 39, tzinfo=UTC)
    # A signed millisecond timestamp is as good as one in seconds.
    millis = str(int(NOW.timestamp() * 1000))
    assert refusal(SECRET, millis, zoom_signature(SECRET, millis, BODY), BODY, NOW) is None
    for bad in ("", "abc", "+1", "١٢٣", "9" * 16):
        assert request_time(bad) is None, bad


def test_the_url_validation_answer_is_the_plain_token_and_its_hmac() -> None:
    token = "qgg8vlvZRS6UYooatFL8Aw"
    expected = hmac.new(SECRET, token.encode(), hashlib.sha256).hexdigest()
    assert url_validation_answer(SECRET, token) == {"plainToken": token, "encryptedToken": expected}
