"""Signed tokens for the links in messages: the open pixel, click redirects, calendar files, unsubscribe.

A token carries a purpose (a :class:`~campaign.models.TrackingKind`), the outbox message id, a link index and,
when the signer knows it, the message's wave, authenticated with HMAC-SHA256 (truncated to 128 bits): 27 bytes,
36 URL-safe base64 characters. It reveals nothing a recipient could not see anyway and cannot be forged or
re-targeted: destinations are looked up server-side by wave (or message) and index, never taken from the URL, so
there is no open redirect. The purpose is part of the MAC, so an open token is no unsubscribe token.

Two payload versions, both 11 bytes (``>BQH``: version, a 64-bit field, the link index):

* version 1: the 64-bit field is the message id. Every token before waves were signed in;
* version 2: the message id in the high 40 bits and the wave id in the low 24. The click endpoint redirects
  from the wave's destinations (a handful, kept in memory) instead of a database read per message (the lookup
  was most of a click's cost in ``bench/tracking.py``). Signed when a wave is given and both ids fit
  (a trillion messages, 16 million waves); otherwise version 1. Verification takes both, forever: the links in
  mail already sent must keep working.

Keys rotate: a token is always signed with the current key of a :class:`SigningKeys` ring and verified
against the current key and then the previous ones, so the links in mail already sent keep working after a
new key is set. The keys themselves come from :mod:`campaign.secrets` (raw bytes: the import contract keeps
these two modules independent, so the ring type lives here).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from campaign.exceptions import ValidationError
from campaign.models import TrackingKind

_FORMAT = ">BQH"  # version, message id (with the wave id in version 2), link index
_VERSION = 1
_VERSION_WITH_WAVE = 2
_WAVE_BITS = 24
_MAX_WAVE_ID = 2**_WAVE_BITS - 1
_MAX_MESSAGE_ID_WITH_WAVE = 2 ** (64 - _WAVE_BITS) - 1
_PAYLOAD_BYTES = struct.calcsize(_FORMAT)
_MAC_BYTES = 16
# Unpadded base64 of payload and MAC: 27 bytes are exactly 36 characters, so every token has this length.
TOKEN_LENGTH = (_PAYLOAD_BYTES + _MAC_BYTES) * 4 // 3
# Every string of this length in the URL-safe alphabet is the one spelling of 27 bytes (no padding bits), so
# a match needs no re-encoding to prove it canonical. Explicit ranges: ASCII only, whatever the flags.
_TOKEN = re.compile(f"[A-Za-z0-9_-]{{{TOKEN_LENGTH}}}")
_MAX_MESSAGE_ID = 2**64 - 1
_MAX_LINK_INDEX = 2**16 - 1
# What the MAC covers before the payload: the purpose's value (the same bytes as when purposes were free
# strings, so tokens in mail already sent still verify) and a separator, so no purpose is a prefix of another.
_PURPOSE_PREFIXES = {kind: kind.value.encode() + b"\0" for kind in TrackingKind}
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")
_BLOCK = hashlib.sha256().block_size
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


# A named tuple, not a frozen dataclass: the web service makes one a request (0.5 µs against 1.2).
class TokenClaims(NamedTuple):
    """What a valid token says."""

    purpose: TrackingKind
    message_id: int
    link_index: int = 0
    wave_id: int | None = None
    """The message's wave, signed in since version 2 (None in older tokens)."""


@dataclass(frozen=True, slots=True)
class SigningKeys:
    """The key ring: ``current`` signs every new token; a token signed with any ``previous`` key still verifies.

    Keep a retired key in ``previous`` for as long as the links in mail signed with it must work.
    """

    current: bytes
    previous: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        # An empty key is a key anyone knows: every token would be forgeable.
        if not self.current or not all(self.previous):
            raise ValueError("a signing key must not be empty")

    @classmethod
    def from_keys(cls, keys: Sequence[bytes]) -> SigningKeys:
        """The ring of ``keys``, current first (as :func:`campaign.secrets.signing_keys` returns them)."""
        if not keys:
            raise ValueError("a key ring needs at least the current key")
        return cls(keys[0], tuple(keys[1:]))

    def __iter__(self) -> Iterator[bytes]:
        """Every key verification accepts, current first."""
        yield self.current
        yield from self.previous

    def __repr__(self) -> str:
        # Keys end up in logs and tracebacks through reprs: never show them.
        return f"SigningKeys(current=<hidden>, previous=<{len(self.previous)} hidden>)"


class InvalidTokenError(ValidationError):
    """The token is malformed, for another purpose, or its signature matches none of the keys."""


def sign(
    key: bytes | SigningKeys, purpose: TrackingKind, message_id: int, link_index: int = 0, wave_id: int | None = None
) -> str:
    """A URL-safe token of :data:`TOKEN_LENGTH` characters for ``purpose`` and this message and link (and the
    message's ``wave_id``, when given and both fit version 2: see the module doc).

    ``key`` is a raw key or a ring, whose current key signs. A message id outside 0..2**64-1 or a link index
    outside 0..65535 is a :class:`ValueError` (a programming error, never user input).
    """
    prefix = _purpose_prefix(purpose)
    if not 0 <= message_id <= _MAX_MESSAGE_ID:
        raise ValueError(f"message id {message_id} is outside 0..{_MAX_MESSAGE_ID}")
    if not 0 <= link_index <= _MAX_LINK_INDEX:
        raise ValueError(f"link index {link_index} is outside 0..{_MAX_LINK_INDEX}")
    secret = key.current if isinstance(key, SigningKeys) else key
    if not secret:
        raise ValueError("a signing key must not be empty")
    payload = _payload(message_id, link_index, wave_id)
    return _b64(payload + _mac(secret, prefix + payload))


class TokenSigner:
    """Signs many tokens with one key, as :func:`sign` does (the same tokens), at a third of its cost.

    The HMAC state after the key and each purpose is computed once, here, and copied per token: rendering signs
    several tokens per message (each link, the pixel, unsubscribe, the calendar), and hashing the key anew for
    each was most of a message's link work (measured in ``bench/render.py``).
    """

    def __init__(self, key: bytes | SigningKeys) -> None:
        secret = key.current if isinstance(key, SigningKeys) else key
        if not secret:
            raise ValueError("a signing key must not be empty")
        self._states = {kind: hmac.new(secret, prefix, hashlib.sha256) for kind, prefix in _PURPOSE_PREFIXES.items()}

    def __repr__(self) -> str:
        return "TokenSigner(<key hidden>)"

    def sign(self, purpose: TrackingKind, message_id: int, link_index: int = 0, wave_id: int | None = None) -> str:
        """The token :func:`sign` makes for ``purpose``, ``message_id``, ``link_index`` and ``wave_id`` with this
        key."""
        state = self._states[purpose].copy()
        # struct.pack refuses an id or index out of range (struct.error, a ValueError) as sign does.
        payload = _payload(message_id, link_index, wave_id)
        state.update(payload)
        return _b64(payload + state.digest()[:_MAC_BYTES])


def verify(keys: SigningKeys, purpose: TrackingKind, token: str) -> TokenClaims:
    """The claims of a token signed for ``purpose`` with any key of ``keys``.

    Anything else raises :class:`InvalidTokenError`, whatever the input (any length, any characters): the
    token comes straight from a URL.
    """
    prefix = _purpose_prefix(purpose)
    payload, mac = _split(token)
    message = prefix + payload
    # compare_digest for every key tried: the time taken says nothing about how much of a MAC matched. It may
    # say which key matched, which is no secret.
    for key in (keys.current, *keys.previous):
        if hmac.compare_digest(mac, _mac(key, message)):
            return _claims(purpose, payload)
    raise InvalidTokenError("invalid token")


class TokenVerifier:
    """Verifies many tokens against one key ring, as :func:`verify` does (the same answers), in 2.6 µs a token
    against 3.7. The web service verifies a token per request.

    HMAC (RFC 2104) is ``H(K ^ opad || H(K ^ ipad || message))``: the two hash states after the padded key, and
    the inner one after each purpose too, are computed once, here, and copied per token. That is four calls into
    hashlib a token (0.6 µs), where :mod:`hmac`'s objects or its one-shot :func:`hmac.digest` cost 1.5 to 2 µs
    (timed on this machine class; the construction is checked against :mod:`hmac` in the tests).
    """

    def __init__(self, keys: SigningKeys) -> None:
        # By the purpose's value: an enum member's hash is a call into Python (Enum.__hash__), its value's is not.
        self._states: dict[str, tuple[tuple[Any, Any], ...]] = {}
        for kind, prefix in _PURPOSE_PREFIXES.items():
            pairs = []
            for key in keys:
                block = _padded(key)
                inner = hashlib.sha256(block.translate(_IPAD) + prefix)
                pairs.append((inner, hashlib.sha256(block.translate(_OPAD))))
            self._states[kind.value] = tuple(pairs)

    def __repr__(self) -> str:
        return "TokenVerifier(<keys hidden>)"

    def verify(self, purpose: TrackingKind, token: str) -> TokenClaims:
        """The claims of ``token`` signed for ``purpose``; :class:`InvalidTokenError` otherwise (see :func:`verify`)."""
        if not isinstance(purpose, TrackingKind):
            _purpose_prefix(purpose)  # refuses a purpose that is no TrackingKind, as verify does
        payload, mac = _split(token)
        for inner_state, outer_state in self._states[purpose._value_]:
            inner = inner_state.copy()
            inner.update(payload)
            outer = outer_state.copy()
            outer.update(inner.digest())
            if hmac.compare_digest(mac, outer.digest()[:_MAC_BYTES]):
                return _claims(purpose, payload)
        raise InvalidTokenError("invalid token")


def _padded(key: bytes) -> bytes:
    """The HMAC key block: a key longer than SHA-256's block is hashed first; then zeros to the block size."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    return key.ljust(_BLOCK, b"\0")


def _split(token: str) -> tuple[bytes, bytes]:
    """A token's payload and MAC, or :class:`InvalidTokenError` for anything that is not a token's spelling."""
    # Cheap checks before any decoding: a URL path can be megabytes long, and only one length is a token. The
    # pattern also refuses what a lenient decoder would take for the same bytes ('+', '/', '=', whitespace).
    if not isinstance(token, str) or len(token) != TOKEN_LENGTH or _TOKEN.fullmatch(token) is None:
        raise InvalidTokenError("malformed token")
    # What base64.urlsafe_b64decode does, without its checks and conversions of arbitrary input: the pattern
    # has made sure this is ASCII of the URL-safe alphabet.
    raw = binascii.a2b_base64(token.encode("ascii").translate(_FROM_URLSAFE))
    return raw[:_PAYLOAD_BYTES], raw[_PAYLOAD_BYTES:]


def _payload(message_id: int, link_index: int, wave_id: int | None) -> bytes:
    """The signed payload: version 2 when a wave is given and both ids fit it, else version 1."""
    if wave_id is not None and 0 <= wave_id <= _MAX_WAVE_ID and 0 <= message_id <= _MAX_MESSAGE_ID_WITH_WAVE:
        return struct.pack(_FORMAT, _VERSION_WITH_WAVE, message_id << _WAVE_BITS | wave_id, link_index)
    return struct.pack(_FORMAT, _VERSION, message_id, link_index)


def _claims(purpose: TrackingKind, payload: bytes) -> TokenClaims:
    version, field, link_index = struct.unpack(_FORMAT, payload)
    if version == _VERSION_WITH_WAVE:
        return TokenClaims(purpose, field >> _WAVE_BITS, link_index, field & _MAX_WAVE_ID)
    if version != _VERSION:
        raise InvalidTokenError("unsupported token version")
    return TokenClaims(purpose, field, link_index)


def _purpose_prefix(purpose: TrackingKind) -> bytes:
    # TrackingKind is a StrEnum, so a free string would sign the same bytes (and find the same dict entry):
    # refuse it, so every purpose in use is a member someone can find.
    if not isinstance(purpose, TrackingKind):
        raise TypeError(f"a token's purpose is a TrackingKind, not {purpose!r}")
    return _PURPOSE_PREFIXES[purpose]


def _mac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()[:_MAC_BYTES]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
