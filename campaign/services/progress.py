"""What is left of a campaign, and why: its messages counted by status (per wave and in all), when the queued
and deferred ones are due, and what holds back a campaign that is not sending.

``campaign send`` reports this after a run and ``campaign show`` shows it, so that neither says "sent" while
messages wait, nor stays silent about a paused campaign.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection

from campaign.models import UNFINISHED_MESSAGES, Campaign, CampaignStatus, MessageStatus, Wave, WaveStatus
from campaign.services.campaigns import find_campaign
from campaign.store import campaigns as campaign_store
from campaign.store import reports as report_store
from campaign.store.engine import Database


@dataclass(frozen=True, slots=True)
class Waiting:
    """Queued (or deferred) messages: how many, how many of them are due now, and the next due time of the rest."""

    count: int = 0
    due_now: int = 0
    next_due: datetime | None = None


@dataclass(frozen=True, slots=True)
class WaveProgress:
    """A wave and its messages counted by status (in :class:`MessageStatus` order, only statuses present), and
    when its queued and deferred ones are due (both in one: the next send of the wave)."""

    wave: Wave
    counts: dict[str, int]
    waiting: Waiting = Waiting()


@dataclass(frozen=True, slots=True)
class CampaignProgress:
    """A campaign, its messages counted by status, and when what is left is due."""

    campaign: Campaign
    waves: list[WaveProgress]
    counts: dict[str, int]
    queued: Waiting
    deferred: Waiting

    @property
    def unfinished(self) -> int:
        """Messages not final yet: queued, deferred or in a worker's hands."""
        return sum(self.counts.get(status.value, 0) for status in UNFINISHED_MESSAGES)

    @property
    def held(self) -> bool:
        """True when nothing of this campaign is sent until someone acts: a draft, a cancelled campaign, or a
        paused one with messages waiting."""
        status = self.campaign.status
        if status is CampaignStatus.PAUSED:
            return self.unfinished > 0
        return status in (CampaignStatus.DRAFT, CampaignStatus.CANCELLED)

    def hold(self) -> str | None:
        """Why this campaign is not sending, and the command that changes it; None when it is sending or sent."""
        remedy = self.remedy()
        if remedy is None:
            return None
        c = self.campaign
        if c.status is CampaignStatus.DRAFT:
            return f"{c.name} is a draft: {remedy}"
        why = f" ({c.status_reason})" if c.status is CampaignStatus.PAUSED and c.status_reason else ""
        return f"{c.name} is {c.status}{why}: {remedy}"

    def remedy(self) -> str | None:
        """What holds this campaign's messages back, and the command that sends them; None when it is sending
        or sent (:meth:`hold` says the same, starting with the campaign's name, status and its reason)."""
        c = self.campaign
        if c.status is CampaignStatus.DRAFT:
            return f"nothing is queued until it is launched: `campaign launch {c.name}`"
        if c.status is CampaignStatus.PAUSED:
            if self.unfinished:
                waiting = "1 message waits" if self.unfinished == 1 else f"{self.unfinished} messages wait"
                return f"{waiting}; `campaign resume {c.name}` sends {'it' if self.unfinished == 1 else 'them'}"
            if any(w.wave.status is WaveStatus.PENDING for w in self.waves):
                return f"no message waits; its later waves go out once it is resumed: `campaign resume {c.name}`"
            # Resumed, it is sending with nothing left: the next `campaign send` marks it sent.
            return f"no message is left to send; `campaign resume {c.name}` lets it finish"
        if c.status is CampaignStatus.CANCELLED:
            return "its unsent messages were cancelled and nothing more is sent"
        if c.status is CampaignStatus.SCHEDULED:
            return "its waves are queued when their time comes"
        return None


def campaign_progress(db: Database, ref: str) -> CampaignProgress:
    """The progress of one campaign (by name or id); raises :class:`NotFoundError`."""
    with db.read() as conn:
        return _progress(conn, find_campaign(conn, ref), datetime.now(UTC))


def progress_after_send(db: Database, ref: str | None, finished: Iterable[str] = ()) -> list[CampaignProgress]:
    """What a ``campaign send`` run should report: the campaign it was asked for, else every campaign that is
    sending or paused (it has messages left, or is waiting to be resumed) and those the run ``finished``."""
    if ref is not None:
        return [campaign_progress(db, ref)]
    names = set(finished)
    now = datetime.now(UTC)
    active = (CampaignStatus.SENDING, CampaignStatus.PAUSED)
    with db.read() as conn:
        return [
            _progress(conn, c, now) for c in campaign_store.all_campaigns(conn) if c.status in active or c.name in names
        ]


def _progress(conn: Connection, campaign: Campaign, now: datetime) -> CampaignProgress:
    rows = report_store.status_counts(conn, campaign.id, now)
    by_wave: dict[int, dict[str, int]] = {}
    for row in rows:
        by_wave.setdefault(row.wave_id, {})[row.status] = row.count
    pending = (MessageStatus.QUEUED.value, MessageStatus.DEFERRED.value)
    waves = [
        WaveProgress(
            w,
            _ordered(by_wave.get(w.id, {})),
            _waiting(r for r in rows if r.wave_id == w.id and r.status in pending),
        )
        for w in campaign_store.waves_of(conn, campaign.id)
    ]
    totals: dict[str, int] = {}
    for row in rows:
        totals[row.status] = totals.get(row.status, 0) + row.count
    return CampaignProgress(
        campaign,
        waves,
        _ordered(totals),
        _waiting(r for r in rows if r.status == MessageStatus.QUEUED.value),
        _waiting(r for r in rows if r.status == MessageStatus.DEFERRED.value),
    )


def _ordered(counts: dict[str, int]) -> dict[str, int]:
    """Counts in the order of :class:`MessageStatus` (queued, sending, sent, deferred, ...)."""
    return {s.value: counts[s.value] for s in MessageStatus if s.value in counts}


def _waiting(rows: Iterable[report_store.StatusCount]) -> Waiting:
    found = list(rows)
    later = [r.next_due for r in found if r.next_due is not None]
    return Waiting(sum(r.count for r in found), sum(r.due_now for r in found), min(later, default=None))
