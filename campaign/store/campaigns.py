"""SQL for campaigns and their waves."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam, exists, func, insert, select, update

from campaign.models import Audience, Campaign, CampaignStatus, EventBefore, Wave, WaveKind, WaveStatus
from campaign.store.outbox import UNFINISHED
from campaign.store.rows import find_by_reference, from_row
from campaign.store.tables import campaigns, lists, messages, waves


def _select_campaigns() -> Any:
    return select(campaigns, lists.c.name.label("list_name")).join(lists, lists.c.id == campaigns.c.list_id)


def to_campaign(row: Row[Any]) -> Campaign:
    """Map a campaigns row (joined with its list's name) to a :class:`Campaign`."""
    return from_row(Campaign, row, status=CampaignStatus(row.status))


def to_wave(row: Row[Any]) -> Wave:
    """Map a waves row to a :class:`Wave`."""
    before = row._mapping.get("event_before")
    return from_row(
        Wave,
        row,
        kind=WaveKind(row.kind),
        audience=Audience(row.audience),
        status=WaveStatus(row.status),
        event_before=event_before_from_json(before) if before else None,
    )


def event_before_json(before: EventBefore) -> str:
    """The ``waves.event_before`` column's JSON for ``before`` (instants in ISO 8601 with their UTC offset)."""
    return json.dumps(
        {
            "starts_at": before.starts_at.isoformat(),
            "ends_at": before.ends_at.isoformat(),
            "timezone": before.timezone,
            "join_url": before.join_url,
            "registration_url": before.registration_url,
            "changed": list(before.changed),
        }
    )


def event_before_from_json(text: str) -> EventBefore:
    """The :class:`EventBefore` that :func:`event_before_json` wrote."""
    doc = json.loads(text)
    return EventBefore(
        starts_at=datetime.fromisoformat(doc["starts_at"]),
        ends_at=datetime.fromisoformat(doc["ends_at"]),
        timezone=doc["timezone"],
        join_url=doc.get("join_url"),
        registration_url=doc.get("registration_url"),
        changed=tuple(doc.get("changed", ())),
    )


def insert_campaign(conn: Connection, values: Mapping[str, Any], now: datetime) -> int:
    """Insert a campaign; returns its id."""
    stmt = insert(campaigns).values(**values, created_at=now, updated_at=now).returning(campaigns.c.id)
    campaign_id: int = conn.execute(stmt).scalar_one()
    return campaign_id


def insert_wave(conn: Connection, values: Mapping[str, Any], now: datetime) -> int:
    """Insert a wave; returns its id."""
    stmt = insert(waves).values(**values, created_at=now, planned_at=now).returning(waves.c.id)
    wave_id: int = conn.execute(stmt).scalar_one()
    return wave_id


def find(conn: Connection, ref: str) -> Campaign | None:
    """The campaign with id ``ref`` when it is ASCII digits, else the one named ``ref`` (see
    :mod:`campaign.rules.references`); spaces around ``ref`` do not count, as names never have them."""
    row = find_by_reference(conn, _select_campaigns(), campaigns.c.id, campaigns.c.name, ref)
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


def change_status(
    conn: Connection,
    campaign_id: int,
    status: CampaignStatus,
    reason: str | None,
    now: datetime,
    *,
    was: Collection[CampaignStatus],
    finished: bool = False,
) -> bool:
    """Set a campaign's status and the reason shown beside it, if it is still one of ``was`` (and, with
    ``finished``, has no pending wave and no message left unfinished); returns whether it moved.

    One conditional ``UPDATE``: two processes deciding at once cannot both move it, nor move it from a status
    another one changed since they read it. Only :func:`campaign.services.transitions.transition` calls this
    (it checks the move against the lifecycle's table first)."""
    values: dict[str, Any] = {"status": status.value, "status_reason": reason, "updated_at": now}
    if status is CampaignStatus.SENDING:
        values["launched_at"] = func.coalesce(campaigns.c.launched_at, now)
    stmt = update(campaigns).where(campaigns.c.id == campaign_id, campaigns.c.status.in_([s.value for s in was]))
    if finished:
        pending = exists().where(waves.c.campaign_id == campaigns.c.id, waves.c.status == WaveStatus.PENDING.value)
        unfinished = exists().where(
            waves.c.campaign_id == campaigns.c.id, messages.c.wave_id == waves.c.id, messages.c.status.in_(UNFINISHED)
        )
        stmt = stmt.where(~pending, ~unfinished)
    return bool(conn.execute(stmt.values(values)).rowcount)


def set_template_dir(conn: Connection, campaign_id: int, template_dir: str | None, now: datetime) -> None:
    """Set (or clear, with None) the campaign's own template directory."""
    values = {"template_dir": template_dir, "updated_at": now}
    conn.execute(update(campaigns).where(campaigns.c.id == campaign_id).values(values))


def set_waves_status(
    conn: Connection,
    wave_ids: Collection[int],
    status: WaveStatus,
    *,
    was: WaveStatus,
    enqueued_at: datetime | None = None,
) -> int:
    """Set the status of those of these waves that are still ``was`` (and, given ``enqueued_at``, when they were
    enqueued); returns how many. A wave another transaction moved since it was read is left alone."""
    if not wave_ids:
        return 0
    values: dict[str, Any] = {"status": status.value}
    if enqueued_at is not None:
        values["enqueued_at"] = enqueued_at
    stmt = update(waves).where(waves.c.id.in_(list(wave_ids)), waves.c.status == was.value).values(values)
    return conn.execute(stmt).rowcount


def waves_with_unfinished(conn: Connection, campaign_id: int) -> set[int]:
    """Ids of the campaign's waves with at least one message not final yet (in ``outbox.UNFINISHED``).

    An EXISTS per wave, not a count: it stops at the first such message, where a count would read every queued
    message of a large wave each time a worker finds nothing due."""
    has_unfinished = exists().where(messages.c.wave_id == waves.c.id, messages.c.status.in_(UNFINISHED))
    return set(conn.scalars(select(waves.c.id).where(waves.c.campaign_id == campaign_id, has_unfinished)))


def waves_by_id(conn: Connection, wave_ids: list[int]) -> dict[int, Wave]:
    """Waves by id."""
    return {w.id: w for w in (to_wave(r) for r in conn.execute(select(waves).where(waves.c.id.in_(wave_ids))))}
