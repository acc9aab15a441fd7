"""The registry of worker and scheduler processes as people read it: who runs, how recently it beat, how fast.

Contract: :func:`registry` lists every row of ``workers`` with its heartbeat's age and a state judged now: a
process whose row says it runs (``alive``, ``leader``, ``standby``) but that has not beaten for longer than
``delivery.lease_seconds`` is ``stale`` (it died or hangs; its leases have expired, and the next heartbeat of any
process marks it ``gone``). :func:`leader` is the scheduler leading now, if any: a ``leader`` row that is not stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from campaign.config import Settings
from campaign.store import workers as worker_store
from campaign.store.engine import Database
from campaign.store.workers import LEADER, RUNNING, SCHEDULER, WORKER, WorkerRecord

STALE = "stale"
"""The state shown for a process that says it runs but stopped beating."""


@dataclass(frozen=True, slots=True)
class WorkerState:
    """One registry row, with its heartbeat's age (seconds) and its state judged now."""

    record: WorkerRecord
    age_seconds: float
    state: str

    @property
    def running(self) -> bool:
        """Whether the process runs, as far as its heartbeat says."""
        return self.state in RUNNING


def registry(db: Database, settings: Settings, now: datetime | None = None) -> list[WorkerState]:
    """Every worker and scheduler process known, schedulers first (see the module doc)."""
    now = now or datetime.now(UTC)
    with db.read() as conn:
        records = worker_store.all_workers(conn)
    lease = settings.delivery.lease_seconds
    return [
        WorkerState(record, max(0.0, (now - record.heartbeat_at).total_seconds()), judged_state(record, now, lease))
        for record in records
    ]


def judged_state(record: WorkerRecord, now: datetime, lease_seconds: float) -> str:
    """The row's state as its heartbeat says it now: :data:`STALE` for a process that says it runs but has not
    beaten for a lease (it died, or stalled: its leases have lapsed), else what it says."""
    age = (now - record.heartbeat_at).total_seconds()
    return STALE if record.state in RUNNING and age > lease_seconds else record.state


def leader(states: list[WorkerState]) -> WorkerState | None:
    """The scheduler that leads now (of :func:`registry`'s answer), if any."""
    return next((s for s in states if s.record.role == SCHEDULER and s.state == LEADER), None)


def running_workers(states: list[WorkerState]) -> list[WorkerState]:
    """The delivery workers running now (of :func:`registry`'s answer)."""
    return [s for s in states if s.record.role == WORKER and s.running]
