"""Firing waves: what the scheduler service (and launch) call to turn a due wave into outbox rows, exactly once.

Contract:

* :func:`fire_times` lists every pending wave of every sending campaign with the instant it fires (its nominal
  instant, :func:`campaign.rules.timing.nominal_instant`), so the service can schedule a job per wave after a
  (re)start: the database is the only truth.
* :func:`fire_due` materialises every pending wave whose instant is at or before ``now``: in one transaction, a
  compare-and-set of the wave's status (``pending → enqueued``; a wave another process fired is skipped) and the
  ``INSERT ... SELECT`` of its audience with each message's own ``scheduled_at`` (its zone's send window, computed
  once per distinct zone). A wave whose expiry has passed is marked ``missed`` with the reason instead, and so is
  a wave planned before the launch whose own time had passed by then (a campaign launched three days before the
  event does not send its "-7d" last chance with the invitation); one added after the launch fires at once. Safe
  to call from several processes at once and again after a crash: nothing is materialised twice.
* A wave to those who attended the event, or did not (:data:`ATTENDANCE_AUDIENCES`), waits past its time for
  the event's attendee report: fired before one is imported, it would reach everyone or no one. It fires once a
  report is imported, or is missed, saying why, if none is before it expires.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection

from campaign.config import Settings
from campaign.models import Audience, CampaignStatus, Event, EventStatus, MessageStatus, Wave, WaveKind, WaveStatus
from campaign.render.localtime import organiser_clock
from campaign.rules.timing import (
    SendWindow,
    default_expiry,
    format_window,
    local_send_instant,
    nominal_instant,
    own_instant,
    parse_window,
)
from campaign.services.transitions import transition
from campaign.store import campaigns as campaign_store
from campaign.store import events as event_store
from campaign.store import materialise
from campaign.store import waves as wave_store
from campaign.store.engine import Database
from campaign.store.materialise import ZoneSchedule
from campaign.store.waves import DueWave, WaveSchedule

log = logging.getLogger(__name__)

# Only a sending campaign's waves fire: a draft has not started, a paused one waits for `campaign resume` (its
# waves then fire, or are missed if they expired meanwhile), a cancelled or sent one is over.
FIRING = (CampaignStatus.SENDING.value,)
# An invitation is topped up with list members who joined after it fired, while the event has not started; a
# campaign that became `sent` in between is sending again for them.
TOPPING_UP = (CampaignStatus.SENDING.value, CampaignStatus.SENT.value)
# Audiences that only an attendee report (`campaign attendees import`) can tell: a wave to one of them waits for
# the report, past its time if need be (a follow-up at +2h fired before any import went to everyone as not-attended,
# and to nobody as attended), and is missed if none comes before it expires.
ATTENDANCE_AUDIENCES = frozenset({Audience.ATTENDED, Audience.NOT_ATTENDED})
# The waves that fired: an invitation in one of these is topped up.
FIRED = (WaveStatus.ENQUEUED, WaveStatus.DONE)
# Members added up to this long before the invitation fired are looked at again by each top-up: a list member
# whose transaction began before the firing but committed after it is not seen by the firing, and its
# added_at is earlier. The (wave, contact) key keeps the others from being added twice.
TOP_UP_OVERLAP = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class FireTime:
    """A pending wave and the instant it fires."""

    wave_id: int
    campaign_id: int
    campaign: str
    wave: str
    fires_at: datetime


@dataclass(frozen=True, slots=True)
class Fired:
    """What :func:`fire_due` did with one wave: ``enqueued`` (with the rows added, and how many of them the send
    window or expiry left unsent) or ``missed`` (with the reason)."""

    wave_id: int
    campaign: str
    wave: str
    status: WaveStatus
    queued: int = 0
    suppressed: int = 0
    expired: int = 0
    reason: str | None = None
    topped_up: bool = False
    """An invitation that fired before, topped up with list members who joined since (not a second firing)."""


@dataclass(frozen=True, slots=True)
class Dropped:
    """What :func:`drop_left_audiences` did with one wave: how many of its messages not sent yet it cancelled."""

    campaign: str
    wave: str
    cancelled: int


# The audiences a contact leaves for good, with what took them out (a message's reason). A wave to one of them fires
# with who is in it then; by the time a message goes (a send window can hold it for a weekend), its contact may
# have left: "the last chance to register" must not reach someone who registered on Saturday.
LEFT_AUDIENCE = {
    Audience.NOT_REGISTERED: "registered since the wave fired",
    Audience.NOT_OPENED: "opened a message of the campaign since the wave fired",
    Audience.NOT_CLICKED: "clicked a link of the campaign since the wave fired",
    Audience.NOT_ATTENDED: "attended, the attendee report imported since the wave fired says",
}


def drop_left_audiences(db: Database, now: datetime, *, campaign_id: int | None = None) -> list[Dropped]:
    """Cancel the messages not sent yet (queued, deferred) of the fired waves of sending campaigns whose contacts
    left the wave's audience since (:data:`LEFT_AUDIENCE`), each with the reason; returns what was done, wave by
    wave (those with none cancelled left out). The scheduler does it every tick: a read a wave, and a write only
    for one with messages to cancel."""
    with db.read() as conn:
        fired = [
            d
            for d in wave_store.waves_in(conn, (WaveStatus.ENQUEUED,), FIRING, campaign_id)
            if d.schedule.wave.audience in LEFT_AUDIENCE
        ]
    dropped = []
    for due in fired:
        wave = due.schedule.wave
        with db.read() as conn:
            if not materialise.any_left_audience(conn, wave.id, wave.campaign_id, wave.audience):
                continue
        reason = f"not sent: {LEFT_AUDIENCE[wave.audience]}, so no longer in its audience ({wave.audience.value})"
        with db.write() as conn:
            cancelled = materialise.drop_left_audience(conn, wave.id, wave.campaign_id, wave.audience, reason, now)
        if cancelled:
            dropped.append(Dropped(due.campaign, wave.name, cancelled))
    return dropped


def wave_expiry(schedule: WaveSchedule, event_start: datetime, event_end: datetime) -> datetime:
    """When a wave stops being worth sending: its own instant, else the event start plus its expiry offset, else
    its kind's default (:func:`campaign.rules.timing.default_expiry`)."""
    wave = schedule.wave
    if wave.expires_at is not None:
        return wave.expires_at
    if schedule.expires_offset_seconds is not None:
        return event_start + timedelta(seconds=schedule.expires_offset_seconds)
    return default_expiry(wave.kind, event_start, event_end)


def planned_instant(schedule: WaveSchedule, event_start: datetime, launched_at: datetime) -> datetime:
    """When a wave fires for a campaign launched at ``launched_at`` (:func:`~campaign.rules.timing.nominal_instant`)."""
    wave = schedule.wave
    return nominal_instant(event_start, wave.offset, wave.send_at, launched_at)


def skipped_at_launch(schedule: WaveSchedule, event_start: datetime, launched_at: datetime) -> datetime | None:
    """The wave's own instant when the launch skips it, else None: it was planned before the launch (it existed
    then, and neither an edit of its timing nor its event moving has changed its time since) and its own time had
    passed by then. A campaign launched three days before the event must not send its "-7d last chance" with the
    invitation; a wave added after the launch with a past time fires at once, and so does one moved there after
    the launch (by an edit, or its event moving earlier)."""
    wave = schedule.wave
    planned = wave.planned_at or wave.created_at
    if planned is None or planned > launched_at:
        return None
    own = own_instant(event_start, wave.offset, wave.send_at)
    return own if own is not None and own < launched_at else None


def fire_times(db: Database) -> list[FireTime]:
    """Every pending wave of a sending campaign with the instant it fires, soonest first."""
    with db.read() as conn:
        pending = wave_store.waves_in(conn, (WaveStatus.PENDING,), FIRING, None)
    times = [
        FireTime(d.schedule.wave.id, d.schedule.wave.campaign_id, d.campaign, d.schedule.wave.name, _fires_at(d))
        for d in pending
    ]
    return sorted(times, key=lambda t: (t.fires_at, t.wave_id))


def fire_due(db: Database, settings: Settings, now: datetime, *, campaign_id: int | None = None) -> list[Fired]:
    """Materialise every wave due at ``now`` (see the module doc); returns what was done, wave by wave.

    Also tops up fired invitations with list members who joined since, while the event has not started (they
    get only the invitation and the waves still pending, never a reminder that went out before they joined).
    ``campaign_id`` limits it to one campaign (launch fires its own at-launch waves so).

    A wave that cannot be fired (an error in its data or the database) is logged and left as it is, and the
    others fire: one bad wave never holds up the rest, and the waves fired before it are reported.

    ``settings`` is not read: everything firing needs is in the waves' rows. It stays in the signature that the
    service, launch, the demo and event changes share, so that a setting firing comes to need (a limit on a
    wave's size, say) reaches it without changing every caller.
    """
    del settings
    with db.read() as conn:
        pending = wave_store.waves_in(conn, (WaveStatus.PENDING,), FIRING, campaign_id)
        fired_invitations = [
            d
            for d in wave_store.waves_in(conn, FIRED, TOPPING_UP, campaign_id)
            if d.schedule.wave.kind is WaveKind.INVITATION
        ]
    done: list[Fired] = []
    for due in pending:
        if _fires_at(due) <= now:
            _try(done, due, _fire, db, now)
    for due in fired_invitations:
        _try(done, due, _top_up, db, now)
    return done


def _try(
    done: list[Fired], due: DueWave, step: Callable[[Database, DueWave, datetime], Fired | None], db: Database,
    now: datetime,
) -> None:  # fmt: skip
    """Run one wave's step, adding what it did to ``done``; an error is logged, not raised (see fire_due)."""
    try:
        fired = step(db, due, now)
    except Exception:  # any error: its transaction rolled back, the wave is as it was, the next tick tries again
        log.exception("campaign %s: wave %s could not be fired", due.campaign, due.schedule.wave.name)
        return
    if fired is not None:
        done.append(fired)


def _fires_at(due: DueWave) -> datetime:
    # A sending campaign always has its launch instant; the event start stands in for a row that lacks it.
    return planned_instant(due.schedule, due.event_start, due.launched_at or due.event_start)


def _fire(db: Database, stale: DueWave, now: datetime) -> Fired | None:
    """Fire one due wave, or mark it missed; None when another process got to it first, or the campaign is no
    longer sending.

    Decided inside the write, from the wave read again and locked there (:func:`~campaign.store.waves.lock_due`),
    not from ``stale``: an edit or a cancel committed since the first read is seen, and one that comes later
    waits for this transaction (on PostgreSQL; SQLite serialises writes).
    """
    wave_id, campaign_id = stale.schedule.wave.id, stale.schedule.wave.campaign_id
    with db.write() as conn:
        due = wave_store.lock_due(conn, campaign_id, wave_id, (WaveStatus.PENDING,), FIRING)
        if due is None or _fires_at(due) > now:  # an edit moved it later: its own job fires it then
            return None
        wave = due.schedule.wave
        expiry = wave_expiry(due.schedule, due.event_start, due.event_end)
        reason = _passed_before_launch(due)
        # The audience first: only an attendance wave needs its event read.
        if reason is None and wave.audience in ATTENDANCE_AUDIENCES and _waits_for_report(conn, wave, campaign_id):
            if expiry > now:
                return None  # it waits for the attendee report: fired now, it would reach everyone or no one
            reason = (
                f"no attendee report of its event was imported before it expired at {_at(expiry, due)}: who attended "
                "is not known (`campaign attendees import`)"
            )
        elif expiry <= now and _fires_at(due) >= expiry:
            # No scheduler could have sent it (an event moved earlier, an edit behind `campaign waves`' back).
            reason = (
                f"it expired before it was due: due at {_at(_fires_at(due), due)}, it expired at {_at(expiry, due)}"
            )
        elif expiry <= now:
            reason = (
                f"due at {_at(_fires_at(due), due)}, it had expired at {_at(expiry, due)} by the time it could fire "
                f"({_at(now, due)}): nothing fired it in between (was the scheduler stopped, or the campaign paused?)"
            )
        if reason is not None:
            missed = wave_store.mark_missed(conn, wave.id, reason)
            return Fired(wave.id, due.campaign, wave.name, WaveStatus.MISSED, reason=reason) if missed else None
        window = parse_window(due.schedule.window) if due.schedule.window else None
        # The compare-and-set and the INSERT ... SELECT commit together: a crash leaves neither.
        if not wave_store.mark_enqueued(conn, wave.id, expires_at=expiry, now=now):
            return None
        # Every stored zone, not the list's: read through an index, and the extra zones unused (stored_zones).
        zones = zone_schedules(materialise.stored_zones(conn), due.organiser_zone, now, window, expiry)
        counts = materialise.materialise_wave(
            conn,
            wave_id=wave.id,
            campaign_id=wave.campaign_id,
            list_id=due.list_id,
            audience=wave.audience,
            zones=zones,
            fallback_at=now,
            now=now,
        )
    return _enqueued(due, counts)


def waits_for_attendance(wave: Wave, event: Event) -> bool:
    """Whether ``wave`` waits for ``event``'s attendee report: it is to those who attended, or did not, and no
    report has been imported whole (not: no attendance stored; a report where nobody attended has none, and one
    is written in batches)."""
    return wave.audience in ATTENDANCE_AUDIENCES and event.attendance_reported_at is None


def _waits_for_report(conn: Connection, wave: Wave, campaign_id: int) -> bool:
    event = event_store.of_campaign(conn, campaign_id)
    return event is not None and waits_for_attendance(wave, event)


def _passed_before_launch(due: DueWave) -> str | None:
    """Why the launch skips a wave (:func:`skipped_at_launch`); None when it does not."""
    if due.launched_at is None:
        return None
    own = skipped_at_launch(due.schedule, due.event_start, due.launched_at)
    if own is None:
        return None
    return f"its time ({_at(own, due)}) had passed when the campaign was launched ({_at(due.launched_at, due)})"


def _top_up(db: Database, stale: DueWave, now: datetime) -> Fired | None:
    """Add the invitation for list members who joined since it fired; None when there were none.

    Whether anyone joined is read first, in a read transaction, through the (list, added_at) index: the usual
    answer is no one, and on SQLite a write transaction would take the database's one write lock every tick.
    """
    wave = stale.schedule.wave
    expiry = wave_expiry(stale.schedule, stale.event_start, stale.event_end)
    if wave.enqueued_at is None or now >= min(expiry, stale.event_start):
        return None
    since = wave.enqueued_at - TOP_UP_OVERLAP
    with db.read() as conn:
        if not materialise.joined_since(conn, stale.list_id, since):
            return None
    with db.write() as conn:
        # Read again under the write, locked as firing does: the campaign may have been cancelled, or the wave
        # cancelled, meanwhile.
        due = wave_store.lock_due(conn, wave.campaign_id, wave.id, FIRED, TOPPING_UP)
        if due is None or due.schedule.wave.kind is not WaveKind.INVITATION:
            return None
        # Nobody new is invited to a cancelled event (its done invitation cannot be cancelled: it is history).
        event = event_store.of_campaign(conn, wave.campaign_id)
        if event is None or event.status is EventStatus.CANCELLED:
            return None
        expiry = wave_expiry(due.schedule, due.event_start, due.event_end)
        if now >= min(expiry, due.event_start):
            return None
        zones = materialise.audience_zones(conn, due.list_id, since)
        if not zones:
            return None
        window = parse_window(due.schedule.window) if due.schedule.window else None
        counts = materialise.materialise_wave(
            conn,
            wave_id=wave.id,
            campaign_id=wave.campaign_id,
            list_id=due.list_id,
            audience=due.schedule.wave.audience,
            zones=zone_schedules(zones, due.organiser_zone, now, window, expiry),
            fallback_at=now,
            now=now,
            added_since=since,
        )
        if not counts:
            return None
        if counts.get(MessageStatus.QUEUED.value):
            # Something to send again: a done invitation and a sent campaign reopen (as `campaign retry` does).
            campaign_store.set_waves_status(conn, [wave.id], WaveStatus.ENQUEUED, was=WaveStatus.DONE)
            reopen = {CampaignStatus.SENT}
            transition(
                conn, wave.campaign_id, CampaignStatus.SENDING, now=now, reason="new list members", only_from=reopen,
                strict=False,
            )  # fmt: skip
    return replace(_enqueued(due, counts), topped_up=True)


def _enqueued(due: DueWave, counts: dict[str, int]) -> Fired:
    wave = due.schedule.wave
    return Fired(
        wave.id,
        due.campaign,
        wave.name,
        WaveStatus.ENQUEUED,
        queued=counts.get(MessageStatus.QUEUED.value, 0),
        suppressed=counts.get(MessageStatus.SUPPRESSED.value, 0),
        expired=counts.get(MessageStatus.EXPIRED.value, 0),
    )


def zone_schedules(
    zones: Sequence[str | None],
    organiser_zone: str,
    start: datetime,
    window: SendWindow | None,
    expiry: datetime,
) -> list[ZoneSchedule]:
    """Each zone's send instant for a wave firing at ``start``, computed once per distinct zone (a contact
    without a zone, or with one this machine does not know, gets the organiser's); None with the reason when
    the zone has no instant inside the window before ``expiry``."""
    organiser = ZoneInfo(organiser_zone)
    schedules = []
    for name in zones:
        zone = _zone(name, organiser)
        at = local_send_instant(start, zone, window, expiry)
        error = None
        if at is None:
            inside = f"inside the send window {format_window(window)} " if window else ""
            error = (
                f"no time {inside}in {zone.key} before the wave expired at {organiser_clock(expiry, organiser_zone)}"
            )
        schedules.append(ZoneSchedule(name, at, error))
    return schedules


def _zone(name: str | None, organiser: ZoneInfo) -> ZoneInfo:
    return (_known_zone(name) if name else None) or organiser


@cache
def _known_zone(name: str) -> ZoneInfo | None:
    """The zone of this name, None if this machine does not know it. Held for the process: ZoneInfo's own cache
    keeps only the last few zones, and every firing would read hundreds of tz files again."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _at(instant: datetime, due: DueWave) -> str:
    """An instant of a wave's reasons, as staff read them: on its organiser's clock, UTC beside."""
    return organiser_clock(instant, due.organiser_zone)
