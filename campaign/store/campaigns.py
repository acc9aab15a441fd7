"""SQL for campaigns and their waves."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, bindparam, exists, func, insert, select, true, update

from campaign.models import Audience, Campaign, CampaignStatus, Wave, WaveKind, WaveStatus, check_wave_transition
from campaign.store.outbox import UNFINISHED
from campaign.store.rows import from_row, reference_condition
from campaign.store.tables import campaigns, lists, messages, waves


def _select_campaigns() -> Any:
    return select(campaigns, lists.c.name.label("list_name")).join(lists, lists.c.id == campaigns.c.list_id)


def to_campaign(row: Row[Any]) -> Campaign:
    """Map a campaigns row (joined with its list's name) to a :class:`Campaign`."""
    return from_row(Campaign, row, status=CampaignStatus(row.status))


def to_wave(row: Row[Any]) -> Wave:
    """Map a waves row to a :class:`Wave`."""
    return from_row(Wave, row, kind=WaveKind(row.kind), audience=Audience(row.audience), status=WaveStatus(row.status))


def insert_campaign(conn: Connection, values: Mapping[str, Any], now: datetime) -> int:
    """Insert a campaign; returns its id."""
    stmt = insert(campaigns).values(**values, created_at=now, updated_at=now).returning(campaigns.c.id)
    campaign_id: int = conn.execute(stmt).scalar_one()
    return campaign_id


def insert_wave(conn: Connection, values: Mapping[str, Any], now: datetime) -> int:
    """Insert a wave; returns its id."""
    wave_id: int = conn.execute(insert(waves).values(**values, created_at=now).returning(waves.c.id)).scalar_one()
    return wave_id


def find(conn: Connection, ref: str) -> Campaign | None:
    """The campaign with id ``ref`` when it is ASCII digits, else the one named ``ref`` (see
    :mod:`campaign.rules.references`); spaces around ``ref`` do not count, as names never have them."""
    condition = reference_condition(campaigns.c.id, campaigns.c.name, ref)
    row = conn.execute(_select_campaigns().where(condition)).first()
    return to_campaign(row) if row else None


# Built once: the delivery worker runs it at every commit.
_STATUSES = select(campaigns.c.id, campaigns.c.status).where(campaigns.c.id.in_(bindparam("ids", expanding=True)))


def statuses(conn: Connection, ids: Iterable[int]) -> dict[int, CampaignStatus]:
    """The status of each of these campaigns (one cheap query: the delivery worker asks at every commit)."""
    return {campaign_id: CampaignStatus(status) for campaign_id, status in conn.execute(_STATUSES, {"ids": list(ids)})}


def all_campaigns(conn: Connection) -> list[Campaign]:
    """Every campaign, newest first."""
    return [to_campaign(r) for r in conn.execute(_select_campaigns().order_by(campaigns.c.id.desc()))]


def waves_of(conn: Connection, campaign_id: int) -> list[Wave]:
    """A campaign's waves in creation order."""
    stmt = select(waves).where(waves.c.campaign_id == campaign_id).order_by(waves.c.id)
    return [to_wave(r) for r in conn.execute(stmt)]


def set_status(conn: Connection, campaign_id: int, status: CampaignStatus, reason: str | None, now: datetime) -> None:
    """Set a campaign's status and the reason shown beside it."""
    values: dict[str, Any] = {"status": status.value, "status_reason": reason, "updated_at": now}
    if status is CampaignStatus.SENDING:
        values["launched_at"] = func.coalesce(campaigns.c.launched_at, now)
    conn.execute(update(campaigns).where(campaigns.c.id == campaign_id).values(values))


def set_wave_status(conn: Connection, wave_id: int, status: WaveStatus, now: datetime) -> None:
    """Set a wave's status (``enqueued`` also stamps when)."""
    values: dict[str, Any] = {"status": status.value}
    if status is WaveStatus.ENQUEUED:
        values["enqueued_at"] = now
    conn.execute(update(waves).where(waves.c.id == wave_id).values(values))


def settle_waves(conn: Connection, campaign_id: int) -> None:
    """Waves follow their messages: an enqueued wave whose messages are all final becomes ``done``, and a done
    wave whose messages were queued again (``campaign retry``) is ``enqueued`` again."""
    has_unfinished = exists().where(messages.c.wave_id == waves.c.id, messages.c.status.in_(UNFINISHED))
    _move_waves(conn, campaign_id, WaveStatus.ENQUEUED, WaveStatus.DONE, ~has_unfinished)
    _move_waves(conn, campaign_id, WaveStatus.DONE, WaveStatus.ENQUEUED, has_unfinished)


def cancel_waves(conn: Connection, campaign_id: int) -> None:
    """Cancel the waves of a cancelled campaign that are not done: waiting, or enqueued with messages left."""
    for source in (WaveStatus.PENDING, WaveStatus.ENQUEUED):
        _move_waves(conn, campaign_id, source, WaveStatus.CANCELLED, true())


def _move_waves(
    conn: Connection, campaign_id: int, source: WaveStatus, target: WaveStatus, condition: ColumnElement[bool]
) -> None:
    check_wave_transition(source, target)
    stmt = update(waves).where(waves.c.campaign_id == campaign_id, waves.c.status == source.value, condition)
    conn.execute(stmt.values(status=target.value))


def waves_by_id(conn: Connection, wave_ids: list[int]) -> dict[int, Wave]:
    """Waves by id."""
    return {w.id: w for w in (to_wave(r) for r in conn.execute(select(waves).where(waves.c.id.in_(wave_ids))))}
