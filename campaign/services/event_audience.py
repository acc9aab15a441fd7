"""An event's campaigns, and who a change to the event would tell: what a confirmation page states before
:func:`~campaign.services.events.update_event` or :func:`~campaign.services.events.cancel_event` runs.

Contract (the same split as those services make, :data:`~campaign.services.events.LAUNCHED`):

* A launched campaign (scheduled, sending, paused, sent) tells everyone its invitation reached: its
  :attr:`~campaign.models.Audience.INVITED` audience, counted by the condition the notice's wave is filled with
  (:mod:`campaign.store.audiences`), suppressed addresses included, as a wave firing now would count them.
  An update tells them only when the time or place changes
  (:data:`~campaign.services.events.RESCHEDULING_FIELDS`); a cancellation always.
* A draft tells nobody (on a cancellation it is cancelled itself); a cancelled campaign is left alone.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from campaign.models import Audience, Campaign, CampaignStatus, Event
from campaign.services.events import LAUNCHED
from campaign.store import audiences
from campaign.store import campaigns as campaign_store
from campaign.store.engine import Database


@dataclass(frozen=True, slots=True)
class CampaignAudience:
    """One campaign of an event: how many people a notice about the event would reach now (0 for a campaign
    that is not launched), and whether it is launched."""

    campaign: Campaign
    invited: int

    @property
    def launched(self) -> bool:
        """Whether its invitation has gone out (or is going out): a notice reaches its invited audience."""
        return self.campaign.status in LAUNCHED


def campaigns_by_event(db: Database) -> dict[int, list[Campaign]]:
    """Every campaign, by its event's id (oldest first within an event)."""
    by_event: dict[int, list[Campaign]] = defaultdict(list)
    with db.read() as conn:
        for campaign in sorted(campaign_store.all_campaigns(conn), key=lambda c: c.id):
            by_event[campaign.event_id].append(campaign)
    return dict(by_event)


def event_audiences(db: Database, event: Event) -> list[CampaignAudience]:
    """Each campaign of ``event`` but the cancelled ones, with the people a notice would reach now."""
    found = []
    with db.read() as conn:
        for campaign in sorted(campaign_store.all_campaigns(conn), key=lambda c: c.id):
            if campaign.event_id != event.id or campaign.status is CampaignStatus.CANCELLED:
                continue
            invited = 0
            if campaign.status in LAUNCHED:
                sizes = audiences.zone_sizes(conn, campaign.list_id, campaign.id, Audience.INVITED)
                invited = sum(size.selected for size in sizes)
            found.append(CampaignAudience(campaign, invited))
    return found
