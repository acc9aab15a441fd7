"""The campaign lifecycle: launch, pause, resume, cancel, retry, and what a delivery run settles (completion,
the breaker's pause).

Contract: every status move goes through the one checked transition,
:func:`campaign.services.transitions.transition`: allowed by :data:`campaign.models.CAMPAIGN_TRANSITIONS` and made
as a conditional ``UPDATE`` (so two processes never disagree); an invalid one is a clear :class:`ValidationError`.
Launch runs the same checks as ``campaign check`` and refuses on any error, so a template mistake is found before
the first message, never mid-send. Completion (:func:`finish_campaigns`) is ``sending → sent`` only while nothing
is left to send, decided in the same statement: two idle workers never both mark a campaign sent.
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
    EventStatus,
    MessageStatus,
    WaveKind,
    WaveStatus,
    check_campaign_transition,
    check_wave_transition,
)
from campaign.rules.wording import counted
from campaign.services.campaigns import CampaignDetails, get_campaign
from campaign.services.rendering import CheckReport, check_campaign
from campaign.services.scheduling import Fired, fire_due
from campaign.services.transitions import transition
from campaign.store import campaigns as campaign_store
from campaign.store import events as event_store
from campaign.store import outbox
from campaign.store import reports as report_store
from campaign.store.engine import Database


class CheckFailedError(ValidationError):
    """Launch refused: the pre-launch check found errors (in ``report``)."""

    def __init__(self, report: CheckReport) -> None:
        super().__init__(f"campaign {report.campaign} has {counted(len(report.errors), 'error')}; launch refused")
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
        transition(conn, details.campaign.id, CampaignStatus.SENDING, now=now, only_from={CampaignStatus.DRAFT})
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
        # Resume is paused → sending only; the table's other ways into sending are launch's and retry's.
        only_from = {CampaignStatus.PAUSED} if target is CampaignStatus.SENDING else None
        transition(conn, details.campaign.id, target, now=now, reason=reason, only_from=only_from)
        if target is CampaignStatus.CANCELLED:
            # Rows in a worker's hands too: a 250 still marks them sent, anything else leaves them cancelled.
            unfinished = sorted(s.value for s in UNFINISHED_MESSAGES)
            outbox.set_status_where(conn, details.campaign.id, unfinished, MessageStatus.CANCELLED.value, now)
            _cancel_waves(conn, details.campaign.id)
    return get_campaign(db, ref)


def retry_failed(db: Database, ref: str) -> int:
    """Queue the campaign's failed and expired messages again, on purpose; returns how many.

    Their waves, if done, are enqueued again, and a sent campaign is sending again. Once the event is cancelled,
    only the cancellation notice's are: the invitations and reminders of a cancelled event are never sent.
    """
    details = _retryable(db, ref)
    now = datetime.now(UTC)
    with db.write() as conn:
        # The event as this write finds it: one cancelled since the read above has its invitations left alone.
        event = event_store.of_campaign(conn, details.campaign.id)
        only = [WaveKind.CANCELLATION] if event is None or event.status is EventStatus.CANCELLED else None
        again = sorted(s.value for s in GIVEN_UP_MESSAGES)
        count = outbox.set_status_where(conn, details.campaign.id, again, MessageStatus.QUEUED.value, now, kinds=only)
        settle_waves(conn, details.campaign.id)
        if count:
            # A sent campaign is sending again; a sending or paused one stays as it is.
            reopen = {CampaignStatus.SENT}
            transition(
                conn,
                details.campaign.id,
                CampaignStatus.SENDING,
                now=now,
                reason="retrying",
                only_from=reopen,
                strict=False,
            )
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
            # Checked again by the move itself (one conditional UPDATE): another worker may have sent the last
            # message, or finished the campaign, since this transaction began.
            if not waiting and not unfinished and _finish(conn, campaign.id, now):
                finished.append(campaign.name)
    return finished


def _finish(conn: Connection, campaign_id: int, now: datetime) -> bool:
    """``sending → sent``, if nothing is left to send; whether it moved."""
    sending = {CampaignStatus.SENDING}
    return transition(conn, campaign_id, CampaignStatus.SENT, now=now, only_from=sending, finished=True, strict=False)


def pause_sending(conn: Connection, campaign_id: int, reason: str, now: datetime) -> str | None:
    """Pause a campaign that is sending (the delivery worker's breaker), in ``conn``'s transaction; returns its
    name, or None when it was not sending any more (paused, cancelled or finished meanwhile, by staff or another
    worker)."""
    sending = {CampaignStatus.SENDING}
    if not transition(
        conn, campaign_id, CampaignStatus.PAUSED, now=now, reason=reason, only_from=sending, strict=False
    ):
        return None
    campaign = campaign_store.find(conn, str(campaign_id))
    return campaign.name if campaign is not None else None


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
