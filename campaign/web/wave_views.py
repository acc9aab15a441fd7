"""What a campaign's page shows of its waves besides their table: the time axis, and each wave's messages counted.

* :func:`wave_timeline`: the waves with a planned time on an axis around the event start
  (:func:`campaign.rules.timeline.layout`), ``now`` marked; drawn by ``_waves.html`` as an SVG, the table beside
  it being the textual version.
* :func:`wave_status`: each wave's messages counted by status, from one GROUP BY over the campaign's outbox rows
  (:func:`campaign.services.progress.campaign_progress`), in the columns of :data:`STATUS_COLUMNS` and ``other``
  (bounced, expired, suppressed, cancelled); ``live`` while the campaign is sending, which is when its page polls
  the fragment (:data:`~campaign.rules.routes.CAMPAIGN_WAVES_STATUS`) again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from campaign.models import Campaign, CampaignStatus
from campaign.rules.timeline import Timeline, layout
from campaign.services.progress import campaign_progress
from campaign.services.waves import WavePlan
from campaign.store.engine import Database

STATUS_COLUMNS = ("queued", "sending", "sent", "deferred", "failed")
"""The message statuses the live table has a column for; the rest are counted under ``other``."""

POLL_SECONDS = 5
"""How often the page asks for the counts again while the campaign is sending."""


@dataclass(frozen=True, slots=True)
class WaveCounts:
    """One wave's messages: a count per :data:`STATUS_COLUMNS` entry, the ``other`` ones, and the total."""

    name: str
    status: str
    counts: dict[str, int]
    other: int
    total: int


@dataclass(frozen=True, slots=True)
class WaveStatus:
    """A campaign's waves counted, and whether its page should keep polling (it is sending)."""

    campaign: Campaign
    waves: list[WaveCounts]
    at: datetime

    @property
    def live(self) -> bool:
        """True while the campaign is sending: the counts change without anyone acting."""
        return self.campaign.status is CampaignStatus.SENDING


def wave_timeline(plan: WavePlan, now: datetime | None = None) -> Timeline:
    """The waves of ``plan`` that have a planned time, placed around the event start; ``now`` marked."""
    points = [(line.name, line.planned) for line in plan.waves if line.planned is not None]
    return layout(plan.event.starts_at, points, now or datetime.now(UTC))


def wave_status(db: Database, ref: str) -> WaveStatus:
    """The messages of campaign ``ref`` counted by wave and status (NotFoundError for an unknown one)."""
    progress = campaign_progress(db, ref)
    waves = []
    for wave in progress.waves:
        shown = {status: wave.counts.get(status, 0) for status in STATUS_COLUMNS}
        total = sum(wave.counts.values())
        waves.append(WaveCounts(wave.wave.name, wave.wave.status.value, shown, total - sum(shown.values()), total))
    return WaveStatus(progress.campaign, waves, datetime.now(UTC))
