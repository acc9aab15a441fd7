"""SQL for who a wave's audience is now, zone by zone: what ``campaign status`` and ``campaign plan`` show.

The audience is selected by the same condition a wave is materialised with
(:func:`campaign.store.materialise.audience_condition`), so the counts shown are the rows a wave firing now would add
(suppressed addresses included: they get a ``suppressed`` row).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Integer, case, func, select

from campaign.models import Audience
from campaign.store.materialise import audience_condition
from campaign.store.tables import contacts, list_members


@dataclass(frozen=True, slots=True)
class ZoneSize:
    """One zone of a list (None: contacts without one): its members, and how many of them an audience selects."""

    zone: str | None
    members: int
    selected: int


def zone_sizes(conn: Connection, list_id: int, campaign_id: int, audience: Audience) -> list[ZoneSize]:
    """Every distinct zone of the list's members, with how many of them ``audience`` selects now: one GROUP BY."""
    condition = audience_condition(audience, campaign_id)
    selected = func.count() if condition is None else func.sum(case((condition, 1), else_=0), type_=Integer)
    stmt = (
        select(contacts.c.timezone, func.count(), selected)
        .join(list_members, list_members.c.contact_id == contacts.c.id)
        .where(list_members.c.list_id == list_id)
        .group_by(contacts.c.timezone)
    )
    return [ZoneSize(zone, members, int(chosen or 0)) for zone, members, chosen in conn.execute(stmt)]
