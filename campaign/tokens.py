"""Signed tokens for links in messages (unsubscribe, and later open, click and calendar tracking).

A token carries a purpose, the outbox message id and an optional link index, authenticated with HMAC-SHA256
(truncated to 128 bits) under the signing key from :mod:`campaign.secrets`. It reveals nothing a recipient
could not see anyway and cannot be forged or re-targeted: destinations are looked up server-side by message
and index, never taken from the URL, so there is no open redirect.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
from dataclasses import dataclass

from campaign.exceptions import ValidationError

_FORMAT = ">BQH"  # version, message id, link index
_VERSION = 1
_MAC_BYTES = 16


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a valid token says."""

    purpose: str
    message_id: int
    link_index: int = 0


class InvalidTokenError(ValidationError):
    """The token is malformed, for another purpose, or its signature does not match."""


def sign(key: bytes, purpose: str, message_id: int, link_index: int = 0) -> str:
    """A URL-safe token for ``purpose`` (e.g. ``unsubscribe``) and this message and link."""
    payload = struct.pack(_FORMAT, _VERSION, message_id, link_index)
    return _b64(payload + _mac(key, purpose, payload))


def verify(key: bytes, purpose: str, token: str) -> TokenClaims:
    """The claims of a token signed for ``purpose``; raises :class:`InvalidTokenError` otherwise."""
    try:
        raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True)
    except (ValueError, TypeError):
        raise InvalidTokenError("malformed token") from None
    if _b64(raw) != token:
        # One token, one spelling: no padding or stray characters accepted.
        raise InvalidTokenError("malformed token")
    size = struct.calcsize(_FORMAT)
    payload, mac = raw[:size], raw[size:]
    if len(raw) != size + _MAC_BYTES or not hmac.compare_digest(mac, _mac(key, purpose, payload)):
        raise InvalidTokenError("invalid token")
    version, message_id, link_index = struct.unpack(_FORMAT, payload)
    if version != _VERSION:
        raise InvalidTokenError("unsupported token version")
    return TokenClaims(purpose, message_id, link_index)


def _mac(key: bytes, purpose: str, payload: bytes) -> bytes:
    return hmac.new(key, purpose.encode() + b"\0" + payload, hashlib.sha256).digest()[:_MAC_BYTES]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
