"""SQL for the shared send-rate token buckets (``rate_limits``): a take is one statement.

A worker takes a batch of tokens at once: the row is refilled for the time elapsed since its last refill (at
``rate`` tokens a second, up to ``capacity``), and what is available, up to the tokens asked for, is granted, in
one ``UPDATE ... RETURNING`` (every ``SET`` expression reads the row as it was, on both backends). The row locks
for that statement only, so workers on many machines take from one bucket without ever granting a token twice.
A bucket's row is made (full) by its first take.

Time is seconds since the epoch, on the taking worker's clock (machines are expected to keep NTP time): a clock
a little behind another's never refills twice (``refilled_at`` only moves forward), it only refills a little later.

Per-recipient-domain buckets (``domain:<domain>``) would pile up, one row for every domain ever sent to:
:func:`forget_idle_domains` deletes, a bounded number at a time, those not refilled for a while. Forgetting a
bucket idle long enough to be full again changes nothing: its next take makes it anew, full, as it would have
been. The delete re-checks its condition on the row itself, so a take that touches the row meanwhile keeps it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Float, bindparam, delete, func, literal, select, update

from campaign.store.dialect import insert_ignoring_conflicts
from campaign.store.tables import rate_limits

DOMAIN_PREFIX = "domain:"
"""The names of the per-recipient-domain buckets start so."""
FORGET_LIMIT = 1000
"""At most this many idle domain buckets deleted per :func:`forget_idle_domains` (the rest at the next one)."""


@dataclass(frozen=True, slots=True)
class Grant:
    """What a take gave: ``granted`` tokens (possibly fractional, possibly 0) and the ``left`` in the bucket."""

    granted: float
    left: float


def take(conn: Connection, name: str, *, rate: float, capacity: float, want: float, now: float) -> Grant:
    """Take up to ``want`` tokens from the bucket ``name`` (refilled at ``rate`` a second up to ``capacity``) at
    ``now`` (epoch seconds). One statement once the bucket exists; its first take makes it full."""
    values = {"rate": rate, "capacity": capacity, "want": want, "now": now}
    row = conn.execute(_take_statement(conn.dialect.name, name), values).one_or_none()
    if row is None:
        conn.execute(
            insert_ignoring_conflicts(conn, rate_limits).values(
                name=name, tokens=capacity, refilled_at=now, granted=0.0
            )
        )
        row = conn.execute(_take_statement(conn.dialect.name, name), values).one()
    return Grant(float(row.granted), float(row.tokens))


def _take_statement(dialect: str, name: str) -> Any:
    least, greatest = (func.least, func.greatest) if dialect == "postgresql" else (func.min, func.max)
    rate, capacity, want, now = (bindparam(p, type_=Float()) for p in ("rate", "capacity", "want", "now"))
    c = rate_limits.c
    elapsed = greatest(literal(0.0), now - c.refilled_at)
    available: ColumnElement[float] = least(capacity, c.tokens + elapsed * rate)
    granted = least(want, greatest(literal(0.0), available))
    return (
        update(rate_limits)
        .where(c.name == name)
        .values(granted=granted, tokens=available - granted, refilled_at=greatest(c.refilled_at, now))
        .returning(c.granted, c.tokens)
    )


def forget_idle_domains(conn: Connection, *, idle_before: float, limit: int = FORGET_LIMIT) -> int:
    """Delete up to ``limit`` domain buckets last refilled before ``idle_before`` (epoch seconds; the caller makes
    sure that is long enough for any of them to be full again); returns how many. One statement."""
    c = rate_limits.c
    idle = (c.name.like(DOMAIN_PREFIX + "%"), c.refilled_at < idle_before)
    some = select(c.name).where(*idle).limit(limit).scalar_subquery()
    # The condition again on the outer DELETE: PostgreSQL re-checks it on a row a concurrent take just refilled
    # (and keeps that row) instead of trusting the subquery's older snapshot.
    statement = delete(rate_limits).where(c.name.in_(some), *idle)
    deleted: int = conn.execute(statement, execution_options={"preserve_rowcount": True}).rowcount
    return deleted
