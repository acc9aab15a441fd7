"""What ``campaign status`` and ``campaign plan`` show: a campaign's waves, their audiences now, their messages,
and the timeline still to come with each zone's send time.

Contract:

* Nothing here decides anything: planned instants and expiries come from :func:`campaign.services.waves.list_waves`
  (:func:`~campaign.services.scheduling.planned_instant`, :func:`~campaign.services.scheduling.wave_expiry`),
  message counts from :mod:`campaign.services.progress`, each zone's send instant from
  :func:`campaign.services.scheduling.zone_schedules`: once per distinct zone of the list, never per recipient.
* A wave's audience size is how many contacts its audience selects now while it is to come (it is selected again
  when it fires: registrations change it), and its message count once it fired.
* A wave the launch skips (:func:`~campaign.services.scheduling.skipped_at_launch`, as ``waves list`` marks it:
  in a draft, one a launch now would skip) is not to come, pending or not: both commands say it is skipped and
  why, and neither counts its passed time as a next send.
* Local times are written in the organiser's default locale (``render.default_locale``) with Babel, beside the
  CLDR name of the zone; instants are UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_skeleton, format_time
from sqlalchemy import Connection

from campaign.config import Settings
from campaign.models import Audience, Campaign, Event
from campaign.render.localtime import locale_of, plain, zone_name
from campaign.rules.timing import parse_window
from campaign.services.progress import CampaignProgress, Waiting, campaign_progress
from campaign.services.scheduling import zone_schedules
from campaign.services.waves import WaveLine, list_waves
from campaign.store import audiences
from campaign.store.audiences import ZoneSize
from campaign.store.engine import Database


@dataclass(frozen=True, slots=True)
class WaveState:
    """One wave for ``campaign status``: as ``campaign waves list`` shows it, its audience size (see the module
    doc), its messages counted by state and when the waiting ones are due."""

    line: WaveLine
    audience_size: int
    counts: dict[str, int]
    waiting: Waiting

    @property
    def next_send(self) -> datetime | None:
        """When this wave sends next: its planned instant while it is to come, else its earliest queued or deferred
        message not due yet (None when none waits, or all that wait are due now: see ``waiting.due_now``; and for
        a wave the launch skips, which never sends)."""
        if self.line.to_come:
            return self.line.planned
        return self.waiting.next_due


@dataclass(frozen=True, slots=True)
class CampaignState:
    """A campaign for ``campaign status``: its event, its waves in time order, and its progress."""

    campaign: Campaign
    event: Event
    waves: list[WaveState]
    progress: CampaignProgress

    @property
    def next_send(self) -> datetime | None:
        """The earliest next send of its waves (None when nothing waits but what is due now)."""
        return min((w.next_send for w in self.waves if w.next_send is not None), default=None)

    @property
    def due_now(self) -> int:
        """Queued or deferred messages due now (sent by the next delivery run)."""
        return self.progress.queued.due_now + self.progress.deferred.due_now


@dataclass(frozen=True, slots=True)
class ZoneSend:
    """When one zone of a wave's audience gets it: ``zone`` as contacts have it (None: without one), the zone
    shown (the organiser's for those), its CLDR name, how many contacts the audience selects there now, the
    instant (UTC; None with ``error`` when the window leaves no time before the expiry) and its local time."""

    zone: str | None
    shown_zone: str
    zone_name: str
    contacts: int
    at: datetime | None
    local: str
    utc: str
    error: str | None = None
    wall_clock: datetime | None = None
    """The local wall-clock time (naive), to compare zones' local times."""


@dataclass(frozen=True, slots=True)
class PlannedWave:
    """A wave still to come: its line, its instant written in the organiser's zone and in UTC, its audience
    size now, and each zone's send time (:class:`ZoneSend`, soonest first)."""

    line: WaveLine
    local: str
    utc: str
    audience_size: int
    zones: list[ZoneSend]

    @property
    def earliest_local(self) -> ZoneSend | None:
        """The zone whose local time is the earliest when it gets the wave (westmost, for a wave without a
        window, which everyone gets at one instant)."""
        timed = [z for z in self.zones if z.wall_clock is not None]
        return min(timed, key=lambda z: (z.wall_clock, z.shown_zone), default=None)

    @property
    def latest_local(self) -> ZoneSend | None:
        """The zone whose local time is the latest when it gets the wave."""
        timed = [z for z in self.zones if z.wall_clock is not None]
        return max(timed, key=lambda z: (z.wall_clock, z.shown_zone), default=None)


@dataclass(frozen=True, slots=True)
class CampaignPlan:
    """The waves of a campaign still to come, in time order (``campaign plan``), and those the launch skips or
    skipped (a draft's: a launch now would), with why (``WaveLine.skipped``)."""

    campaign: Campaign
    event: Event
    locale: str
    waves: list[PlannedWave]
    progress: CampaignProgress
    skipped: list[WaveLine]


def campaign_status(db: Database, ref: str, now: datetime | None = None) -> CampaignState:
    """Every wave of a campaign with its audience size, messages, next send and expiry (see the module doc)."""
    now = now or datetime.now(UTC)
    plan = list_waves(db, ref, now)
    progress = campaign_progress(db, ref)
    by_name = {w.wave.name: w for w in progress.waves}
    sizes = _audience_sizes(db, plan.campaign, plan.waves)
    states = []
    for line in _in_time_order(plan.waves):
        wave = by_name.get(line.name)
        counts = wave.counts if wave is not None else {}
        waiting = wave.waiting if wave is not None else Waiting()
        size = sizes[line.name] if line.to_come else sum(counts.values())
        states.append(WaveState(line, size, counts, waiting))
    return CampaignState(plan.campaign, plan.event, states, progress)


def campaign_plan(db: Database, settings: Settings, ref: str, now: datetime | None = None) -> CampaignPlan:
    """The waves of a campaign still to come in time order, each with every zone's send time (see the module
    doc), and those the launch skips."""
    now = now or datetime.now(UTC)
    plan = list_waves(db, ref, now)
    locale = settings.render.default_locale
    organiser = plan.event.timezone
    in_order = _in_time_order(plan.waves)
    pending = [w for w in in_order if w.to_come]
    with db.read() as conn:
        sizes = {line.name: _zone_sizes(conn, plan.campaign, line) for line in pending}
    waves = []
    for line in pending:
        assert line.planned is not None  # a pending wave always has its planned instant
        zones = _zone_sends(line, sizes[line.name], organiser, locale)
        waves.append(
            PlannedWave(
                line,
                local_label(line.planned, organiser, locale),
                local_label(line.planned, "UTC", locale),
                sum(z.selected for z in sizes[line.name]),
                zones,
            )
        )
    skipped = [w for w in in_order if w.skipped is not None]
    return CampaignPlan(plan.campaign, plan.event, locale, waves, campaign_progress(db, ref), skipped)


def local_label(instant: datetime, zone: str, locale: str) -> str:
    """``Tue, Jun 16, 9:00 AM`` (``mar, 16 jun, 9:00`` in Spanish): an instant's wall-clock time in ``zone``,
    written in ``locale`` by Babel, with plain spaces."""
    loc = locale_of(locale)
    tz = ZoneInfo(zone)
    local = instant.astimezone(tz)
    day = format_skeleton("MMMEd", local, tzinfo=tz, locale=loc)
    return plain(f"{day}, {format_time(local, 'short', tzinfo=tz, locale=loc)}")


def _audience_sizes(db: Database, campaign: Campaign, lines: list[WaveLine]) -> dict[str, int]:
    """How many contacts each wave still to come selects now."""
    with db.read() as conn:
        return {line.name: sum(z.selected for z in _zone_sizes(conn, campaign, line)) for line in lines if line.to_come}


def _zone_sizes(conn: Connection, campaign: Campaign, line: WaveLine) -> list[ZoneSize]:
    return audiences.zone_sizes(conn, campaign.list_id, campaign.id, Audience(line.audience))


def _in_time_order(lines: list[WaveLine]) -> list[WaveLine]:
    return sorted(lines, key=lambda w: (w.planned or datetime.max.replace(tzinfo=UTC), w.name))


def _zone_sends(line: WaveLine, sizes: list[ZoneSize], organiser: str, locale: str) -> list[ZoneSend]:
    """Each zone's send time for a pending wave: :func:`zone_schedules`, once per distinct zone."""
    assert line.planned is not None
    window = parse_window(line.window) if line.window else None
    schedules = zone_schedules([z.zone for z in sizes], organiser, line.planned, window, line.expires)
    sends = []
    for size, schedule in zip(sizes, schedules, strict=True):
        shown = _shown_zone(size.zone, organiser)
        at = schedule.scheduled_at
        reference = at or line.planned
        sends.append(
            ZoneSend(
                zone=size.zone,
                shown_zone=shown,
                zone_name=plain(zone_name(reference, shown, locale)),
                contacts=size.selected,
                at=at,
                local=local_label(at, shown, locale) if at else "",
                utc=local_label(at, "UTC", locale) if at else "",
                error=schedule.error,
                wall_clock=at.astimezone(ZoneInfo(shown)).replace(tzinfo=None) if at else None,
            )
        )
    never = datetime.max.replace(tzinfo=UTC)
    return sorted(sends, key=lambda s: (s.at or never, s.zone is None, s.shown_zone))


def _shown_zone(zone: str | None, organiser: str) -> str:
    """The zone a contact's times are computed in: its own, else (none, or one this machine does not know) the
    organiser's, as :func:`zone_schedules` does."""
    if not zone:
        return organiser
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return organiser
    return zone
