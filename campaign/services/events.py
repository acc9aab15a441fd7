"""Adding, reading, updating and cancelling events.

Contract of :func:`update_event` and :func:`cancel_event`:

* An update is made from the event as read, and written only over that: when the event changed in between
  (another update), nothing is written (:class:`~campaign.exceptions.EditConflictError`; the row is read again
  locked in the transaction that writes it). A form's update names the version it was made from
  (:func:`event_version`: a digest of the fields the form edits) and is refused so, too, when the event is another
  version by then: someone else saved it since the form was opened.

* The calendar entry keeps its UID (:func:`~campaign.render.identifiers.event_uid`); SEQUENCE goes up by one when
  the time or the place changes (start, end, zone, join or registration link: :data:`RESCHEDULING_FIELDS`) and
  at a cancellation. Other changes (title, description, speakers, organiser) are saved and sent with the next
  message, without a notice of their own.
* Each campaign of the event that has been launched gets a wave to everyone its invitation reached
  (:attr:`~campaign.models.Audience.INVITED`), timed "now": ``update-<sequence>`` (kind and template
  ``update``) or ``cancellation`` (kind and template ``cancellation``, METHOD:CANCEL). A sending campaign fires it
  at once (it is queued when the command returns); a paused one when resumed; a sent one is sending again for
  it. A draft gets nothing: its invitation, when launched, carries the event as it then stands.
* Pending waves need nothing on an update: their instant is computed from the event's current start at every
  firing (:func:`campaign.services.scheduling.fire_times`). A fired wave follows the new time: its expiry, when
  derived from the old time (not an instant given on purpose), and, for a wave timed from the event, its
  messages still waiting for their first attempt (:func:`_retime_fired`).
* The links messages already sent make from the event (Register, Join, add to Google or Outlook calendar) lead
  where the event now says (:func:`_retarget_links`); the web service learns it within a minute of its cache.
* The update notice keeps the event's time and place as they were (:class:`~campaign.models.EventBefore`), so it
  says what changed: the old time, in each recipient's zone and language, beside the new one.
* A cancellation cancels the pending waves and the unsent messages of the event's campaigns (not the
  cancellation's own), and drafts; the campaigns end (``sent``) once the cancellation is delivered.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from campaign.config import Settings
from campaign.exceptions import AlreadyExistsError, EditConflictError, NotFoundError, TemplateError, ValidationError
from campaign.models import (
    UNFINISHED_MESSAGES,
    WAITING_MESSAGES,
    Audience,
    Campaign,
    CampaignStatus,
    Event,
    EventBefore,
    EventStatus,
    Speaker,
    WaveKind,
    WaveStatus,
)
from campaign.render.values import event_link_urls
from campaign.rules.event_fields import parse_event_document
from campaign.rules.references import refuse_all_digit_name
from campaign.rules.timing import parse_window
from campaign.rules.versions import version_of
from campaign.rules.wave_specs import WaveSpec
from campaign.services.campaigns import CampaignDetails, wave_values
from campaign.services.rendering import template_set
from campaign.services.scheduling import FIRED, fire_due, planned_instant, wave_expiry, zone_schedules
from campaign.services.transitions import transition
from campaign.store import campaigns as campaign_store
from campaign.store import events as event_store
from campaign.store import links as link_store
from campaign.store import materialise
from campaign.store import waves as wave_store
from campaign.store.engine import Database

# What moves the session in time or place: a change to one of these raises SEQUENCE and sends an update.
RESCHEDULING_FIELDS = ("starts_at", "ends_at", "timezone", "join_url", "registration_url")
# Campaigns whose invitation has gone out (or is going out): they are told of a change.
LAUNCHED = frozenset({CampaignStatus.SCHEDULED, CampaignStatus.SENDING, CampaignStatus.PAUSED, CampaignStatus.SENT})
# What an edit changes (:func:`event_version`): an event file's fields but the slug, which never changes.
EDITED_FIELDS = (
    "title",
    "description",
    "starts_at",
    "ends_at",
    "timezone",
    "registration_url",
    "join_url",
    "language",
    "organiser_name",
    "organiser_email",
    "speakers",
)
UPDATE_WAVE = "update"
CANCELLATION_WAVE = "cancellation"


def read_event_file(path: Path) -> dict[str, Any]:
    """Read and validate an event TOML file; returns the event's values. The slug defaults to the file name."""
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except FileNotFoundError:
        raise ValidationError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValidationError(f"{path}: not valid TOML: {exc}") from None
    return parse_event_document(doc, str(path), default_slug=path.stem)


def add_event(db: Database, values: dict[str, Any]) -> Event:
    """Store a validated event; refuses a slug that is taken, or all digits (commands would read it as an id)."""
    refuse_all_digit_name(
        values["slug"],
        what="event slug",
        thing="an event",
        fix='set a slug with a letter in it in the event file (slug = "...")',
    )
    with db.write() as conn:
        if event_store.find(conn, values["slug"]) is not None:
            raise AlreadyExistsError(f"an event with slug {values['slug']!r} already exists")
        event_id = event_store.insert_event(conn, values, datetime.now(UTC))
        event = event_store.find(conn, str(event_id))
    assert event is not None
    return event


def get_event(db: Database, ref: str) -> Event:
    """The event with slug (or id) ``ref``; raises :class:`NotFoundError`."""
    with db.read() as conn:
        event = event_store.find(conn, ref)
    if event is None:
        raise NotFoundError(f"no event {ref!r} (see `campaign events list`)")
    return event


def list_events(db: Database) -> list[Event]:
    """Every event, soonest first."""
    with db.read() as conn:
        return event_store.all_events(conn)


def event_revision(db: Database, campaign_id: int) -> tuple[int, datetime] | None:
    """The SEQUENCE and last change of a campaign's event: a renderer cached for one of its waves is stale once
    this differs from when it was made (``campaign events update`` changed the event)."""
    with db.read() as conn:
        return event_store.revision_of_campaign(conn, campaign_id)


def event_version(event: Event) -> str:
    """The version of an event's :data:`EDITED_FIELDS` (:mod:`campaign.rules.versions`), which its edit form
    carries to :func:`update_event`. Not its status, SEQUENCE or attendee report: a cancellation is refused as
    such, and an attendee report imported meanwhile changes nothing the form shows."""
    values: dict[str, object] = {name: getattr(event, name) for name in EDITED_FIELDS if name != "speakers"}
    values["speakers"] = [[speaker.name, speaker.role] for speaker in event.speakers]
    return version_of(values)


@dataclass(frozen=True, slots=True)
class CampaignNotice:
    """What an event change did to one campaign: the wave added (None: none) and how many it queued, or why
    nothing was sent."""

    campaign: str
    wave: str | None
    queued: int = 0
    suppressed: int = 0
    note: str = ""


@dataclass(frozen=True, slots=True)
class EventChange:
    """The event after an update or cancellation, which fields changed, and what each campaign got."""

    event: Event
    changed: tuple[str, ...]
    campaigns: list[CampaignNotice]
    cancelled_waves: int = 0
    cancelled_messages: int = 0


def update_event(
    db: Database,
    settings: Settings,
    ref: str,
    values: dict[str, Any],
    now: datetime | None = None,
    *,
    version: str | None = None,
) -> EventChange:
    """Replace an event's details with ``values`` (from :func:`read_event_file`; the slug must be the event's);
    ``version``: the :func:`event_version` they were made from (a form's). See the module doc."""
    now = now or datetime.now(UTC)
    event = _scheduled_event(db, ref, "updated")
    if version is not None and event_version(event) != version:
        raise _changed_meanwhile(event)
    if values["slug"] != event.slug:
        raise ValidationError(
            f'the file describes event {values["slug"]!r}, not {event.slug!r}: set slug = "{event.slug}" in it '
            "(the slug names the calendar entry and cannot change)"
        )
    updated = _with_values(event, values)
    changed = changed_fields(event, values)
    if not changed:
        return EventChange(event, (), [])
    rescheduling = any(name in RESCHEDULING_FIELDS for name in changed)
    # What the notice says changed, in each recipient's zone: the time and place as they were.
    before = EventBefore(
        event.starts_at,
        event.ends_at,
        event.timezone,
        event.join_url,
        event.registration_url,
        changed=tuple(name for name in RESCHEDULING_FIELDS if name in changed),
    )
    sequence = event.sequence + 1 if rescheduling else event.sequence
    with db.read() as conn:
        launched = [c for c in _campaigns_of(conn, event) if c.status in LAUNCHED]
    if rescheduling:
        _require_templates(settings, launched, updated, UPDATE_WAVE)
    columns = {k: v for k, v in values.items() if k != "slug"}
    notices: dict[int, CampaignNotice] = {}
    with db.write() as conn:
        # Everything above (what changed, SEQUENCE, the notice's "before") was decided from ``event``: it is
        # written only over that event, compared under the row's lock so that two updates cannot both pass.
        current = event_store.lock(conn, event.id)
        if current is None or current.status is not EventStatus.SCHEDULED:
            raise ValidationError(f"event {event.slug} was cancelled meanwhile: it can no longer be updated")
        if (event_version(current), current.sequence) != (event_version(event), event.sequence):
            raise _changed_meanwhile(event)
        if not event_store.update_event(conn, event.id, columns, sequence=sequence, now=now):
            raise ValidationError(f"event {event.slug} was cancelled meanwhile: it can no longer be updated")
        _retime_fired(conn, event, updated, now)
        _retarget_links(conn, event, updated)
        if (event.starts_at, event.ends_at) != (updated.starts_at, updated.ends_at):
            # Their time moved with the event, after the launch of some: not a time the launch skipped.
            wave_store.replan_event_timed(conn, [c.id for c in _campaigns_of(conn, event)], now)
        for campaign in _campaigns_of(conn, event):
            if campaign.status not in LAUNCHED:
                if rescheduling:
                    notices[campaign.id] = CampaignNotice(
                        campaign.name,
                        None,
                        note=f"{campaign.status}: nothing sent; its invitation will carry the change",
                    )
                continue
            if rescheduling:
                told = _withdraw_unsent_update(conn, campaign, updated)
                if told is not None and not told.changed:
                    note = "back as recipients last knew it (the earlier notice was not sent yet): no notice"
                    notices[campaign.id] = CampaignNotice(campaign.name, None, note=note)
                    continue
                name = _free_name(conn, campaign, f"{UPDATE_WAVE}-{sequence}")
                _add_notice_wave(conn, campaign, name, WaveKind.UPDATE, now, "event updated", before=told or before)
                notices[campaign.id] = CampaignNotice(campaign.name, name)
    fired = _fire(db, settings, now, notices)
    return EventChange(_event(db, event.id), changed, fired)


def _retarget_links(conn: Connection, event: Event, updated: Event) -> None:
    """The links messages already sent make from the event (Register, Join, add to Google or Outlook calendar)
    lead where the event now says: a Join link clicked from the invitation on the day opened the old meeting, and
    an add-to-calendar link added the old time (a new user's review), while the attached .ics was already right."""
    before, after = event_link_urls(event), event_link_urls(updated)
    for name, old_url in before.items():
        new_url = after.get(name)
        if new_url is not None and new_url != old_url:
            link_store.retarget(conn, event.id, name, old_url, new_url)


def changed_fields(event: Event, values: dict[str, Any]) -> tuple[str, ...]:
    """The fields of ``event`` that ``values`` (from :func:`read_event_file`) would change, in the order of
    :class:`Event`'s fields: what :func:`update_event` reports, known before it runs (a confirmation says it)."""
    updated = _with_values(event, values)
    return tuple(f.name for f in dataclasses.fields(Event) if getattr(updated, f.name) != getattr(event, f.name))


def cancel_event(db: Database, settings: Settings, ref: str, now: datetime | None = None) -> EventChange:
    """Cancel an event: a METHOD:CANCEL notice to everyone invited, pending waves and unsent messages cancelled;
    see the module doc."""
    now = now or datetime.now(UTC)
    event = _scheduled_event(db, ref, "cancelled")
    with db.read() as conn:
        launched = [c for c in _campaigns_of(conn, event) if c.status in LAUNCHED]
    _require_templates(settings, launched, event, CANCELLATION_WAVE)
    notices: dict[int, CampaignNotice] = {}
    kept: dict[int, int] = {}
    waves_cancelled = messages_cancelled = 0
    with db.write() as conn:
        if not event_store.mark_cancelled(conn, event.id, sequence=event.sequence + 1, now=now):
            raise ValidationError(f"event {event.slug} is already cancelled")
        for campaign in _campaigns_of(conn, event):
            if campaign.status is CampaignStatus.DRAFT:
                why, draft = "event cancelled", {CampaignStatus.DRAFT}
                transition(conn, campaign.id, CampaignStatus.CANCELLED, now=now, reason=why, only_from=draft)
                notices[campaign.id] = CampaignNotice(campaign.name, None, note="draft: cancelled, nothing sent")
                continue
            if campaign.status not in LAUNCHED:
                continue
            name = _free_name(conn, campaign, CANCELLATION_WAVE)
            kept[campaign.id] = _add_notice_wave(conn, campaign, name, WaveKind.CANCELLATION, now, "event cancelled")
            notices[campaign.id] = CampaignNotice(campaign.name, name)
            waves_cancelled += wave_store.cancel_waves(
                conn, campaign.id, was=(WaveStatus.PENDING,), keep=(kept[campaign.id],)
            )
            # Waiting messages now; those in a worker's hands after the notice is queued (below), so that one
            # being sent at this moment still counts as an invitation that reached its recipient.
            messages_cancelled += wave_store.cancel_messages(
                conn, campaign.id, was=WAITING_MESSAGES, keep=(kept[campaign.id],), now=now
            )
    fired = _fire(db, settings, now, notices)
    with db.write() as conn:
        for campaign_id, wave_id in kept.items():
            messages_cancelled += wave_store.cancel_messages(
                conn, campaign_id, was=UNFINISHED_MESSAGES, keep=(wave_id,), now=now
            )
            # The other fired waves have nothing left to send: they end as cancelled, not done.
            waves_cancelled += wave_store.cancel_waves(conn, campaign_id, was=(WaveStatus.ENQUEUED,), keep=(wave_id,))
    return EventChange(_event(db, event.id), ("status", "sequence"), fired, waves_cancelled, messages_cancelled)


def _changed_meanwhile(event: Event) -> EditConflictError:
    return EditConflictError(
        f"event {event.slug} was changed by someone else since it was read: nothing was written; read it again "
        "and make the change again"
    )


def _scheduled_event(db: Database, ref: str, what: str) -> Event:
    event = get_event(db, ref)
    if event.status is EventStatus.CANCELLED:
        raise ValidationError(f"event {event.slug} is already cancelled: it can no longer be {what}")
    return event


def _event(db: Database, event_id: int) -> Event:
    with db.read() as conn:
        event = event_store.find(conn, str(event_id))
    assert event is not None  # events are never deleted
    return event


def _with_values(event: Event, values: dict[str, Any]) -> Event:
    """The event as ``values`` describe it (the same types as read from the store, so fields compare)."""
    speakers = tuple(Speaker(name=s["name"], role=s.get("role")) for s in values["speakers"])
    fields = {k: v for k, v in values.items() if k not in ("slug", "speakers")}
    return dataclasses.replace(event, speakers=speakers, **fields)


def _campaigns_of(conn: Connection, event: Event) -> list[Campaign]:
    return sorted((c for c in campaign_store.all_campaigns(conn) if c.event_id == event.id), key=lambda c: c.id)


def _require_templates(settings: Settings, campaigns: list[Campaign], event: Event, template: str) -> None:
    """Refuse before changing anything when a campaign's templates lack the notice's."""
    for campaign in campaigns:
        try:
            template_set(settings, CampaignDetails(campaign, event, [])).resolve(template, "html", None)
        except TemplateError as exc:
            raise ValidationError(f"campaign {campaign.name}: the {template} template: {exc}") from None


def _free_name(conn: Connection, campaign: Campaign, name: str) -> str:
    """``name``, or ``name-2``, ``name-3``... when a wave of the campaign has it already."""
    candidate, number = name, 1
    while wave_store.find_schedule(conn, campaign.id, candidate) is not None:
        number += 1
        candidate = f"{name}-{number}"
    return candidate


def _add_notice_wave(
    conn: Connection,
    campaign: Campaign,
    name: str,
    kind: WaveKind,
    now: datetime,
    reason: str,
    *,
    before: EventBefore | None = None,
) -> int:
    """A pending wave of ``kind`` to everyone invited, timed ``now`` (no send window: news does not wait for
    office hours); a sent campaign is sending again, so that it fires. ``before``: an update's event as it was."""
    spec = WaveSpec(name, kind, None, now, Audience.INVITED)
    values = {**wave_values(spec), "campaign_id": campaign.id, "status": WaveStatus.PENDING.value}
    if before is not None:
        values["event_before"] = campaign_store.event_before_json(before)
    wave_id = campaign_store.insert_wave(conn, values, now)
    if campaign.status is CampaignStatus.SENT:
        reopen = {CampaignStatus.SENT}
        transition(conn, campaign.id, CampaignStatus.SENDING, now=now, reason=reason, only_from=reopen, strict=False)
    return wave_id


def _withdraw_unsent_update(conn: Connection, campaign: Campaign, updated: Event) -> EventBefore | None:
    """Remove the campaign's update notices not sent yet (a paused campaign's: nothing fired them) and return what
    the first of them says recipients were last told, with what differs from ``updated``; None when there is none.
    One notice then tells them of the two changes, from what they knew: two went out, the second saying the event
    had been at a time nobody was told of."""
    pending = [
        schedule.wave
        for schedule in wave_store.schedules_of(conn, campaign.id)
        if schedule.wave.kind is WaveKind.UPDATE and schedule.wave.status is WaveStatus.PENDING
    ]
    withdrawn = [w for w in pending if wave_store.delete_wave(conn, w.id, was=(WaveStatus.PENDING,))]
    told = next((w.event_before for w in withdrawn if w.event_before is not None), None)
    if told is None:
        return None
    changed = tuple(name for name in RESCHEDULING_FIELDS if getattr(told, name) != getattr(updated, name))
    return dataclasses.replace(told, changed=changed)


def _fire(db: Database, settings: Settings, now: datetime, notices: dict[int, CampaignNotice]) -> list[CampaignNotice]:
    """Fire the notices of sending campaigns now (the scheduler would at its next tick); say what was queued."""
    done = []
    for campaign_id, notice in notices.items():
        if notice.wave is None:
            done.append(notice)
            continue
        fired = {f.wave: f for f in fire_due(db, settings, now, campaign_id=campaign_id)}
        if (wave := fired.get(notice.wave)) is not None:
            note = wave.reason or ""
            done.append(dataclasses.replace(notice, queued=wave.queued, suppressed=wave.suppressed, note=note))
        else:
            done.append(
                dataclasses.replace(
                    notice,
                    note=f"waiting: it goes out once the campaign is sending (`campaign resume {notice.campaign}`)",
                )
            )
    return done


def _retime_fired(conn: Connection, old: Event, new: Event, now: datetime) -> None:
    """Fired waves follow the moved event: an expiry that came from the old time (not an instant given on
    purpose) takes the new one's, and the messages of a wave timed from the event that still wait for their
    first attempt go at the wave's new time, in each zone's send window (a "-1d" reminder queued for Tuesday's
    office hours goes on Thursday's when the session moves two days later). Messages already sent stay sent.

    A done wave's expiry follows too: it decides whether a contact who joins the list later still gets the wave
    (the invitation, while the event has not started), and how long a message given another try by
    ``campaign retry`` may be sent. Kept at the old start, a postponed event's newcomers were not invited once
    the old start passed, and an event brought forward had them invited after its new start."""
    if (old.starts_at, old.ends_at) == (new.starts_at, new.ends_at):
        return
    zones: list[str | None] | None = None
    for campaign in _campaigns_of(conn, old):
        for schedule in wave_store.schedules_of(conn, campaign.id):
            wave = schedule.wave
            if wave.status not in FIRED or wave.expires_at is None:
                continue
            expiry = wave.expires_at
            derived = dataclasses.replace(schedule, wave=dataclasses.replace(wave, expires_at=None))
            if expiry == wave_expiry(derived, old.starts_at, old.ends_at):
                expiry = wave_expiry(derived, new.starts_at, new.ends_at)
                wave_store.update_wave(conn, wave.id, {"expires_at": expiry}, was=(wave.status,))
            if wave.status is not WaveStatus.ENQUEUED:  # a done wave has no message waiting
                continue
            if wave.offset is None:  # at launch or at an instant given: the event's time does not move it
                continue
            start = max(planned_instant(schedule, new.starts_at, campaign.launched_at or now), now)
            window = parse_window(schedule.window) if schedule.window else None
            zones = materialise.stored_zones(conn) if zones is None else zones
            materialise.retime_waiting(conn, wave.id, zone_schedules(zones, new.timezone, start, window, expiry), now)
