"""A campaign's waves: list, add, edit, remove (``campaign waves``), before and after launch.

Contract:

* A wave is written as options (``--kind``, ``--at``, ``--audience``, ``--window``, ``--subject``,
  ``--expires``, ``--template``) checked by the same rules as config.toml's default waves
  (:mod:`campaign.rules.wave_specs`, :mod:`campaign.rules.timing`).
* Only a ``pending`` wave may be edited or removed: one that fired (``enqueued``, ``done``), was ``missed`` or
  ``cancelled`` is history, and the refusal says so in one line. The change is a compare-and-set on the
  status, so a wave the scheduler fires meanwhile is refused too, never half-edited.
* An edit made from a form names the version of the wave the form was made from (:attr:`WaveLine.version`,
  :func:`wave_version`: a digest of what the form shows); when the wave is another version by then (someone else
  saved it meanwhile), nothing is written: :class:`~campaign.exceptions.EditConflictError`. The wave is read
  locked in the transaction that writes it, so of two saves made from one version exactly one is written. The
  command line names no version: its options replace those settings of the wave as it stands, the others stay.
* The invitation (the wave named ``invitation``, every campaign's first) may be removed only from a draft.
* A wave's template defaults to its kind's (``templates/email/<kind>.*``); one that does not exist in the
  campaign's template directories is refused here, and ``campaign check`` checks every wave's templates.
* Nothing can be added to a cancelled campaign; adding a wave to a ``sent`` one makes it ``sending`` again,
  so that the wave fires.
* ``campaign create`` (:func:`create_with_waves`) checks each of config.toml's default waves as ``add`` checks a
  wave (its template, that it could be sent): one that fails refuses the campaign, naming the wave and what to
  change in config.toml (or ``--waves none``).
* A refusal about one option is a :class:`~campaign.rules.wave_specs.WaveOptionError` whose ``option`` names it
  (a :class:`WaveOptions` field, or ``name``), so that a form shows it beside that field; a name already taken is
  an AlreadyExistsError. KIND, AT and AUDIENCE are one word each (a space would shift the parts of the line).
* A wave that could never be sent is refused (one line naming the options to change): one that would go out at
  or after it expires, as a reminder at ``+1d`` (a reminder expires at the event start) or ``--at -1h
  --expires -2h``. The check reads the wave as written, in the transaction that writes it.
* ``list`` shows a wave whose own time passes before the launch (a draft's ``-7d`` launched three days before
  the event) at that time, marked: such a wave is skipped at launch, not sent with the invitation. The rule is
  firing's (:func:`campaign.services.scheduling.skipped_at_launch`; a draft's launch is now), and the line says
  why (``WaveLine.skipped``) for ``campaign status`` and ``campaign plan``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Connection

from campaign.config import INVITATION_WAVE, Settings
from campaign.exceptions import (
    AlreadyExistsError,
    EditConflictError,
    TemplateError,
    ValidationError,
)
from campaign.models import Campaign, CampaignStatus, Event, EventStatus, WaveKind, WaveStatus
from campaign.render.localtime import organiser_clock
from campaign.rules.characters import CONTROL
from campaign.rules.contact_fields import without_format_characters
from campaign.rules.timing import FOLLOW_UP_LIFETIME, format_offset
from campaign.rules.versions import version_of
from campaign.rules.wave_specs import (
    WaveOptionError,
    format_timing,
    parse_instant_or_offset,
    parse_wave_name,
    parse_wave_spec,
    refuse_event_notice,
)
from campaign.services.campaigns import (
    CampaignDetails,
    find_campaign,
    get_campaign,
    no_such_wave,
    wave_values,
    write_campaign,
)
from campaign.services.contacts import find_contacts
from campaign.services.rendering import check_wave, template_set, wave_renderer
from campaign.services.scheduling import (
    ATTENDANCE_AUDIENCES,
    planned_instant,
    skipped_at_launch,
    waits_for_attendance,
    wave_expiry,
)
from campaign.services.transitions import transition
from campaign.store import campaigns as campaign_store
from campaign.store import events as event_store
from campaign.store import waves as wave_store
from campaign.store.engine import Database
from campaign.store.waves import WaveSchedule

RENDER_SAMPLE = 50
"""How many contacts of its list a wave added to a launched campaign, or changed there, must render for."""
# What `--window` and `--expires` take to mean "none" and "the kind's default".
NO_WINDOW = "none"
DEFAULT_EXPIRY = "default"

# How `waves list` marks a wave whose own time passes before the launch: it is skipped, not sent at launch.
WAITS_FOR_ATTENDANCE = "the attendee report"
"""What a wave to attendees (or to those who did not attend) waits for until one is imported."""
PASSES_BEFORE_LAUNCH = "passes before launch"
SKIPPED_AT_LAUNCH = "skipped at launch"

MAX_SUBJECT_LENGTH = 1000
"""The longest subject a wave may be given, in characters (as a subject template file; inboxes show 78)."""
_EXAMPLES = {"kind": "reminder", "at": "-1d", "audience": "registered"}


@dataclass(frozen=True, slots=True)
class WaveOptions:
    """A wave as ``campaign waves add|edit`` take it; None: not given (the default, or unchanged)."""

    kind: str | None = None
    at: str | None = None
    audience: str | None = None
    window: str | None = None
    subject: str | None = None
    expires: str | None = None
    template: str | None = None


@dataclass(frozen=True, slots=True)
class WaveLine:
    """One wave as ``campaign waves list`` shows it."""

    name: str
    kind: WaveKind
    timing: str
    planned: datetime | None
    audience: str
    window: str | None
    expires: datetime
    status: WaveStatus
    template: str
    subject: str | None
    missed_reason: str | None
    note: str | None = None
    """:data:`PASSES_BEFORE_LAUNCH` or :data:`SKIPPED_AT_LAUNCH` (``planned`` is then the wave's own time)."""
    skipped: str | None = None
    """Why the launch skips this wave (a draft's: a launch now would), with ``note``: its own time had passed."""
    expires_written: str = DEFAULT_EXPIRY
    """Its expiry as ``--expires`` takes it (``-1h``, an instant, or :data:`DEFAULT_EXPIRY`), for a form to edit."""
    waits: str | None = None
    """What a pending wave waits for besides its time: :data:`WAITS_FOR_ATTENDANCE` (a wave to those who attended,
    or did not, before any attendee report is imported: :data:`campaign.services.scheduling.ATTENDANCE_AUDIENCES`)."""
    version: str = ""
    """The version of its settings (:func:`wave_version`), which a form to edit it carries to :func:`edit_wave`."""

    @property
    def to_come(self) -> bool:
        """Pending and not skipped at launch: it is still to be sent."""
        return self.status is WaveStatus.PENDING and self.skipped is None


@dataclass(frozen=True, slots=True)
class WavePlan:
    """A campaign's waves: the organiser's zone shows their instants beside UTC."""

    campaign: Campaign
    event: Event
    waves: list[WaveLine]


def list_waves(db: Database, campaign_ref: str, now: datetime | None = None) -> WavePlan:
    """Every wave of a campaign with its planned instant (a draft's as if launched at ``now``; a wave's own time
    when it passes before the launch) and expiry."""
    now = now or datetime.now(UTC)
    with db.read() as conn:
        campaign = find_campaign(conn, campaign_ref)
        event = _event(conn, campaign)
        schedules = wave_store.schedules_of(conn, campaign.id)
    launched = campaign.launched_at or now
    lines = []
    for schedule in schedules:
        wave = schedule.wave
        note, own, skipped = _before_launch(schedule, event, campaign.launched_at, now)
        # A wave that fired shows when it did; a pending, missed or cancelled one when it was due; one skipped
        # at launch its own time, not the launch it would otherwise seem to go out with.
        planned = own if note else (wave.enqueued_at or planned_instant(schedule, event.starts_at, launched))
        lines.append(
            WaveLine(
                name=wave.name,
                kind=wave.kind,
                timing=timing_text(schedule),
                planned=planned,
                audience=wave.audience.value,
                window=schedule.window,
                expires=wave_expiry(schedule, event.starts_at, event.ends_at),
                status=wave.status,
                template=wave.template,
                subject=wave.subject,
                missed_reason=schedule.missed_reason,
                note=note,
                skipped=skipped,
                expires_written=_expiry_text(schedule),
                waits=WAITS_FOR_ATTENDANCE
                if wave.status is WaveStatus.PENDING and waits_for_attendance(wave, event)
                else None,
                version=wave_version(schedule, event.timezone),
            )
        )  # fmt: skip
    return WavePlan(campaign, event, lines)


def wave_version(schedule: WaveSchedule, organiser_zone: str) -> str:
    """The version of a wave's settings as its form shows and edits them (:mod:`campaign.rules.versions`): kind,
    timing, audience, window, expiry, template, subject, and the organiser's zone, whose wall clock the form shows
    an absolute time on (saved again after the zone changed, the same wall-clock text would move the wave by the
    zones' difference: a review saw 6 hours). Not its status (a wave that fired is refused as such) nor when its
    time was planned (its event moving changes that, not what the form shows)."""
    wave = schedule.wave
    return version_of(
        {
            "zone": organiser_zone,
            "kind": wave.kind.value,
            "offset_seconds": wave.offset_seconds,
            "send_at": wave.send_at,
            "audience": wave.audience.value,
            "window": schedule.window,
            "expires_at": wave.expires_at,
            "expires_offset_seconds": schedule.expires_offset_seconds,
            "template": wave.template,
            "subject": wave.subject,
        }
    )


def timing_text(schedule: WaveSchedule) -> str:
    """``-7d``, ``2026-06-19T07:00Z`` or ``launch``: a wave's timing as written (:func:`format_timing`)."""
    wave = schedule.wave
    return format_timing(wave.offset, wave.send_at)


def _before_launch(
    schedule: WaveSchedule, event: Event, launched_at: datetime | None, now: datetime
) -> tuple[str | None, datetime | None, str | None]:
    """(note, own time, why) for a wave the launch skips (:func:`campaign.services.scheduling.skipped_at_launch`,
    the rule firing applies); (None, None, None) otherwise. In a draft, the launch is ``now`` (note
    :data:`PASSES_BEFORE_LAUNCH`); after it (:data:`SKIPPED_AT_LAUNCH`), only a wave that existed at the launch was
    skipped (one added later fires at once)."""
    if launched_at is None:
        # Never launched: a cancelled draft's waves are cancelled, not skipped.
        own = skipped_at_launch(schedule, event.starts_at, now) if schedule.wave.status is WaveStatus.PENDING else None
        if own is None:
            return None, None, None
        return PASSES_BEFORE_LAUNCH, own, f"its time ({organiser_clock(own, event.timezone)}) has already passed"
    if schedule.wave.status not in (WaveStatus.PENDING, WaveStatus.MISSED):
        return None, None, None
    own = skipped_at_launch(schedule, event.starts_at, launched_at)
    if own is None:
        return None, None, None
    # As firing words it (scheduling._passed_before_launch): pending until the launch's firing marks it missed.
    when, launch = organiser_clock(own, event.timezone), organiser_clock(launched_at, event.timezone)
    why = f"its time ({when}) had passed when the campaign was launched ({launch})"
    return SKIPPED_AT_LAUNCH, own, why


def add_wave(db: Database, settings: Settings, campaign_ref: str, name: str, options: WaveOptions) -> WaveLine:
    """Add a wave to a campaign (``--kind`` and ``--at`` are required); see the module doc."""
    if not options.kind or not options.at:
        raise WaveOptionError(
            "at" if options.kind else "kind", f"wave {name}: give its --kind and --at (when it goes out)"
        )
    now = datetime.now(UTC)
    with db.write() as conn:
        campaign = find_campaign(conn, campaign_ref)
        if campaign.status is CampaignStatus.CANCELLED:
            raise ValidationError(f"campaign {campaign.name} is cancelled: no wave can be added to it")
        if wave_store.find_schedule(conn, campaign.id, name) is not None:
            # Worded for the command line and the web form alike: no command to run.
            raise AlreadyExistsError(f"campaign {campaign.name} already has a wave {name!r}: give another name")
        event = _event(conn, campaign)
        if event.status is EventStatus.CANCELLED:
            raise ValidationError(f"event {event.slug} of campaign {campaign.name} is cancelled: no wave can be added")
        values = _values(settings, campaign, event, name, options, window_default=settings.waves.window)
        refuse_event_notice(WaveKind(str(values["kind"])), name)
        campaign_store.insert_wave(
            conn, {**values, "campaign_id": campaign.id, "status": WaveStatus.PENDING.value}, now
        )
        _require_sendable(conn, campaign, event, name, now)
        _require_renders(db, conn, settings, campaign, event, name, "added")
        if campaign.status is CampaignStatus.SENT:
            # The new wave is still to be sent; only a sending campaign's waves fire.
            reason, sent = f"wave {name} added", {CampaignStatus.SENT}
            transition(conn, campaign.id, CampaignStatus.SENDING, now=now, reason=reason, only_from=sent, strict=False)
    return _line(db, campaign_ref, name)


def edit_wave(
    db: Database,
    settings: Settings,
    campaign_ref: str,
    name: str,
    options: WaveOptions,
    *,
    version: str | None = None,
) -> WaveLine:
    """Change a pending wave: the options given replace its settings, the others stay. ``version``: the one the
    options were made from (a form's); EditConflictError, nothing written, when the wave is another by then."""
    with db.write() as conn:
        campaign = find_campaign(conn, campaign_ref)
        # Locked: what is compared here (status, version) is what this transaction writes over.
        schedule = _pending_wave(conn, campaign, name, "edited", lock=True)
        event = _event(conn, campaign)
        if version is not None and wave_version(schedule, event.timezone) != version:
            raise EditConflictError(
                f"wave {name} of campaign {campaign.name} was changed by someone else since it was read: "
                "nothing was written; read it again and make the change again"
            )
        wave = schedule.wave
        current = timing_text(schedule)
        kind = options.kind or wave.kind.value
        merged = WaveOptions(
            kind=kind,
            at=options.at or current,
            audience=options.audience or wave.audience.value,
            window=options.window if options.window is not None else (schedule.window or NO_WINDOW),
            subject=options.subject if options.subject is not None else wave.subject,
            expires=options.expires if options.expires is not None else _expiry_text(schedule),
            # A template that was its kind's follows a new kind; one given on purpose stays.
            template=options.template or (None if wave.template == wave.kind.value else wave.template),
        )
        values = _values(settings, campaign, event, name, merged, window_default="")
        if options.kind and values["kind"] != wave.kind.value:
            refuse_event_notice(WaveKind(str(values["kind"])), name)
        if (values["offset_seconds"], values["send_at"]) != (wave.offset_seconds, wave.send_at):
            values["planned_at"] = datetime.now(UTC)  # a time decided now, not one the launch skipped
        if not wave_store.update_wave(conn, wave.id, values, was=(WaveStatus.PENDING,)):
            raise ValidationError(
                f"wave {name} of campaign {campaign.name} fired meanwhile: it can no longer be edited"
            )
        _require_sendable(conn, campaign, event, name, datetime.now(UTC))
        _require_renders(db, conn, settings, campaign, event, name, "changed")
    return _line(db, campaign_ref, name)


def remove_wave(db: Database, campaign_ref: str, name: str) -> None:
    """Remove a pending wave (the invitation only from a draft)."""
    with db.write() as conn:
        campaign = find_campaign(conn, campaign_ref)
        schedule = _pending_wave(conn, campaign, name, "removed")
        if name == INVITATION_WAVE and campaign.status is not CampaignStatus.DRAFT:
            raise ValidationError(
                f"the invitation of campaign {campaign.name} can be removed only while the campaign is a draft"
            )
        if not wave_store.delete_wave(conn, schedule.wave.id, was=(WaveStatus.PENDING,)):
            raise ValidationError(
                f"wave {name} of campaign {campaign.name} fired meanwhile: it can no longer be removed"
            )


def create_with_waves(
    db: Database,
    settings: Settings,
    *,
    event_ref: str,
    list_name: str,
    name: str | None = None,
    template_dir: Path | None = None,
    default_waves: bool = True,
    track_opens: bool = True,
    track_clicks: bool = True,
) -> CampaignDetails:
    """``campaign create``: a draft campaign (:func:`campaign.services.campaigns.create_campaign`) with, when
    ``default_waves``, the waves of config.toml's ``[waves] default``, each checked as ``add`` checks a wave: its
    template exists in the campaign's template directories, and it would go out before it expires. A default
    wave that fails refuses the whole campaign, in one line naming the wave and what to change. ``track_opens``
    / ``track_clicks``: whether its messages carry an open pixel and tracked links."""
    specs = settings.waves.specs if default_waves else []
    now = datetime.now(UTC)
    with db.write() as conn:
        campaign_id = write_campaign(
            conn,
            event_ref=event_ref,
            list_name=list_name,
            name=name,
            template_dir=template_dir,
            waves=specs,
            window=settings.waves.window,
            now=now,
            track_opens=track_opens,
            track_clicks=track_clicks,
        )
        campaign = find_campaign(conn, str(campaign_id))
        event = _event(conn, campaign)
        _require_invitation_template(conn, settings, campaign, event)
        for spec in specs:
            _require_default_sendable(conn, settings, campaign, event, spec.name, now)
    return get_campaign(db, str(campaign_id))


def _written(conn: Connection, campaign: Campaign, name: str) -> WaveSchedule:
    """The campaign's wave ``name``, written in this transaction."""
    schedule = wave_store.find_schedule(conn, campaign.id, name)
    assert schedule is not None  # written in this transaction
    return schedule


def _require_renders(
    db: Database, conn: Connection, settings: Settings, campaign: Campaign, event: Event, name: str, done: str
) -> None:
    """Refuse the wave ``name`` as just written (the caller's transaction then rolls back) when it does not render
    for the first :data:`RENDER_SAMPLE` contacts of the campaign's list: once launched, no ``campaign check``
    runs before it fires, and a subject naming a variable no contact has failed every message of the wave (a new
    user's review). A draft's waves are checked against the whole audience at its launch."""
    if campaign.status is CampaignStatus.DRAFT:
        return
    wave = _written(conn, campaign, name).wave
    contacts = find_contacts(db, list_name=campaign.list_name, limit=RENDER_SAMPLE)
    # A key of its own: nothing rendered here is sent, and the tokens it signs open nothing.
    renderer = wave_renderer(settings, secrets.token_bytes(32), CampaignDetails(campaign, event, [wave]), wave, "")
    report = check_wave(renderer, wave, contacts, campaign.name)
    if report.errors:
        problem = report.errors[0].removeprefix(f"wave {name}: ")
        # The wave's own subject's errors begin so (render_errors); a variable named subject_area is a template's.
        option = "subject" if problem.startswith("the subject:") else "template"
        raise WaveOptionError(option, f"wave {name} was not {done}: it does not render: {problem}")


def _require_invitation_template(conn: Connection, settings: Settings, campaign: Campaign, event: Event) -> None:
    """Refuse the campaign just written (it then rolls back) when its invitation's template cannot be found: a
    draft made so could never be launched, and nothing changes a campaign's template directory afterwards."""
    template = _written(conn, campaign, INVITATION_WAVE).wave.template
    problem = _template_problem(settings, campaign, event, template)
    if problem is not None:
        raise ValidationError(
            f"the invitation's template {template!r}: {problem}; give the campaign a --template directory that has "
            "it, or set paths.templates in config.toml (relative to that file's folder)"
        )


def _require_default_sendable(
    conn: Connection, settings: Settings, campaign: Campaign, event: Event, name: str, now: datetime
) -> None:
    """Refuse the default wave ``name`` just written (the campaign then rolls back) as ``add`` refuses a wave,
    saying what to change where a default wave is written: config.toml, or ``--waves none`` to go without."""
    schedule = _written(conn, campaign, name)
    template = schedule.wave.template
    problem = _template_problem(settings, campaign, event, template)
    if problem is not None:
        raise ValidationError(
            f"default wave {name}: template {template!r}: {problem}; give the campaign a --template directory "
            "that has it, change the wave in [waves] default in config.toml, or create the campaign with --waves none"
        )
    goes = _goes_at(schedule, campaign, event, now)
    if (problem := _attendance_problem(schedule, event, goes)) is not None:
        raise ValidationError(
            f"default wave {name}: {problem}: change it in [waves] default in config.toml, or create the campaign "
            "with --waves none"
        )
    if (problem := _expiry_problem(schedule, event, goes)) is not None:
        default = _kind_expiry(schedule)
        why = f" {default}" if default is not None else ""
        raise ValidationError(
            f"default wave {name}: {problem}{why}: change its timing or kind in [waves] default in config.toml, "
            "or create the campaign with --waves none"
        )


def _pending_wave(conn: Connection, campaign: Campaign, name: str, what: str, *, lock: bool = False) -> WaveSchedule:
    schedule = wave_store.find_schedule(conn, campaign.id, name, lock=lock)
    if schedule is None:
        raise no_such_wave(campaign, name, [w.name for w in campaign_store.waves_of(conn, campaign.id)])
    status = schedule.wave.status
    if status is not WaveStatus.PENDING:
        history = "fired" if status in (WaveStatus.ENQUEUED, WaveStatus.DONE) else "is over"
        raise ValidationError(
            f"wave {name} of campaign {campaign.name} {history} ({status}): it can no longer be {what}; "
            "add a new wave instead"
        )
    return schedule


def _expiry_text(schedule: WaveSchedule) -> str:
    if schedule.wave.expires_at is not None:
        return schedule.wave.expires_at.isoformat()
    if schedule.expires_offset_seconds is not None:
        return format_offset(timedelta(seconds=schedule.expires_offset_seconds))
    return DEFAULT_EXPIRY


def _values(
    settings: Settings, campaign: Campaign, event: Event, name: str, options: WaveOptions, *, window_default: str
) -> dict[str, object]:
    """The ``waves`` columns for ``options``, checked (raises ValidationError naming the wrong option)."""
    window = options.window
    if window is not None and window.strip().lower() in (NO_WINDOW, ""):
        window, window_default = None, ""
    parse_wave_name(name)  # first: a name with a space would shift the parts of the line
    words = {"kind": options.kind, "at": options.at, "audience": options.audience or "all"}
    for option, word in words.items():
        if not word or len(word.split()) != 1:
            raise WaveOptionError(
                option, f"wave {name}: --{option} {word!r} must be one word, e.g. {_EXAMPLES[option]}"
            )
    line = " ".join([name, *(str(word).strip() for word in words.values())]) + (f" {window}" if window else "")
    spec = parse_wave_spec(line)
    expires_at, expires_offset = _parse_expiry(options.expires, name)
    template = options.template or spec.kind.value
    _require_template(settings, campaign, event, template, name)
    # Format characters go, as from every text a person reads (rules.contact_fields.clean_text): a bidi override
    # would make the subject an inbox shows differ from the one staff typed and checked.
    subject = without_format_characters(options.subject).strip() if options.subject else None
    if subject and CONTROL.search(subject):
        raise WaveOptionError("subject", f"wave {name}: --subject must be one line, without control characters")
    if subject and len(subject) > MAX_SUBJECT_LENGTH:
        raise WaveOptionError(
            "subject", f"wave {name}: --subject is {len(subject)} characters: at most {MAX_SUBJECT_LENGTH}"
        )
    return wave_values(
        spec,
        window=window_default,
        template=template,
        subject=subject or None,
        expires_at=expires_at,
        expires_offset=expires_offset,
    )


def _parse_expiry(text: str | None, name: str) -> tuple[datetime | None, timedelta | None]:
    """``--expires``: an offset from the event start, an instant with a UTC offset, or ``default``."""
    if text is None or text.strip().lower() == DEFAULT_EXPIRY:
        return None, None
    try:
        when = parse_instant_or_offset(text, f"wave {name}: --expires", alternatives=f", or {DEFAULT_EXPIRY!r}")
    except ValidationError as exc:
        raise WaveOptionError("expires", str(exc)) from None
    return (when, None) if isinstance(when, datetime) else (None, when)


def _require_sendable(conn: Connection, campaign: Campaign, event: Event, name: str, now: datetime) -> None:
    """Refuse the wave ``name`` as just written (the caller's transaction then rolls back) when it would go out
    at or after it expires: it could never be sent, and would only be marked missed later; or when it is to those
    who attended, or did not, before the event has ended (:func:`_attendance_problem`)."""
    schedule = _written(conn, campaign, name)
    goes = _goes_at(schedule, campaign, event, now)
    if (problem := _attendance_problem(schedule, event, goes)) is not None:
        raise WaveOptionError("audience", f"wave {name}: {problem}: time it after the end (+1d), or another audience")
    problem = _expiry_problem(schedule, event, goes)
    if problem is None:
        return
    default = _kind_expiry(schedule)
    if default is not None:
        fix = f"{default}: give a later --expires, or another --kind"
    else:
        fix = "(its --expires): give a later --expires or an earlier --at"
    # Beside the time the person chose: the wave's own (its kind's expiry was not), else its expiry.
    raise WaveOptionError("at" if default is not None else "expires", f"wave {name}: {problem} {fix}")


def _goes_at(schedule: WaveSchedule, campaign: Campaign, event: Event, now: datetime) -> datetime:
    """When the wave as written goes out: at its own time, at launch, or (its time passed, added after the launch)
    at once."""
    return max(planned_instant(schedule, event.starts_at, campaign.launched_at or now), now)


def _attendance_problem(schedule: WaveSchedule, event: Event, goes: datetime) -> str | None:
    """Why the wave, going out at ``goes``, cannot go to its audience: one of those who attended the event, or did
    not, before the event has ended (no attendee report can say who then: it would wait for one until it expired,
    then be missed); None otherwise."""
    audience = schedule.wave.audience
    if audience not in ATTENDANCE_AUDIENCES or goes >= event.ends_at:
        return None
    return (
        f"who is {audience.value} is known only after the event ends ({organiser_clock(event.ends_at, event.timezone)})"
    )


def _expiry_problem(schedule: WaveSchedule, event: Event, goes: datetime) -> str | None:
    """Why the wave, going out at ``goes``, could never be sent: at or after it expires; None when not."""
    expiry = wave_expiry(schedule, event.starts_at, event.ends_at)
    if goes < expiry:
        return None
    zone = event.timezone
    return (
        f"it would go out at {organiser_clock(goes, zone)}, at or after it expires at {organiser_clock(expiry, zone)}"
    )


def _kind_expiry(schedule: WaveSchedule) -> str | None:
    """``(a reminder expires at the event start)`` for a wave without an expiry of its own; None for one with."""
    wave = schedule.wave
    if wave.expires_at is not None or schedule.expires_offset_seconds is not None:
        return None
    follow_up = f"{FOLLOW_UP_LIFETIME.days} days after the event ends"
    default = follow_up if wave.kind is WaveKind.FOLLOW_UP else "at the event start"
    kind = wave.kind.value
    return f"({'an' if kind[:1] in 'aeiou' else 'a'} {kind} expires {default})"  # an update, a reminder


def _require_template(settings: Settings, campaign: Campaign, event: Event, template: str, name: str) -> None:
    """Refuse a template with no HTML file in the campaign's template directories (``campaign check`` checks
    the rest: text part, subject, every contact rendering)."""
    problem = _template_problem(settings, campaign, event, template)
    if problem is not None:
        raise WaveOptionError("template", f"wave {name}: --template {template!r}: {problem}")


def _template_problem(settings: Settings, campaign: Campaign, event: Event, template: str) -> str | None:
    """Why ``template`` cannot be found in the campaign's template directories; None when it can."""
    details = CampaignDetails(campaign, event, [])
    try:
        template_set(settings, details).resolve(template, "html", None)
    except TemplateError as exc:
        return str(exc)
    return None


def _event(conn: Connection, campaign: Campaign) -> Event:
    event = event_store.find(conn, str(campaign.event_id))
    assert event is not None  # a campaign's event cannot be deleted (ON DELETE RESTRICT)
    return event


def _line(db: Database, campaign_ref: str, name: str) -> WaveLine:
    return next(line for line in list_waves(db, campaign_ref).waves if line.name == name)
