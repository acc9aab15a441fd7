"""SQL for the registry of worker and scheduler processes (``workers``) and the scheduler's leader lock.

A heartbeat is one step: the process's row and, for a delivery worker, every lease it holds, renewed together.
On PostgreSQL that is one statement (the lease renewal a data-modifying ``WITH`` of the row's update); on SQLite,
which has no such ``WITH``, two statements in one transaction. Either way the cost is per beat, not per message.

The leader lock is a PostgreSQL session-level advisory lock: held by one connection until it unlocks or closes
(the server drops it when the process dies and its connection goes), so a standby's ``pg_try_advisory_lock``
succeeds within a poll of the leader's death.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, text, update

from campaign.models import MessageStatus
from campaign.store.tables import messages, workers

WORKER = "worker"
"""The role of a delivery worker's row."""
SCHEDULER = "scheduler"
"""The role of a ``campaign serve`` scheduler's row."""

ALIVE, STOPPED, GONE = "alive", "stopped", "gone"
LEADER, STANDBY = "leader", "standby"
RUNNING = (ALIVE, LEADER, STANDBY)
"""The states of a process that has not said it stopped (it may have died since: its heartbeat says)."""


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    """One row of the registry (see :class:`campaign.store.tables.WorkerRow`)."""

    name: str
    role: str
    host: str
    pid: int
    state: str
    started_at: datetime
    heartbeat_at: datetime
    claimed: int
    sent: int
    failed: int
    lost: int
    in_hand: int
    rate: float


@dataclass(frozen=True, slots=True)
class Counts:
    """What a worker did since it started, as its heartbeat records it."""

    claimed: int = 0
    sent: int = 0
    failed: int = 0
    lost: int = 0
    rate: float = 0.0


def register(conn: Connection, *, name: str, role: str, host: str, pid: int, state: str, now: datetime) -> None:
    """Add the row of a process that starts."""
    conn.execute(
        insert(workers).values(
            name=name,
            role=role,
            host=host,
            pid=pid,
            state=state,
            started_at=now,
            heartbeat_at=now,
            claimed=0,
            sent=0,
            failed=0,
            lost=0,
            in_hand=0,
            rate=0.0,
        )
    )


def find(conn: Connection, name: str) -> WorkerRecord | None:
    """The row of ``name``, or None."""
    columns = [workers.c[f.name] for f in fields(WorkerRecord)]
    row = conn.execute(select(*columns).where(workers.c.name == name)).first()
    return None if row is None else WorkerRecord(*row)


def retire(conn: Connection, name: str, retired_owner: str) -> int:
    """Delete the row of ``name`` (a process that ended) and hand the leases it still holds to ``retired_owner``,
    a name no process beats for: a new process of the same name would otherwise renew them, though it never had
    those messages, and they would stay ``sending`` for as long as it runs. They lapse when their time comes and
    are claimed again as any dead worker's. Returns how many leases it handed over."""
    conn.execute(delete(workers).where(workers.c.name == name))
    handed: int = conn.execute(
        update(messages)
        .where(messages.c.lease_owner == name, messages.c.status == MessageStatus.SENDING.value)
        .values(lease_owner=retired_owner),
        execution_options={"preserve_rowcount": True},
    ).rowcount
    return handed


def beat(
    conn: Connection,
    name: str,
    *,
    state: str,
    now: datetime,
    counts: Counts | None = None,
    lease_until: datetime | None = None,
    lease_now: datetime | None = None,
    in_hand: int | None = None,
) -> int:
    """Renew the row of ``name`` (heartbeat, ``state``, ``counts``, ``in_hand`` if given) and, given
    ``lease_until``, every lease it holds to then (``lease_now``: the lease clock's time, for ``updated_at``);
    returns how many leases were renewed.

    The leases renewed are those still ``sending`` under ``name``: one another worker took since (this one was
    stopped past its lease) is not touched. The row gets ``state`` back even if another process marked it gone.
    """
    values: dict[str, Any] = {"heartbeat_at": now, "state": state}
    if in_hand is not None:
        values["in_hand"] = in_hand
    if counts is not None:
        values.update(
            claimed=counts.claimed, sent=counts.sent, failed=counts.failed, lost=counts.lost, rate=counts.rate
        )
    row = update(workers).where(workers.c.name == name)
    if lease_until is None:
        conn.execute(row.values(values))
        return 0
    renew = (
        update(messages)
        .where(messages.c.lease_owner == name, messages.c.status == MessageStatus.SENDING.value)
        .values(lease_expires_at=lease_until, updated_at=lease_now or now)
    )
    if conn.dialect.name == "postgresql":
        renewed = renew.returning(messages.c.id).cte("renewed")
        held = select(func.count()).select_from(renewed).scalar_subquery()
        stmt = row.values({**values, "in_hand": held}).add_cte(renewed).returning(workers.c.in_hand)
        return int(conn.execute(stmt).scalar() or 0)
    count: int = conn.execute(renew, execution_options={"preserve_rowcount": True}).rowcount
    conn.execute(row.values({**values, "in_hand": count}))
    return count


def set_state(conn: Connection, name: str, state: str, now: datetime) -> None:
    """Set the row's state (``stopped`` as a process ends; ``leader`` on a takeover) with a heartbeat."""
    conn.execute(update(workers).where(workers.c.name == name).values(state=state, heartbeat_at=now, in_hand=0))


def take_lead(conn: Connection, name: str, now: datetime) -> None:
    """``name`` leads now: any other scheduler row still saying ``leader`` is of a process that lost the lock
    (it died: its connection closed), so it is ``gone``."""
    conn.execute(
        update(workers)
        .where(workers.c.role == SCHEDULER, workers.c.state == LEADER, workers.c.name != name)
        .values(state=GONE)
    )
    set_state(conn, name, LEADER, now)


def mark_gone(conn: Connection, *, stale_before: datetime, forget_before: datetime) -> int:
    """Rows of running processes whose heartbeat is older than ``stale_before`` become ``gone``; rows stopped or
    gone whose last heartbeat is older than ``forget_before`` are deleted. Returns how many became gone."""
    gone: int = conn.execute(
        update(workers)
        .where(workers.c.state.in_(RUNNING), workers.c.heartbeat_at < stale_before)
        .values(state=GONE, in_hand=0),
        execution_options={"preserve_rowcount": True},
    ).rowcount
    conn.execute(delete(workers).where(workers.c.state.not_in(RUNNING), workers.c.heartbeat_at < forget_before))
    return gone


def all_workers(conn: Connection) -> list[WorkerRecord]:
    """Every row, schedulers first, then by start time."""
    columns = [workers.c[f.name] for f in fields(WorkerRecord)]
    # "scheduler" sorts before "worker".
    stmt = select(*columns).order_by(workers.c.role, workers.c.started_at, workers.c.name)
    return [WorkerRecord(*row) for row in conn.execute(stmt)]


def try_advisory_lock(conn: Connection, key: int) -> bool:
    """PostgreSQL: take the session-level advisory lock ``key`` if no other session holds it (never waits)."""
    return bool(conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar())


def advisory_unlock(conn: Connection, key: int) -> None:
    """PostgreSQL: give the session-level advisory lock ``key`` back."""
    conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})


def ping(conn: Connection) -> None:
    """One round trip: raises if the connection is gone (the leader checks the one holding its lock)."""
    conn.execute(text("SELECT 1"))
