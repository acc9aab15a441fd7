"""The campaign lifecycle: launch, pause, resume, cancel, retry.

Every move is checked against :data:`campaign.models.CAMPAIGN_TRANSITIONS`; an invalid one is a clear
:class:`ValidationError`. Launch runs the same checks as ``campaign check`` and refuses on any error, so a
template mistake is found before the first message, never mid-send.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection

from campaign.config import Settings
from campaign.exceptions import ValidationError
from campaign.models import (
    GIVEN_UP_MESSAGES,
    UNFINISHED_MESSAGES,
    CampaignStatus,
    MessageStatus,
    WaveStatus,
    check_campaign_transition,
    check_wave_transition,
)
from campaign.services.campaigns import CampaignDetails, get_campaign
from campaign.services.rendering import CheckReport, check_campaign
from campaign.services.scheduling import Fired, fire_due
from campaign.store import campaigns as campaign_store
from campaign.store import outbox
from campaign.store import reports as report_store
from campaign.store.engine import Database


class CheckFailedError(ValidationError):
    """Launch refused: the pre-launch check found errors (in ``report``)."""

    def __init__(self, report: CheckReport) -> None:
        super().__init__(f"campaign {report.campaign} has {len(report.errors)} error(s); launch refused")
        self.report = report


@dataclass(frozen=True, slots=True)
class LaunchResult:
    """What launch enqueued; the waves it marked missed instead of firing (each with its reason), and the names
    of those still to come (``campaign serve`` fires them at their time)."""

    campaign: str
    queued: int
    suppressed: int
    report: CheckReport
    missed: tuple[Fired, ...] = ()
    pending: tuple[str, ...] = ()


def launch(db: Database, settings: Settings, key: bytes, ref: str) -> LaunchResult:
    """Check, then start sending: every wave due now (the invitation, at launch) fires
    (:func:`campaign.services.scheduling.fire_due`)."""
    details = get_campaign(db, ref)
    if details.campaign.status is not CampaignStatus.DRAFT:
        raise ValidationError(f"only a draft can be launched; {details.campaign.name} is {details.campaign.status}")
    report = check_campaign(db, settings, key, ref)
    if not report.ok:
        raise CheckFailedError(report)
    now = datetime.now(UTC)
    with db.write() as conn:
        campaign_store.set_status(conn, details.campaign.id, CampaignStatus.SENDING, None, now)
    # The waves due at launch (the invitation, and any whose time has passed) fire as the scheduler fires every
    # wave, exactly once: a crash right here leaves them pending, for the scheduler to fire.
    fired = fire_due(db, settings, now, campaign_id=details.campaign.id)
    with db.read() as conn:
        counts = report_store.counts(conn, details.campaign.id)
        waves = campaign_store.waves_of(conn, details.campaign.id)
    statuses = [status for by_status in counts.values() for status in by_status.items()]
    queued = sum(n for s, n in statuses if s == MessageStatus.QUEUED.value)
    suppressed = sum(n for s, n in statuses if s == MessageStatus.SUPPRESSED.value)
    missed = tuple(f for f in fired if f.status is WaveStatus.MISSED)
    pending = tuple(w.name for w in waves if w.status is WaveStatus.PENDING)
    return LaunchResult(details.campaign.name, queued, suppressed, report, missed, pending)


def move(db: Database, ref: str, target: CampaignStatus, reason: str | None = None) -> CampaignDetails:
    """Pause, resume (back to sending) or cancel a campaign; cancelling also cancels its unsent messages."""
    details = get_campaign(db, ref)
    check_campaign_transition(details.campaign.status, target)
    if target is CampaignStatus.SENDING and details.campaign.status is not CampaignStatus.PAUSED:
        # Draft → sending is launch's move (with its checks and enqueue), not resume's.
        raise ValidationError(
            f"only a paused campaign can be resumed; {details.campaign.name} is {details.campaign.status}"
        )
    now = datetime.now(UTC)
    with db.write() as conn:
        # First, so that a wave whose messages all ended meanwhile (a run that paused, a retry) is done, not
        # left enqueued, nor cancelled below with nothing of it cancelled.
        settle_waves(conn, details.campaign.id)
        campaign_store.set_status(conn, details.campaign.id, target, reason, now)
        if target is CampaignStatus.CANCELLED:
            # Rows in a worker's hands too: a 250 still marks them sent, anything else leaves them cancelled.
            unfinished = sorted(s.value for s in UNFINISHED_MESSAGES)
            outbox.set_status_where(conn, details.campaign.id, unfinished, MessageStatus.CANCELLED.value, now)
            _cancel_waves(conn, details.campaign.id)
    return get_campaign(db, ref)


def retry_failed(db: Database, ref: str) -> int:
    """Queue the campaign's failed and expired messages again, on purpose; returns how many.

    Their waves, if done, are enqueued again, and a sent campaign is sending again.
    """
    details = _retryable(db, ref)
    now = datetime.now(UTC)
    with db.write() as conn:
        again = sorted(s.value for s in GIVEN_UP_MESSAGES)
        count = outbox.set_status_where(conn, details.campaign.id, again, MessageStatus.QUEUED.value, now)
        settle_waves(conn, details.campaign.id)
        if count and details.campaign.status is CampaignStatus.SENT:
            campaign_store.set_status(conn, details.campaign.id, CampaignStatus.SENDING, "retrying", now)
    return count


def retry_deferred(db: Database, ref: str) -> int:
    """Make the campaign's deferred messages due now instead of at their backoff time; returns how many.

    They go out at the next ``campaign send`` (once resumed, if the campaign is paused).
    """
    details = _retryable(db, ref)
    with db.write() as conn:
        return outbox.retry_deferred_now(conn, details.campaign.id, datetime.now(UTC))


def _retryable(db: Database, ref: str) -> CampaignDetails:
    details = get_campaign(db, ref)
    if details.campaign.status not in (CampaignStatus.SENDING, CampaignStatus.PAUSED, CampaignStatus.SENT):
        raise ValidationError(f"{details.campaign.name} is {details.campaign.status}: there is nothing to retry")
    return details


def finish_campaigns(db: Database, now: datetime, campaign_id: int | None = None) -> list[str]:
    """Settle what a delivery run leaves behind; returns the names of the campaigns that became ``sent``.

    The waves of sending and paused campaigns (only ``campaign_id``, when given) follow their messages (see
    :func:`settle_waves`): a campaign that paused itself on its last messages has them all final too. Sending
    campaigns with nothing left to send and no wave waiting become ``sent`` at ``now``: the caller's clock (the
    delivery worker's, the scheduler's, the demo's compressed one), not the real one.
    """
    finished = []
    with db.write() as conn:
        for campaign in campaign_store.all_campaigns(conn):
            if campaign.status not in (CampaignStatus.SENDING, CampaignStatus.PAUSED):
                continue
            if campaign_id is not None and campaign.id != campaign_id:
                continue
            unfinished = settle_waves(conn, campaign.id)
            if campaign.status is not CampaignStatus.SENDING:
                continue
            waiting = any(w.status is WaveStatus.PENDING for w in campaign_store.waves_of(conn, campaign.id))
            # Every message belongs to a wave: no wave with a message left means no message left. Not a count,
            # which would read every message scheduled for later each time a worker finds nothing due.
            if not waiting and not unfinished:
                campaign_store.set_status(conn, campaign.id, CampaignStatus.SENT, None, now)
                finished.append(campaign.name)
    return finished


def settle_waves(conn: Connection, campaign_id: int) -> set[int]:
    """Waves follow their messages: an enqueued wave whose messages are all final becomes ``done``, and a done
    wave whose messages were queued again (``campaign retry``) is ``enqueued`` again. Pending and cancelled
    waves stay as they are. Returns the ids of the waves with messages not final yet."""
    unfinished = campaign_store.waves_with_unfinished(conn, campaign_id)
    done, reopened = [], []
    for wave in campaign_store.waves_of(conn, campaign_id):
        if wave.status is WaveStatus.ENQUEUED and wave.id not in unfinished:
            done.append(wave.id)
        elif wave.status is WaveStatus.DONE and wave.id in unfinished:
            reopened.append(wave.id)
    _move_waves(conn, done, WaveStatus.ENQUEUED, WaveStatus.DONE)
    _move_waves(conn, reopened, WaveStatus.DONE, WaveStatus.ENQUEUED)
    return unfinished


def _cancel_waves(conn: Connection, campaign_id: int) -> None:
    """Cancel the waves of a cancelled campaign that are not done: waiting, or enqueued with messages left (its
    caller settled them first, so an enqueued wave has some)."""
    waves = campaign_store.waves_of(conn, campaign_id)
    for source in (WaveStatus.PENDING, WaveStatus.ENQUEUED):
        _move_waves(conn, [w.id for w in waves if w.status is source], source, WaveStatus.CANCELLED)


def _move_waves(
    conn: Connection,
    wave_ids: list[int],
    source: WaveStatus,
    target: WaveStatus,
    *,
    enqueued_at: datetime | None = None,
) -> None:
    """Move these waves from ``source`` to ``target``, a move :func:`check_wave_transition` allows."""
    if wave_ids:
        check_wave_transition(source, target)
        campaign_store.set_waves_status(conn, wave_ids, target, was=source, enqueued_at=enqueued_at)
