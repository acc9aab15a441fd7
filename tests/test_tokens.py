"""Signed link tokens: round trip, and every way a token can be wrong is rejected."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct

import pytest

from campaign.exceptions import ValidationError
from campaign.tokens import InvalidTokenError, TokenClaims, sign, verify

KEY = b"k" * 32
OTHER_KEY = b"K" * 32


@pytest.mark.parametrize(("message_id", "link_index"), [(0, 0), (1, 0), (42, 3), (2**63, 65535), (2**64 - 1, 7)])
def test_sign_verify_roundtrip(message_id: int, link_index: int) -> None:
    token = sign(KEY, "unsubscribe", message_id, link_index)
    assert verify(KEY, "unsubscribe", token) == TokenClaims("unsubscribe", message_id, link_index)


def test_token_is_url_safe_and_unpadded() -> None:
    token = sign(KEY, "click", 123456789, 12)
    assert token.isascii()
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert "=" not in token


def test_signing_is_deterministic_and_distinguishes_messages_and_links() -> None:
    assert sign(KEY, "unsubscribe", 5) == sign(KEY, "unsubscribe", 5)
    tokens = {sign(KEY, "unsubscribe", 5), sign(KEY, "unsubscribe", 6), sign(KEY, "unsubscribe", 5, 1)}
    assert len(tokens) == 3


def test_invalid_token_error_is_a_validation_error() -> None:
    assert issubclass(InvalidTokenError, ValidationError)
    assert issubclass(InvalidTokenError, ValueError)


def test_wrong_purpose_is_rejected() -> None:
    token = sign(KEY, "unsubscribe", 42)
    with pytest.raises(InvalidTokenError):
        verify(KEY, "click", token)
    # A purpose that is a prefix of the real one must not match either.
    with pytest.raises(InvalidTokenError):
        verify(KEY, "unsub", token)


def test_wrong_key_is_rejected() -> None:
    token = sign(KEY, "unsubscribe", 42)
    with pytest.raises(InvalidTokenError):
        verify(OTHER_KEY, "unsubscribe", token)


def _raw(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def _token(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize("position", range(27))
def test_any_flipped_byte_is_rejected(position: int) -> None:
    token = sign(KEY, "unsubscribe", 42, 3)
    raw = bytearray(_raw(token))
    assert len(raw) == 27
    raw[position] ^= 0x01
    with pytest.raises(InvalidTokenError):
        verify(KEY, "unsubscribe", _token(bytes(raw)))


def test_retargeted_message_id_is_rejected() -> None:
    """Changing the message id in the payload while keeping the MAC is a forgery attempt."""
    token = sign(KEY, "unsubscribe", 42)
    other = sign(KEY, "unsubscribe", 43)
    forged = _token(_raw(other)[:11] + _raw(token)[11:])
    with pytest.raises(InvalidTokenError):
        verify(KEY, "unsubscribe", forged)


def test_truncated_and_extended_tokens_are_rejected() -> None:
    token = sign(KEY, "unsubscribe", 42)
    raw = _raw(token)
    for bad in (_token(raw[:-1]), _token(raw + b"\0"), _token(raw[:11]), token[:-4]):
        with pytest.raises(InvalidTokenError):
            verify(KEY, "unsubscribe", bad)


def test_unsupported_version_is_rejected_even_with_a_valid_mac() -> None:
    """A correctly MACed payload with another version byte (a future format) is not accepted as v1."""
    payload = struct.pack(">BQH", 2, 42, 0)
    mac = hmac.new(KEY, b"unsubscribe\0" + payload, hashlib.sha256).digest()[:16]
    with pytest.raises(InvalidTokenError, match="version"):
        verify(KEY, "unsubscribe", _token(payload + mac))


@pytest.mark.parametrize("bad", ["", "A", "AB=", "!!!!", "é", "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@", " " * 36, "\x00"])
def test_garbage_is_rejected(bad: str) -> None:
    with pytest.raises(InvalidTokenError):
        verify(KEY, "unsubscribe", bad)


@pytest.mark.parametrize("junk", [".", "\n", "="])
def test_malformed_base64_with_junk_characters_is_rejected(junk: str) -> None:
    """A token is exactly the unpadded URL-safe base64 of its bytes: characters outside that alphabet make
    it malformed, even where a lenient decoder would skip them and find the original bytes."""
    token = sign(KEY, "unsubscribe", 42)
    with pytest.raises(InvalidTokenError):
        verify(KEY, "unsubscribe", token[:5] + junk + token[5:])
