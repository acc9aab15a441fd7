"""SQL for staff users (the ``users`` table). Only the login service and password changes read or write the
password hash; every other reader gets :class:`~campaign.models.User`, which has none."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from campaign.models import Role, User
from campaign.store.rows import from_row
from campaign.store.tables import users


def _select_users(*more: Any) -> Any:
    # Every column but the hash, unless asked for.
    return select(users.c.id, users.c.name, users.c.role, users.c.created_at, users.c.disabled_at, *more)


def to_user(row: Row[Any]) -> User:
    """Map a ``users`` row to a :class:`User`."""
    return from_row(User, row, role=Role(row.role))


def insert_user(conn: Connection, name: str, name_key: str, role: Role, password_hash: str, now: datetime) -> int:
    """Add a user; the caller has checked that ``name_key`` is free (the unique constraint stays the last word)."""
    values = {"name": name, "name_key": name_key, "role": role.value, "password_hash": password_hash}
    user_id: int = conn.execute(insert(users).values(**values, created_at=now).returning(users.c.id)).scalar_one()
    return user_id


def find(conn: Connection, name_key: str) -> User | None:
    """The user whose name has this key, disabled or not."""
    row = conn.execute(_select_users().where(users.c.name_key == name_key)).first()
    return None if row is None else to_user(row)


def credentials(conn: Connection, name_key: str) -> tuple[User, str] | None:
    """The user whose name has this key, with their password hash (for a login)."""
    row = conn.execute(_select_users(users.c.password_hash).where(users.c.name_key == name_key)).first()
    return None if row is None else (to_user(row), row.password_hash)


def all_users(conn: Connection) -> list[User]:
    """Every user, by name."""
    return [to_user(row) for row in conn.execute(_select_users().order_by(users.c.name_key))]


def set_password_hash(conn: Connection, user_id: int, password_hash: str) -> None:
    """Store a new hash for the user (a new password, or the same one hashed with today's parameters)."""
    conn.execute(update(users).where(users.c.id == user_id).values(password_hash=password_hash))


def disable(conn: Connection, user_id: int, now: datetime) -> None:
    """Mark the user disabled from ``now`` on (kept, so the audit log still names them)."""
    conn.execute(update(users).where(users.c.id == user_id).values(disabled_at=now))
