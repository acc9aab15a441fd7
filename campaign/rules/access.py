"""Staff access policy: which role may do what, what a user name and a password must be, when a session ends.

Pure: no database, no clock (the time is passed in), no hashing. The services apply these rules; the web app asks
:func:`may` before every staff page and action.

* **Roles** (:class:`~campaign.models.Role`): an admin may do everything, staff view reports and act on campaigns,
  an analyst views reports only (:data:`ROLE_PERMISSIONS`).
* **User names**: 1 to :data:`MAX_USER_NAME_LENGTH` letters, digits, ``.``, ``_``, ``-`` and ``@``, beginning with
  a letter or a digit, kept in Unicode NFKC form; two names that differ only in letter case are the same user
  (:func:`user_name_key`), so ``Alice`` cannot be added beside ``alice``.
* **Passwords**: at least :data:`MIN_PASSWORD_LENGTH` characters (a passphrase of a few words is best; NIST
  SP 800-63B asks for length, not character classes), at most :data:`MAX_PASSWORD_LENGTH`, not the user's name.
* **Sessions** end an idle time after their last request, and in any case a lifetime after the login
  (:func:`session_is_live`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from datetime import datetime, timedelta

from campaign.exceptions import ValidationError
from campaign.models import Permission, Role

ROLE_PERMISSIONS: Mapping[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.STAFF: frozenset({Permission.VIEW_REPORTS, Permission.ACT_ON_CAMPAIGNS}),
    Role.ANALYST: frozenset({Permission.VIEW_REPORTS}),
}
"""What each role may do."""

MAX_USER_NAME_LENGTH = 64
MIN_PASSWORD_LENGTH = 12
# Far above any passphrase; hashing a megabyte on every login attempt would be a way to burn the server's CPU.
MAX_PASSWORD_LENGTH = 1024

_USER_NAME = re.compile(r"[^\W_][\w.@-]*")


def may(role: Role, permission: Permission) -> bool:
    """Whether a user of ``role`` may do what ``permission`` covers."""
    return permission in ROLE_PERMISSIONS[role]


def parse_user_name(text: str) -> str:
    """The user name ``text`` in canonical form (NFKC, spaces around it dropped), or :class:`ValidationError`
    saying what a name must be."""
    name = unicodedata.normalize("NFKC", text.strip())
    if not 1 <= len(name) <= MAX_USER_NAME_LENGTH or not _USER_NAME.fullmatch(name):
        raise ValidationError(
            f"user name {text!r} must be 1 to {MAX_USER_NAME_LENGTH} letters, digits, '.', '_', '-' or '@', "
            "beginning with a letter or a digit"
        )
    return name


def user_name_key(name: str) -> str:
    """What makes two user names the same user: the name in NFKC form, case-folded (``Alice`` is ``alice``)."""
    return unicodedata.normalize("NFKC", name.strip()).casefold()


def check_new_password(password: str, user_name: str) -> None:
    """Raise :class:`ValidationError` (never repeating the password) unless ``password`` may be set for
    ``user_name``."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(
            f"the password is {len(password)} characters long; give one of at least {MIN_PASSWORD_LENGTH} "
            "(a few words make a good one)"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValidationError(f"the password is longer than {MAX_PASSWORD_LENGTH} characters")
    if user_name_key(password) == user_name_key(user_name):
        raise ValidationError("the password must not be the user name")


def session_is_live(expires_at: datetime, last_seen_at: datetime, now: datetime, *, idle: timedelta) -> bool:
    """Whether a session still holds at ``now``: before its absolute end ``expires_at`` (its login plus the
    session lifetime), and less than ``idle`` after its last use."""
    return now < min(expires_at, last_seen_at + idle)
