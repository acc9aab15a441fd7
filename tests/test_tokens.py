"""Signed link tokens: round trip for every purpose, key rotation, and every way a token can be wrong is rejected."""

from __future__ import annotations

import base64
import hashlib
import hmac
import string
import struct
import time

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from campaign.exceptions import ValidationError
from campaign.models import TrackingKind
from campaign.tokens import (
    TOKEN_LENGTH,
    InvalidTokenError,
    SigningKeys,
    TokenClaims,
    TokenSigner,
    TokenVerifier,
    sign,
    verify,
)

KEY = b"k" * 32
OTHER_KEY = b"K" * 32
RING = SigningKeys(KEY)
ALPHABET = string.ascii_letters + string.digits + "-_"

purposes = st.sampled_from(TrackingKind)
message_ids = st.integers(0, 2**64 - 1)
link_indexes = st.integers(0, 2**16 - 1)
keys = st.binary(min_size=1, max_size=64)


def _raw(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def _token(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@given(purposes, message_ids, link_indexes)
@example(TrackingKind.UNSUBSCRIBE, 0, 0)
@example(TrackingKind.CLICK, 2**64 - 1, 2**16 - 1)
def test_sign_verify_roundtrip_for_every_purpose(purpose: TrackingKind, message_id: int, link_index: int) -> None:
    token = sign(KEY, purpose, message_id, link_index)
    assert len(token) == TOKEN_LENGTH == 36
    assert set(token) <= set(ALPHABET)
    assert verify(RING, purpose, token) == TokenClaims(purpose, message_id, link_index)


def test_tokens_in_mail_already_sent_still_verify() -> None:
    """Tokens made before purposes were an enum (purpose strings): the MAC input is unchanged."""
    assert verify(RING, TrackingKind.UNSUBSCRIBE, "AQAAAAAAAAAqAACCRx35KzxkZmyApa4yi4xV") == TokenClaims(
        TrackingKind.UNSUBSCRIBE, 42, 0
    )
    assert verify(RING, TrackingKind.CLICK, "AQAAAAAAAAAHAAN8swlAW36gqPuM9YB6b6iO") == TokenClaims(
        TrackingKind.CLICK, 7, 3
    )


def test_signing_is_deterministic_and_distinguishes_messages_and_links() -> None:
    unsubscribe = TrackingKind.UNSUBSCRIBE
    assert sign(KEY, unsubscribe, 5) == sign(KEY, unsubscribe, 5)
    tokens = {sign(KEY, unsubscribe, 5), sign(KEY, unsubscribe, 6), sign(KEY, unsubscribe, 5, 1)}
    assert len(tokens) == 3


def test_invalid_token_error_is_a_validation_error() -> None:
    assert issubclass(InvalidTokenError, ValidationError)
    assert issubclass(InvalidTokenError, ValueError)


@given(st.data(), message_ids, link_indexes)
def test_a_token_for_one_purpose_is_no_token_for_another(data: st.DataObject, message_id: int, index: int) -> None:
    signed_for, checked_for = data.draw(st.lists(purposes, min_size=2, max_size=2, unique=True))
    token = sign(KEY, signed_for, message_id, index)
    with pytest.raises(InvalidTokenError, match="invalid token"):
        verify(RING, checked_for, token)


def test_purposes_are_tracking_kinds_never_free_strings() -> None:
    """A StrEnum is a str, so "unsubscribe" would sign the same bytes: it is refused at run time too."""
    with pytest.raises(TypeError, match="TrackingKind"):
        sign(KEY, "unsubscribe", 42)  # type: ignore[arg-type]
    token = sign(KEY, TrackingKind.UNSUBSCRIBE, 42)
    with pytest.raises(TypeError, match="TrackingKind"):
        verify(RING, "unsubscribe", token)  # type: ignore[arg-type]


@given(purposes, message_ids, link_indexes, st.integers(0, TOKEN_LENGTH - 1), st.characters())
def test_any_single_character_change_is_rejected(
    purpose: TrackingKind, message_id: int, link_index: int, position: int, char: str
) -> None:
    token = sign(KEY, purpose, message_id, link_index)
    if token[position] == char:
        char = "A" if char != "A" else "B"
    changed = token[:position] + char + token[position + 1 :]
    with pytest.raises(InvalidTokenError):
        verify(RING, purpose, changed)


@given(purposes, message_ids, st.integers(0, TOKEN_LENGTH - 1), st.sampled_from(ALPHABET))
def test_any_change_within_the_alphabet_fails_the_signature(
    purpose: TrackingKind, message_id: int, position: int, char: str
) -> None:
    """27 bytes are exactly 36 characters: no padding bits, so every character counts."""
    token = sign(KEY, purpose, message_id)
    if token[position] == char:
        char = ALPHABET[(ALPHABET.index(char) + 1) % len(ALPHABET)]
    with pytest.raises(InvalidTokenError, match="invalid token"):
        verify(RING, purpose, token[:position] + char + token[position + 1 :])


@given(purposes, message_ids, st.integers(0, TOKEN_LENGTH - 1), st.text(min_size=1))
def test_truncated_and_extended_tokens_are_rejected(
    purpose: TrackingKind, message_id: int, length: int, extra: str
) -> None:
    token = sign(KEY, purpose, message_id)
    with pytest.raises(InvalidTokenError):
        verify(RING, purpose, token[:length])
    with pytest.raises(InvalidTokenError):
        verify(RING, purpose, token + extra)
    with pytest.raises(InvalidTokenError):
        verify(RING, purpose, extra + token)


@pytest.mark.parametrize("position", range(27))
def test_any_flipped_byte_is_rejected(position: int) -> None:
    token = sign(KEY, TrackingKind.UNSUBSCRIBE, 42, 3)
    raw = bytearray(_raw(token))
    assert len(raw) == 27
    raw[position] ^= 0x01
    with pytest.raises(InvalidTokenError):
        verify(RING, TrackingKind.UNSUBSCRIBE, _token(bytes(raw)))


def test_retargeted_message_id_is_rejected() -> None:
    """Changing the message id in the payload while keeping the MAC is a forgery attempt."""
    token = sign(KEY, TrackingKind.UNSUBSCRIBE, 42)
    other = sign(KEY, TrackingKind.UNSUBSCRIBE, 43)
    forged = _token(_raw(other)[:11] + _raw(token)[11:])
    with pytest.raises(InvalidTokenError):
        verify(RING, TrackingKind.UNSUBSCRIBE, forged)


@pytest.mark.parametrize("version", [0, 3, 255])
def test_unsupported_version_is_rejected_even_with_a_valid_mac(version: int) -> None:
    """A correctly MACed payload with a version byte that is neither 1 nor 2 (a future format) is refused."""
    payload = struct.pack(">BQH", version, 42, 0)
    mac = hmac.new(KEY, b"unsubscribe\0" + payload, hashlib.sha256).digest()[:16]
    with pytest.raises(InvalidTokenError, match="version"):
        verify(RING, TrackingKind.UNSUBSCRIBE, _token(payload + mac))


@pytest.mark.parametrize(
    ("message_id", "wave_id", "link_index"),
    [(1, 1, 0), (42, 7, 3), (2**40 - 1, 2**24 - 1, 65535), (0, 0, 1)],
)
def test_a_token_naming_its_wave_carries_message_wave_and_link(message_id: int, wave_id: int, link_index: int) -> None:
    """Version 2: the wave travels signed beside the message, same length; the signer and :func:`sign` agree."""
    token = sign(KEY, TrackingKind.CLICK, message_id, link_index, wave_id)
    assert len(token) == TOKEN_LENGTH
    assert _raw(token)[0] == 2
    assert TokenSigner(KEY).sign(TrackingKind.CLICK, message_id, link_index, wave_id) == token
    claims = verify(RING, TrackingKind.CLICK, token)
    assert claims == TokenClaims(TrackingKind.CLICK, message_id, link_index, wave_id)
    assert TokenVerifier(RING).verify(TrackingKind.CLICK, token) == claims


@pytest.mark.parametrize(("message_id", "wave_id"), [(2**40, 1), (1, 2**24), (1, -1)])
def test_ids_too_large_for_version_2_are_signed_as_version_1(message_id: int, wave_id: int) -> None:
    """A message or wave id the version-2 layout cannot hold gives a version-1 token: no wave, still valid."""
    token = sign(KEY, TrackingKind.CLICK, message_id, 2, wave_id)
    assert _raw(token)[0] == 1
    assert verify(RING, TrackingKind.CLICK, token) == TokenClaims(TrackingKind.CLICK, message_id, 2, None)


def test_a_retargeted_wave_is_rejected() -> None:
    """The wave is under the MAC: moving a click to another wave's destinations is a forgery."""
    token = sign(KEY, TrackingKind.CLICK, 42, 1, 7)
    other = sign(KEY, TrackingKind.CLICK, 42, 1, 8)
    forged = _token(_raw(other)[:11] + _raw(token)[11:])
    with pytest.raises(InvalidTokenError):
        verify(RING, TrackingKind.CLICK, forged)


# Key rotation.


@given(purposes, message_ids, link_indexes)
def test_a_token_signed_with_the_previous_key_verifies_while_the_ring_keeps_it(
    purpose: TrackingKind, message_id: int, link_index: int
) -> None:
    old_token = sign(OTHER_KEY, purpose, message_id, link_index)
    rotated = SigningKeys(KEY, (OTHER_KEY,))
    assert verify(rotated, purpose, old_token) == TokenClaims(purpose, message_id, link_index)
    # Once the old key leaves the ring, its links stop working.
    with pytest.raises(InvalidTokenError, match="invalid token"):
        verify(SigningKeys(KEY), purpose, old_token)
    # The previous key verifies only: new tokens are signed with the current key.
    assert sign(rotated, purpose, message_id, link_index) == sign(KEY, purpose, message_id, link_index)
    assert verify(rotated, purpose, sign(rotated, purpose, message_id, link_index)).message_id == message_id


@given(keys, purposes, message_ids)
def test_a_token_signed_with_a_foreign_key_fails(other: bytes, purpose: TrackingKind, message_id: int) -> None:
    if other in (KEY, OTHER_KEY):
        other += b"!"
    token = sign(other, purpose, message_id)
    for ring in (SigningKeys(KEY), SigningKeys(KEY, (OTHER_KEY,)), SigningKeys(OTHER_KEY, (KEY,))):
        with pytest.raises(InvalidTokenError, match="invalid token"):
            verify(ring, purpose, token)


def test_a_token_still_carries_the_purpose_under_the_previous_key() -> None:
    rotated = SigningKeys(KEY, (OTHER_KEY,))
    token = sign(OTHER_KEY, TrackingKind.OPEN, 9)
    with pytest.raises(InvalidTokenError):
        verify(rotated, TrackingKind.UNSUBSCRIBE, token)


def test_the_key_ring() -> None:
    ring = SigningKeys.from_keys([KEY, OTHER_KEY])
    assert ring == SigningKeys(KEY, (OTHER_KEY,))
    assert list(ring) == [KEY, OTHER_KEY]
    assert SigningKeys.from_keys((KEY,)) == SigningKeys(KEY)
    with pytest.raises(ValueError, match="at least the current key"):
        SigningKeys.from_keys([])
    for empty in (SigningKeys, lambda key: SigningKeys(KEY, (key,))):
        with pytest.raises(ValueError, match="must not be empty"):
            empty(b"")
    with pytest.raises(ValueError, match="must not be empty"):
        sign(b"", TrackingKind.OPEN, 1)


def test_the_key_ring_never_shows_its_keys() -> None:
    """Reprs reach logs and tracebacks."""
    ring = SigningKeys(KEY, (OTHER_KEY,))
    for shown in (repr(ring), str(ring), f"{ring!r}"):
        assert "kkkk" not in shown
        assert "KKKK" not in shown
    assert repr(ring) == "SigningKeys(current=<hidden>, previous=<1 hidden>)"


@pytest.mark.parametrize(("message_id", "link_index"), [(-1, 0), (2**64, 0), (0, -1), (0, 2**16)])
def test_out_of_range_ids_are_a_programming_error(message_id: int, link_index: int) -> None:
    with pytest.raises(ValueError, match="outside"):
        sign(KEY, TrackingKind.CLICK, message_id, link_index)


# Malformed input, as it arrives in a URL.


@given(st.text())
@example("")
@example("%41" * 12)
@example("A" * 35 + "%")
@example("A" * 35 + "=")
@example("A" * 34 + "==")
@example("é" * 36)
@example("\udc80" * 36)
@example("\x00" * 36)
@example(" " * 36)
@example("A" * 35 + "\n")
def test_any_text_is_rejected_with_invalid_token_error(text: str) -> None:
    """Any string at all raises InvalidTokenError, never another exception (forging one by chance: 2**-128)."""
    with pytest.raises(InvalidTokenError):
        verify(RING, TrackingKind.CLICK, text)


@given(st.binary(min_size=27, max_size=27))
def test_random_token_shaped_bytes_are_rejected(raw: bytes) -> None:
    with pytest.raises(InvalidTokenError, match="invalid token"):
        verify(RING, TrackingKind.OPEN, _token(raw))


@pytest.mark.parametrize("bad", [None, b"A" * 36, 36, ["A" * 36]])
def test_a_token_that_is_not_text_is_rejected(bad: object) -> None:
    with pytest.raises(InvalidTokenError):
        verify(RING, TrackingKind.OPEN, bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("junk", [".", "\n", "=", "+", "/"])
def test_other_spellings_of_the_same_bytes_are_rejected(junk: str) -> None:
    """A token is exactly the unpadded URL-safe base64 of its bytes: characters outside that alphabet make
    it malformed, even where a lenient decoder would skip them or map them to the same bytes."""
    token = sign(KEY, TrackingKind.UNSUBSCRIBE, 42)
    with pytest.raises(InvalidTokenError):
        verify(RING, TrackingKind.UNSUBSCRIBE, token[:5] + junk + token[5:])
    # '+' and '/' are the standard alphabet's spelling of '-' and '_': the same bytes, not the same token.
    for urlsafe, standard in (("-", "+"), ("_", "/")):
        having = next(t for i in range(1000) if urlsafe in (t := sign(KEY, TrackingKind.UNSUBSCRIBE, i)))
        assert verify(RING, TrackingKind.UNSUBSCRIBE, having)
        with pytest.raises(InvalidTokenError, match="malformed"):
            verify(RING, TrackingKind.UNSUBSCRIBE, having.replace(urlsafe, standard))


def test_a_huge_token_is_rejected_before_decoding() -> None:
    """A URL can carry megabytes: only one length is a token, checked first, so the cost does not grow."""
    huge = "A" * 50_000_000
    fastest = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        with pytest.raises(InvalidTokenError, match="malformed"):
            verify(RING, TrackingKind.OPEN, huge)
        fastest = min(fastest, time.perf_counter() - start)
    # Decoding 50 MB of base64 takes tens of milliseconds or more; a length check, microseconds.
    assert fastest < 0.005


@given(
    st.sampled_from(list(TrackingKind)),
    st.integers(min_value=0, max_value=2**64 - 1),
    st.integers(min_value=0, max_value=2**16 - 1),
)
def test_a_token_signer_makes_the_tokens_sign_makes(purpose: TrackingKind, message_id: int, link_index: int) -> None:
    signer = TokenSigner(SigningKeys(b"k" * 32))
    token = signer.sign(purpose, message_id, link_index)
    assert token == sign(b"k" * 32, purpose, message_id, link_index)
    assert verify(SigningKeys(b"k" * 32), purpose, token) == TokenClaims(purpose, message_id, link_index)


@given(
    purposes,
    message_ids,
    link_indexes,
    # Keys up to and past SHA-256's block (a longer one is hashed first), current or previous.
    st.lists(st.binary(min_size=1, max_size=200), min_size=1, max_size=3),
    st.integers(min_value=0, max_value=2),
)
@example(TrackingKind.OPEN, 1, 0, [b"x" * 64, b"y" * 65], 1)
def test_a_token_verifier_answers_as_verify_does(
    purpose: TrackingKind, message_id: int, link_index: int, ring: list[bytes], signer: int
) -> None:
    keys = SigningKeys.from_keys(ring)
    verifier = TokenVerifier(keys)
    token = sign(ring[min(signer, len(ring) - 1)], purpose, message_id, link_index)
    assert (
        verifier.verify(purpose, token) == verify(keys, purpose, token) == TokenClaims(purpose, message_id, link_index)
    )
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    for bad in (flipped, token[:-1], sign(b"another key", purpose, message_id, link_index)):
        with pytest.raises(InvalidTokenError):
            verifier.verify(purpose, bad)
    for other in TrackingKind:
        if other is not purpose:
            with pytest.raises(InvalidTokenError):
                verifier.verify(other, token)
    with pytest.raises(TypeError):
        verifier.verify(purpose.value, token)  # type: ignore[arg-type]


@given(st.text(max_size=60))
def test_a_token_verifier_refuses_any_text_as_verify_does(text: str) -> None:
    with pytest.raises(InvalidTokenError):
        TokenVerifier(RING).verify(TrackingKind.OPEN, text)
    with pytest.raises(InvalidTokenError):
        verify(RING, TrackingKind.OPEN, text)
