"""SQL for a campaign's waves as the scheduler and ``campaign waves`` see them: timing, window, expiry, status.

Every change to a wave that may already have fired is a compare-and-set on its status, so a wave another
process fired meanwhile is never edited, removed or fired twice. An edit reads the wave it changes locked
(:func:`find_schedule` with ``lock``), so that what it compares (its status, the version a form was made from) is
what it writes over.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, Select, delete, select, update

from campaign.models import MessageStatus, Wave, WaveStatus
from campaign.store.campaigns import to_wave
from campaign.store.tables import campaigns, events, messages, waves


@dataclass(frozen=True, slots=True)
class WaveSchedule:
    """A wave with what only the scheduler reads: its send window (``format_window`` text), its expiry relative
    to the event start, and why it was missed."""

    wave: Wave
    window: str | None = None
    expires_offset_seconds: int | None = None
    missed_reason: str | None = None


@dataclass(frozen=True, slots=True)
class DueWave:
    """A wave with its campaign's list, launch and event times: all :func:`campaign.services.scheduling` needs."""

    schedule: WaveSchedule
    campaign: str
    list_id: int
    launched_at: datetime | None
    event_start: datetime
    event_end: datetime
    organiser_zone: str


def to_schedule(row: Row[Any]) -> WaveSchedule:
    """Map a waves row to a :class:`WaveSchedule`."""
    return WaveSchedule(to_wave(row), row.window, row.expires_offset_seconds, row.missed_reason)


def schedules_of(conn: Connection, campaign_id: int) -> list[WaveSchedule]:
    """A campaign's waves in creation order."""
    stmt = select(waves).where(waves.c.campaign_id == campaign_id).order_by(waves.c.id)
    return [to_schedule(r) for r in conn.execute(stmt)]


def find_schedule(conn: Connection, campaign_id: int, name: str, *, lock: bool = False) -> WaveSchedule | None:
    """The campaign's wave called ``name``, or None. ``lock`` (in a write transaction): its row locked until the
    transaction ends, so that no other transaction changes it between this read and this transaction's write
    (PostgreSQL ``FOR UPDATE``: a concurrent edit waits, then reads the row as this one left it; SQLite needs no
    row lock, its writes being serialised by ``BEGIN IMMEDIATE``, and SQLAlchemy renders no ``FOR`` there)."""
    stmt = select(waves).where(waves.c.campaign_id == campaign_id, waves.c.name == name)
    row = conn.execute(stmt.with_for_update() if lock else stmt).first()
    return to_schedule(row) if row else None


def waves_in(
    conn: Connection, wave_statuses: Collection[WaveStatus], campaign_statuses: Collection[str], campaign_id: int | None
) -> list[DueWave]:
    """Waves in ``wave_statuses`` of campaigns in ``campaign_statuses`` (only ``campaign_id``, when given), with
    their campaign and event, in id order."""
    stmt = _due(wave_statuses).where(campaigns.c.status.in_(list(campaign_statuses))).order_by(waves.c.id)
    if campaign_id is not None:
        stmt = stmt.where(campaigns.c.id == campaign_id)
    return [_to_due(r) for r in conn.execute(stmt)]


def lock_due(
    conn: Connection,
    campaign_id: int,
    wave_id: int,
    wave_statuses: Collection[WaveStatus],
    campaign_statuses: Collection[str],
) -> DueWave | None:
    """Inside a write transaction: the wave as :func:`waves_in` reads it, read again and locked, or None when
    it or its campaign is no longer in one of those statuses.

    What firing decides from (expiry, window, audience, event times) comes from this read, not from an earlier
    one: an edit committed in between is seen. On PostgreSQL the campaign row is locked ``FOR SHARE`` first (a
    cancel, which updates that row before cancelling the campaign's messages, waits for this transaction, and
    then sees the rows it added; or this one waits for the cancel and sees it) and the wave row ``FOR UPDATE``
    (an edit's compare-and-set waits, then finds the wave fired). SQLite has no row locks and needs none: its
    writes are serialised (``BEGIN IMMEDIATE``), and SQLAlchemy renders no ``FOR`` clause there.
    """
    lock_campaign = select(campaigns.c.status).where(campaigns.c.id == campaign_id).with_for_update(read=True)
    if conn.scalar(lock_campaign) not in campaign_statuses:
        return None
    stmt = _due(wave_statuses).where(waves.c.id == wave_id).with_for_update(of=waves)
    row = conn.execute(stmt).first()
    return _to_due(row) if row is not None else None


def _due(wave_statuses: Collection[WaveStatus]) -> Select[Any]:
    """Waves in ``wave_statuses`` joined to what firing reads of their campaign and event."""
    return (
        select(
            waves,
            campaigns.c.name.label("campaign_name"),
            campaigns.c.list_id,
            campaigns.c.launched_at,
            events.c.starts_at,
            events.c.ends_at,
            events.c.timezone.label("organiser_zone"),
        )
        .join(campaigns, campaigns.c.id == waves.c.campaign_id)
        .join(events, events.c.id == campaigns.c.event_id)
        .where(waves.c.status.in_([s.value for s in wave_statuses]))
    )


def _to_due(row: Row[Any]) -> DueWave:
    return DueWave(
        to_schedule(row), row.campaign_name, row.list_id, row.launched_at, row.starts_at, row.ends_at,
        row.organiser_zone,
    )  # fmt: skip


def mark_enqueued(conn: Connection, wave_id: int, *, expires_at: datetime, now: datetime) -> bool:
    """``pending → enqueued`` (with when, and the expiry in force) if the wave is still pending: the
    compare-and-set that makes firing exactly-once. False: another process fired (or someone removed) it."""
    stmt = (
        update(waves)
        .where(waves.c.id == wave_id, waves.c.status == WaveStatus.PENDING.value)
        .values(status=WaveStatus.ENQUEUED.value, enqueued_at=now, expires_at=expires_at)
    )
    return bool(conn.execute(stmt).rowcount == 1)


def mark_missed(conn: Connection, wave_id: int, reason: str) -> bool:
    """``pending → missed`` with the reason, if the wave is still pending."""
    stmt = (
        update(waves)
        .where(waves.c.id == wave_id, waves.c.status == WaveStatus.PENDING.value)
        .values(status=WaveStatus.MISSED.value, missed_reason=reason)
    )
    return bool(conn.execute(stmt).rowcount == 1)


def update_wave(conn: Connection, wave_id: int, values: Mapping[str, Any], *, was: Collection[WaveStatus]) -> bool:
    """Change a wave's settings if its status is still one of ``was``; False when it moved meanwhile."""
    stmt = update(waves).where(waves.c.id == wave_id, waves.c.status.in_([s.value for s in was])).values(**values)
    return bool(conn.execute(stmt).rowcount == 1)


def replan_event_timed(conn: Connection, campaign_ids: Collection[int], now: datetime) -> int:
    """Mark the pending waves of these campaigns that are timed from their event (an offset) as planned at ``now``:
    their event moved, and their time with it. Returns how many."""
    stmt = (
        update(waves)
        .where(
            waves.c.campaign_id.in_(list(campaign_ids)),
            waves.c.status == WaveStatus.PENDING.value,
            waves.c.offset_seconds.is_not(None),
        )
        .values(planned_at=now)
    )
    return int(conn.execute(stmt).rowcount)


def delete_wave(conn: Connection, wave_id: int, *, was: Collection[WaveStatus]) -> bool:
    """Delete a wave if its status is still one of ``was`` (a wave with messages never is: it fired)."""
    stmt = delete(waves).where(waves.c.id == wave_id, waves.c.status.in_([s.value for s in was]))
    return bool(conn.execute(stmt).rowcount == 1)


def cancel_waves(conn: Connection, campaign_id: int, *, was: Collection[WaveStatus], keep: Collection[int] = ()) -> int:
    """Cancel the campaign's waves in one of the statuses ``was`` (a compare-and-set: one that fired meanwhile
    is left alone), except the ``keep`` ones; returns how many."""
    stmt = (
        update(waves)
        .where(
            waves.c.campaign_id == campaign_id,
            waves.c.status.in_([s.value for s in was]),
            waves.c.id.not_in(list(keep)),
        )
        .values(status=WaveStatus.CANCELLED.value)
    )
    return conn.execute(stmt).rowcount


def cancel_messages(
    conn: Connection, campaign_id: int, *, was: Collection[MessageStatus], keep: Collection[int], now: datetime
) -> int:
    """Cancel the campaign's messages in one of the statuses ``was``, except those of the ``keep`` waves; returns
    how many. A row in a worker's hands loses its lease: a 250 still marks it sent, anything else leaves it
    cancelled (the worker records only rows still ``sending``)."""
    wave_ids = select(waves.c.id).where(waves.c.campaign_id == campaign_id, waves.c.id.not_in(list(keep)))
    stmt = (
        update(messages)
        .where(messages.c.wave_id.in_(wave_ids.scalar_subquery()), messages.c.status.in_([s.value for s in was]))
        .values(status=MessageStatus.CANCELLED.value, lease_owner=None, lease_expires_at=None, updated_at=now)
    )
    return conn.execute(stmt).rowcount
