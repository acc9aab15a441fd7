"""Zoom's webhook signature scheme (v0), which ``POST /hooks/registration`` checks on every request.

The contract, as Zoom documents it (Webhooks: "Verify webhook events", "Validate your webhook endpoint"):

* A request carries ``x-zm-request-timestamp`` (Unix time) and ``x-zm-signature: v0=<hex>``, the hex HMAC-SHA256,
  keyed with the shared secret (Zoom's "secret token"), of ``v0:{timestamp}:{body}``: the body's exact bytes, as
  received, and the timestamp exactly as the header gave it. :func:`signature` computes it; :func:`refusal` checks
  a request (constant-time comparison, :func:`hmac.compare_digest`).
* The timestamp is seconds since the epoch in Zoom's examples and libraries; milliseconds are accepted too, told
  apart by magnitude (:func:`request_time`: no time in seconds reaches 10**11 before the year 5138). A request
  more than :data:`MAX_SKEW` before or after ``now`` is refused: a captured request cannot be replayed later, and
  one dated ahead cannot be stored to replay then.
* ``endpoint.url_validation`` (Zoom's challenge when the endpoint is saved, and every few days after) is answered
  with :func:`url_validation_answer`: the plain token and its hex HMAC-SHA256 under the same secret.

Pure: the secret and ``now`` are passed in; nothing here reads the environment or a clock.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

SIGNATURE_HEADER = "x-zm-signature"
"""The header carrying ``v0=<hex HMAC-SHA256>``."""
TIMESTAMP_HEADER = "x-zm-request-timestamp"
"""The header carrying the time the request was signed, in Unix seconds (or milliseconds)."""
VERSION = "v0"
"""The scheme's version: the prefix of the signed message and of the signature."""
MAX_SKEW = timedelta(minutes=5)
"""How far a request's timestamp may be from now, either way."""

_MILLISECONDS_FROM = 10**11  # 1973 in milliseconds, the year 5138 in seconds
_MAX_DIGITS = 16  # more digits is no timestamp (past the year 9999 either way), only work for int()


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """``v0=`` and the hex HMAC-SHA256 under ``secret`` of ``v0:{timestamp}:{body}``: what Zoom sends."""
    message = f"{VERSION}:{timestamp}:".encode() + body
    return f"{VERSION}=" + hmac.new(secret, message, hashlib.sha256).hexdigest()


def request_time(timestamp: str) -> datetime | None:
    """The instant of a timestamp header (ASCII digits: Unix seconds, or milliseconds from 10**11 on), or None
    when it is not one (a sign, a space, a fraction, too many digits)."""
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > _MAX_DIGITS:
        return None
    value = int(timestamp)
    seconds = value / 1000 if value >= _MILLISECONDS_FROM else value
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, ValueError, OSError):  # past the year 9999
        return None


def refusal(secret: bytes, timestamp: str | None, given: str | None, body: bytes, now: datetime) -> str | None:
    """Why a request signed ``given`` at ``timestamp`` with ``body`` is not to be trusted at ``now``, in one line
    naming the header to look at; None when it is authentic and fresh."""
    if not timestamp or not given:
        return f"the {SIGNATURE_HEADER} and {TIMESTAMP_HEADER} headers are required"
    sent = request_time(timestamp)
    if sent is None:
        return f"{TIMESTAMP_HEADER} must be a Unix time in seconds or milliseconds"
    if abs(now - sent) > MAX_SKEW:
        minutes = MAX_SKEW.total_seconds() / 60
        return f"{TIMESTAMP_HEADER} is more than {minutes:g} minutes from now (a replay, or a clock that is off)"
    # Bytes on both sides: compare_digest refuses a str with non-ASCII characters, which a forged header may have.
    if not hmac.compare_digest(signature(secret, timestamp, body).encode(), given.encode()):
        return f"{SIGNATURE_HEADER} does not match the body (another secret, or a body changed on the way)"
    return None


def url_validation_answer(secret: bytes, plain_token: str) -> dict[str, str]:
    """The reply to Zoom's ``endpoint.url_validation``: the plain token and its hex HMAC-SHA256 under ``secret``."""
    encrypted = hmac.new(secret, plain_token.encode(), hashlib.sha256).hexdigest()
    return {"plainToken": plain_token, "encryptedToken": encrypted}
