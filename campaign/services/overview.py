"""The dashboard's list of campaigns: each campaign's line of ``campaign report --all``, its audience and its next
wave.

Contract: :func:`campaign_overviews` gives one :class:`CampaignOverview` per campaign, newest first. The tally is
:func:`campaign.services.reports.campaign_lines`'s (the same numbers as the command line's); the audience is the
size of the campaign's list now; the next wave is the first wave still to come
(:attr:`campaign.services.waves.WaveLine.to_come`) by its planned instant, as ``campaign waves list`` plans it (a
draft's as if launched now).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from campaign.services.contacts import list_lists
from campaign.services.report_model import CampaignLine
from campaign.services.reports import campaign_lines
from campaign.services.waves import WaveLine, list_waves
from campaign.store.engine import Database


@dataclass(frozen=True, slots=True)
class CampaignOverview:
    """One campaign on the dashboard."""

    line: CampaignLine
    audience: int
    """The members of the campaign's list."""
    next_wave: WaveLine | None
    """The first wave still to come, or None."""


def campaign_overviews(db: Database, now: datetime | None = None) -> list[CampaignOverview]:
    """Every campaign, newest first (see the module doc)."""
    now = now or datetime.now(UTC)
    sizes = {contact_list.name: contact_list.size for contact_list in list_lists(db)}
    overviews = []
    for line in campaign_lines(db):
        plan = list_waves(db, str(line.campaign.id), now)
        to_come = [wave for wave in plan.waves if wave.to_come]
        # A wave to come is always planned (list_waves plans every pending wave); the guard is for the type.
        next_wave = min(to_come, key=lambda wave: wave.planned or now, default=None)
        overviews.append(CampaignOverview(line, sizes.get(line.campaign.list_name, 0), next_wave))
    return overviews
