"""Staff users: add, list, disable, set a password (``campaign users``; later the admin pages).

Contract:

* Names and passwords follow :mod:`campaign.rules.access` (a name is unique in any letter case; a password has at
  least 12 characters and is not the name). A password is only ever a parameter of these functions, never stored
  or logged: the ``users`` table holds its argon2id hash (:data:`PASSWORDS`, argon2-cffi's defaults, RFC 9106's
  second recommended profile: 64 MiB, 3 passes, 4 lanes), in the PHC string form, which carries its parameters,
  so a login can tell a hash made with older ones and rehash it (:mod:`campaign.services.sessions`).
* Disabling a user or setting their password ends every session they have: a stolen session dies with the old
  password. A disabled user is kept (the audit log names them) and can never log in.
* An admin cannot disable themself (:func:`disable_user` with their own id as ``actor``): the last admin would
  otherwise lock everyone out of the user pages.
* Each change is written to the audit log in its own transaction, with the acting user (``actor``; None: the
  command line).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy import Connection

from campaign.exceptions import AlreadyExistsError, NotFoundError, ValidationError
from campaign.models import AuditAction, Role, User
from campaign.rules.access import check_new_password, parse_user_name, user_name_key
from campaign.store import audit as audit_store
from campaign.store import sessions as session_store
from campaign.store import users as user_store
from campaign.store.engine import Database

PASSWORDS = PasswordHasher()
"""The password hasher: argon2id with argon2-cffi's default parameters."""


@dataclass(frozen=True, slots=True)
class UserChange:
    """A user after a change, and how many of their sessions it ended."""

    user: User
    sessions_ended: int


def add_user(db: Database, name: str, role: Role, password: str, *, actor: int | None = None) -> User:
    """Add a user who logs in with ``password``; :class:`ValidationError` for a bad name or password,
    :class:`AlreadyExistsError` when the name is taken (in any letter case)."""
    name = parse_user_name(name)
    check_new_password(password, name)
    password_hash = PASSWORDS.hash(password)  # slow on purpose: before the write transaction, not inside it
    now = datetime.now(UTC)
    with db.write() as conn:
        if (existing := user_store.find(conn, user_name_key(name))) is not None:
            raise AlreadyExistsError(f"user {existing.name!r} already exists")
        user_id = user_store.insert_user(conn, name, user_name_key(name), role, password_hash, now)
        _audit(conn, now, AuditAction.USER_ADDED, actor, name, {"role": role.value})
    return User(user_id, name, role, now)


def list_users(db: Database) -> list[User]:
    """Every user, disabled ones too, by name."""
    with db.read() as conn:
        return user_store.all_users(conn)


def disable_user(db: Database, name: str, *, actor: int | None = None) -> UserChange:
    """Disable the user named ``name`` (any letter case) and end their sessions; a disabled user stays so.
    :class:`ValidationError` when ``actor`` is that user: nobody locks themself out (another admin may)."""
    now = datetime.now(UTC)
    with db.write() as conn:
        user = _find(conn, name)
        if actor is not None and user.id == actor:
            raise ValidationError("you cannot disable yourself; another admin can")
        if user.disabled_at is not None:
            return UserChange(user, 0)
        user_store.disable(conn, user.id, now)
        ended = session_store.delete_for_user(conn, user.id)
        _audit(conn, now, AuditAction.USER_DISABLED, actor, user.name, {"sessions_ended": ended})
    return UserChange(User(user.id, user.name, user.role, user.created_at, now), ended)


def set_password(db: Database, name: str, password: str, *, actor: int | None = None) -> UserChange:
    """Give the user named ``name`` a new password and end their sessions (:class:`ValidationError` for a
    password the rules refuse)."""
    with db.read() as conn:
        user = _find(conn, name)
    check_new_password(password, user.name)
    password_hash = PASSWORDS.hash(password)
    now = datetime.now(UTC)
    with db.write() as conn:
        user = _find(conn, name)
        user_store.set_password_hash(conn, user.id, password_hash)
        ended = session_store.delete_for_user(conn, user.id)
        _audit(conn, now, AuditAction.PASSWORD_SET, actor, user.name, {"sessions_ended": ended})
    return UserChange(user, ended)


def _find(conn: Connection, name: str) -> User:
    user = user_store.find(conn, user_name_key(name))
    if user is None:
        raise NotFoundError(f"no user named {name!r} (see `campaign users list`)")
    return user


def _audit(
    conn: Connection, now: datetime, action: AuditAction, actor: int | None, target: str, details: dict[str, Any]
) -> None:
    if actor is None:
        details = {**details, "via": "command line"}
    audit_store.insert_entry(conn, now, action.value, user_id=actor, target=target, details=details)
