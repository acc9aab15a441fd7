"""Staff logins and their sessions: log in, find the session of a request, log out.

Contract (:class:`Logins`, one per web app process):

* **Login** checks the password against the user's argon2id hash. An unknown or disabled user costs the same:
  the password is checked against a hash made at the first login (unknown) or their own (disabled) and refused,
  and every refusal writes an audit entry, so neither the answer nor its time tells whether a name exists. A hash
  made with older parameters than :data:`~campaign.services.users.PASSWORDS`' is replaced at the login (the only
  moment the password is known).
* Every login makes a **new session**: a random 256-bit token for the browser's cookie, of which only the SHA-256
  is stored (a copy of the database opens no session), and a random CSRF secret that the session's forms carry.
  Nothing the browser brought before the login becomes the session (no session fixation).
* A session ends ``web.session_idle_minutes`` after its last request and ``web.session_max_hours`` after the login
  in any case; an ended session, or one of a disabled user, is deleted when next presented. Its last use is
  written at most once a minute (:data:`TOUCH_EVERY`), not on every page. Logins also delete ended sessions.
  **Logout** deletes the session: its cookie opens nothing afterwards.
* **Throttling**: after ``web.login_attempts`` failed logins of one user name within ``web.login_window_minutes``,
  that name is refused (:attr:`LoginResult.retry_after`) until the oldest of those failures is that old, and a
  client address after four times as many (:data:`ADDRESS_FACTOR`; people behind one office network share an
  address). Refused attempts check no password. A success clears its name's failures. The counts live in this
  process's memory (:class:`~campaign.rules.throttle.FailureThrottle`): a restart forgets them, and two web
  processes count apart. An attempt counts as failed before its password is checked, so attempts made in
  parallel cannot slip past the limit.
* **A browser that has logged in as a user is not locked out by others' failures** (OWASP's device cookies): a
  success hands the browser a device token for that user name (:meth:`Logins.login`'s ``device``: 16 random bytes
  and their HMAC-SHA256 with the name under the installation's signing key, 43 characters; nothing stored). An
  attempt that presents a valid one for the name it tries is counted against that token alone, with the same
  limit, and not against the name or the client address: someone who fails a user's name on purpose, to keep them
  out, keeps out only the browsers that never logged in as them. A token signed with a previous key still
  verifies (a key rotation logs nobody out of this); one for another name, tampered with or forged counts for
  nothing, and the attempt is throttled as any other.
* **At most** :data:`PASSWORD_CHECKS` **passwords are checked at once** in a process: an argon2id check holds
  64 MiB and a core for a good fraction of a second, and the web app runs logins in its thread pool (40 threads),
  so wrong passwords sent in parallel from a few addresses, each within its throttle allowance, took the server
  to 2.4 GB and its other pages to 5.6 s (a review's reproduction). An attempt beyond the cap is refused at once,
  before it counts as failed, with :attr:`LoginResult.busy_for` (the page answers 503 and asks to try again).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from campaign.config import WebSettings
from campaign.models import AuditAction, Role, User
from campaign.rules.access import session_is_live, user_name_key
from campaign.rules.contact_fields import FieldError, parse_timezone
from campaign.rules.throttle import FailureThrottle
from campaign.services.users import PASSWORDS
from campaign.store import audit as audit_store
from campaign.store import sessions as session_store
from campaign.store import users as user_store
from campaign.store.engine import Database
from campaign.tokens import SigningKeys

ADDRESS_FACTOR = 4
"""A client address may fail this many times as often as a user name."""
PASSWORD_CHECKS = 2
"""Passwords checked at once in a process at most (each check holds 64 MiB: argon2-cffi's default memory cost)."""
BUSY_RETRY = timedelta(seconds=2)
"""What a login refused because :data:`PASSWORD_CHECKS` are under way is told to wait (a check takes 0.1-0.4 s)."""
TOUCH_EVERY = timedelta(minutes=1)
"""A session's last use is written when it is at least this old (or a tenth of the idle time, if shorter): the
idle timeout is counted in minutes, so a write per page would buy nothing."""
_TOKEN_BYTES = 32
# A user name longer than this is no user's (names have at most 64 characters): the throttle keys stay short.
_MAX_KEY = 100
_DEVICE_NONCE_BYTES = 16
_DEVICE_MAC_BYTES = 16
# What a device token's MAC covers before the user name: no tracking token's purpose prefix (kind value and a
# NUL) can be this, so the signing key's two uses never meet.
_DEVICE_PURPOSE = b"staff login device\0"
# No IANA zone name is longer (the longest, America/Argentina/ComodRivadavia, has 32 characters).
_MAX_ZONE = 64


@dataclass(frozen=True, slots=True)
class Staff:
    """The logged-in user of a request, and their session."""

    user_id: int
    name: str
    role: Role
    session_id: str
    csrf_token: str
    zone: str = "UTC"
    """The clock of the times the pages show: the IANA zone the browser said it was in at login, else UTC."""


@dataclass(frozen=True, slots=True)
class LoginResult:
    """What a login attempt came to: a session (``staff`` and the cookie's ``token``), a refusal (all None), or
    no attempt at all: because of the throttle (``retry_after``: when to try again), or because as many passwords
    as a process checks at once are being checked (``busy_for``: when to try again; not counted as failed)."""

    staff: Staff | None = None
    token: str | None = None
    retry_after: timedelta | None = None
    busy_for: timedelta | None = None
    device: str | None = None
    """With a session: the device token for the browser to keep (see the module doc)."""


class Logins:
    """Logins, sessions and logouts on ``db`` with the ``[web]`` settings; see the module doc. Thread-safe: the web
    app calls it from worker threads."""

    def __init__(
        self,
        db: Database,
        settings: WebSettings,
        hasher: PasswordHasher = PASSWORDS,
        device_keys: SigningKeys | None = None,
    ) -> None:
        self.db = db
        self.device_keys = device_keys
        """The keys of device tokens (the installation's signing keys); None: no browser is trusted."""
        self.hasher = hasher
        self.idle = timedelta(minutes=settings.session_idle_minutes)
        self.lifetime = timedelta(hours=settings.session_max_hours)
        window = timedelta(minutes=settings.login_window_minutes)
        self._by_name = FailureThrottle(settings.login_attempts, window)
        self._by_address = FailureThrottle(settings.login_attempts * ADDRESS_FACTOR, window)
        self._by_device = FailureThrottle(settings.login_attempts, window)
        self._lock = threading.Lock()
        self._checks = threading.BoundedSemaphore(PASSWORD_CHECKS)

    @functools.cached_property
    def _unknown_hash(self) -> str:
        """What an unknown name's password is checked against: the same work as a real user's, then a refusal.
        Made at the first login, whoever logs in (so that first login costs the same, name known or not), not
        at start: a hash is 0.1 to 0.4 s of CPU, which every start of the web app would otherwise pay."""
        return self.hasher.hash(secrets.token_urlsafe(_TOKEN_BYTES))

    def login(
        self,
        name: str,
        password: str,
        address: str | None,
        now: datetime,
        zone: str | None = None,
        device: str | None = None,
    ) -> LoginResult:
        """Log ``name`` in with ``password`` from the client ``address`` (for the throttle and the audit log), from a
        browser in the time zone ``zone`` (an IANA name, as the login form's script reads it; anything else, or
        None, is UTC): the session's pages show their times there. ``device``: the device token the browser
        kept from an earlier login, if any (see the module doc)."""
        user_key = user_name_key(name)[:_MAX_KEY]
        trusted = device is not None and self._device_verifies(device, user_key)
        name_key, address_key, device_key = f"name:{user_key}", f"address:{address}", f"device:{device}"
        keys = (
            ((self._by_device, device_key),)
            if trusted
            else ((self._by_name, name_key), (self._by_address, address_key))
        )
        with self._lock:
            waits = [throttle.blocked_for(key, now) for throttle, key in keys]
            if any(waits):
                return LoginResult(retry_after=max(wait for wait in waits if wait))
            # Not waited for: a thread waiting here would hold one of the web app's pool, which its other pages need.
            if not self._checks.acquire(blocking=False):
                return LoginResult(busy_for=BUSY_RETRY)
            for throttle, key in keys:
                throttle.fail(key, now)
        try:
            result = self._check(name, password, address, now, _zone_or_none(zone))
        finally:
            self._checks.release()
        if result.staff is None:
            return result
        with self._lock:
            if trusted:
                # Only the browser's own count: clearing the name's would hand whoever is guessing it a fresh
                # allowance at each of the user's logins (a review's reproduction: five logins, five times the
                # guesses).
                self._by_device.clear(device_key)
            else:
                # A success forgets the name's failures; a shared address's, only this attempt.
                self._by_name.clear(name_key)
                self._by_address.forgive(address_key, now)
        # A new token each time: one signed with a previous key is renewed before that key is retired.
        return dataclasses.replace(result, device=self._device_token(user_key))

    def _device_token(self, user_key: str) -> str | None:
        """A new device token for the user name ``user_key`` (None without keys)."""
        if self.device_keys is None:
            return None
        nonce = secrets.token_bytes(_DEVICE_NONCE_BYTES)
        mac = _device_mac(self.device_keys.current, user_key, nonce)
        return base64.urlsafe_b64encode(nonce + mac).rstrip(b"=").decode()

    def _device_verifies(self, token: str, user_key: str) -> bool:
        """Whether ``token`` is a device token this installation gave for ``user_key`` (any key of the ring)."""
        if self.device_keys is None or len(token) != _DEVICE_TOKEN_LENGTH or not token.isascii():
            return False
        try:
            raw = base64.urlsafe_b64decode(token + "=")
        except (binascii.Error, ValueError):
            return False
        # One spelling per token: the last character's two unused bits would make four of each, four throttle
        # keys for one stolen cookie.
        if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != token:
            return False
        nonce, mac = raw[:_DEVICE_NONCE_BYTES], raw[_DEVICE_NONCE_BYTES:]
        # Every key is tried (no early exit): the time taken does not say which one matched.
        matches = [hmac.compare_digest(_device_mac(key, user_key, nonce), mac) for key in self.device_keys]
        return any(matches)

    def _check(self, name: str, password: str, address: str | None, now: datetime, zone: str | None) -> LoginResult:
        """The attempt, counted as failed already: its password checked, and a session opened if it is right."""
        unknown_hash = self._unknown_hash  # made now if this is the process's first login (see the property)
        found = None
        # No user's name holds a NUL (names refuse controls), and PostgreSQL refuses one in any text value: such a
        # name is unknown without asking; it is still checked against the unknown hash below (the same time).
        if "\x00" not in name:
            with self.db.read() as conn:
                found = user_store.credentials(conn, user_name_key(name))
        user, stored = found if found is not None else (None, unknown_hash)
        accepted = self._verify(stored, password) and user is not None and user.disabled_at is None
        if not accepted or user is None:
            self._record(AuditAction.LOGIN_FAILED, user, now, address)
            return LoginResult()
        return LoginResult(*self._open_session(user, password, stored, address, now, zone))

    def session(self, token: str, now: datetime) -> Staff | None:
        """The logged-in user of the session whose cookie holds ``token``, or None (no such session, ended, or its
        user disabled: an ended one is deleted)."""
        if not token or len(token) > 2 * _TOKEN_BYTES:
            return None
        session_id = _session_id(token)
        with self.db.read() as conn:
            found = session_store.find(conn, session_id)
        if found is None:
            return None
        if found.user_disabled or not session_is_live(found.expires_at, found.last_seen_at, now, idle=self.idle):
            with self.db.write() as conn:
                session_store.delete_session(conn, session_id)
            return None
        if now - found.last_seen_at >= min(TOUCH_EVERY, self.idle / 10):
            with self.db.write() as conn:
                session_store.touch(conn, session_id, now)
        zone = found.timezone or "UTC"
        return Staff(found.user_id, found.user_name, found.role, session_id, found.csrf_secret, zone)

    def logout(self, staff: Staff, address: str | None, now: datetime) -> None:
        """End ``staff``'s session: its cookie opens nothing afterwards."""
        with self.db.write() as conn:
            if session_store.delete_session(conn, staff.session_id):
                details = {"address": address}
                audit_store.insert_entry(
                    conn, now, AuditAction.LOGOUT.value, user_id=staff.user_id, target=staff.name, details=details
                )

    def _verify(self, stored: str, password: str) -> bool:
        try:
            return self.hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    def _open_session(
        self, user: User, password: str, stored: str, address: str | None, now: datetime, zone: str | None
    ) -> tuple[Staff, str]:
        token = secrets.token_urlsafe(_TOKEN_BYTES)
        csrf = secrets.token_urlsafe(_TOKEN_BYTES)
        staff = Staff(user.id, user.name, user.role, _session_id(token), csrf, zone or "UTC")
        # Hashed before the transaction: the hash takes a good fraction of a second.
        rehashed = self.hasher.hash(password) if self.hasher.check_needs_rehash(stored) else None
        with self.db.write() as conn:
            if rehashed is not None:
                user_store.set_password_hash(conn, user.id, rehashed)
            session_store.delete_expired(conn, now - self.idle, now)
            session_store.insert_session(
                conn, staff.session_id, user.id, staff.csrf_token, now, now + self.lifetime, zone
            )
            audit_store.insert_entry(
                conn, now, AuditAction.LOGIN.value, user_id=user.id, target=user.name, details={"address": address}
            )
        return staff, token

    def _record(self, action: AuditAction, user: User | None, now: datetime, address: str | None) -> None:
        # Unknown names are not written down: a name typed in the wrong field may be a password.
        with self.db.write() as conn:
            audit_store.insert_entry(
                conn,
                now,
                action.value,
                user_id=None if user is None else user.id,
                target=None if user is None else user.name,
                details={"address": address},
            )


def _session_id(token: str) -> str:
    """What a session is stored under: the SHA-256 of its token (a 256-bit random token needs no slow hash)."""
    return hashlib.sha256(token.encode()).hexdigest()


def _zone_or_none(given: str | None) -> str | None:
    """The IANA zone a login form said its browser is in, in its canonical spelling; None for none or anything
    else (a browser without scripts sends nothing; the field is the client's to fill, so it is checked)."""
    if not given or len(given) > _MAX_ZONE:
        return None
    try:
        return parse_timezone(given)
    except FieldError:
        return None


_DEVICE_TOKEN_LENGTH = len(base64.urlsafe_b64encode(bytes(_DEVICE_NONCE_BYTES + _DEVICE_MAC_BYTES)).rstrip(b"="))


def _device_mac(key: bytes, user_key: str, nonce: bytes) -> bytes:
    """The MAC of a device token: of the user name (its key: case and width folded) and the nonce."""
    message = _DEVICE_PURPOSE + user_key.encode() + b"\0" + nonce
    return hmac.new(key, message, hashlib.sha256).digest()[:_DEVICE_MAC_BYTES]
