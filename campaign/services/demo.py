"""The demo: the whole pipeline on sample data, in a fresh database. Safe to run again: it starts from an
empty demo database (and an empty demo mailbox) every time. Everything it writes (database, signing key,
rejects report, mailbox, previews) is under ``data/demo/``: the samples beside it are only read.

The demo campaign has the default waves (config.toml ``[waves]``), run on a compressed clock (:class:`DemoClock`):
after the launch the demo's clock jumps to each wave's instant in turn
(:func:`campaign.services.scheduling.fire_times`), and the scheduler's own code fires it there
(:func:`~campaign.services.scheduling.fire_due`, as ``campaign serve`` does); in between, it jumps to each
instant a queued message is due (each zone's send window may give its own), where the delivery worker, on the
same clock, sends what is due. A third of the contacts register after the invitation (a registration by the link,
as a click on the invitation's Register records it), so the reminders go to them and the last chance to the others.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from campaign.config import Settings
from campaign.exceptions import NotFoundError
from campaign.models import Audience, Event, MessageStatus, RegistrationSource, WaveKind, WaveStatus
from campaign.rules.event_fields import move_to_date, wall_clock
from campaign.secrets import signing_key
from campaign.services.campaigns import create_campaign, get_campaign
from campaign.services.contact_import import ImportReport, import_contacts
from campaign.services.database import init_database
from campaign.services.delivery_request import DeliveryRequest
from campaign.services.dispatch import send_due
from campaign.services.dispatch_summary import DispatchSummary
from campaign.services.events import add_event, read_event_file
from campaign.services.lifecycle import LaunchResult, finish_campaigns, launch
from campaign.services.progress import campaign_progress
from campaign.services.rendering import Preview, ZoneLine, preview_contact, preview_zones
from campaign.services.scheduling import fire_due, fire_times
from campaign.services.transport import smtp_servers
from campaign.store import registrations, tracking
from campaign.store import reports as report_store
from campaign.store.engine import Database

DEMO_LIST = "demo"
DEMO_EVENT_FILE = Path("events/ilo-migrant-workers-2020.toml")
DEMO_CONTACTS = Path("contacts.csv")
DEMO_CONTACTS_WITH_ERRORS = Path("contacts-with-errors.csv")
DEMO_PREVIEW_CONTACT = "maria.santos@dole.example.org"
# Far enough ahead that every wave (the last chance a week before) lies after the launch: one whose time had
# passed by then would be missed, not sent.
LEAD_TIME = timedelta(days=8)
# Every third contact registers after the invitation (by contact id: the same ones on every run).
REGISTERING_EVERY = 3
# When, after the invitation, the demo's registrations happen.
REGISTERED_AFTER = timedelta(hours=2)


@dataclass(slots=True)
class DemoClock:
    """The demo's compressed clock: it stands at ``now`` until the demo moves it on. A
    :data:`~campaign.services.dispatch_jobs.Clock` for the delivery worker."""

    now: datetime

    def __call__(self) -> datetime:
        """The clock's time."""
        return self.now


@dataclass(frozen=True, slots=True)
class WaveRun:
    """One wave as the demo ran it: when its clock fired it, to whom, and what the delivery worker did."""

    name: str
    kind: WaveKind
    audience: Audience
    fired_at: datetime
    status: WaveStatus
    counts: dict[str, int]
    reason: str | None = None

    @property
    def sent(self) -> int:
        """Messages of this wave sent."""
        return self.counts.get(MessageStatus.SENT.value, 0)


@dataclass(frozen=True, slots=True)
class DemoResult:
    """What the demo did."""

    database: str
    imports: list[ImportReport]
    event: Event
    zones: list[ZoneLine]
    launch: LaunchResult
    delivery: DispatchSummary
    mailbox: Path
    preview: Preview
    campaign_id: int
    """The demo campaign's id: its page's address (``campaign demo`` prints how to open it in the browser)."""
    data_dir: Path
    """The demo's own folder: its database, signing key, mailbox and previews."""
    registered: int = 0
    waves: list[WaveRun] = field(default_factory=list)


def demo_dir(settings: Settings) -> Path:
    """Where the demo keeps everything it writes."""
    return settings.data_dir / "demo"


def demo_settings(settings: Settings) -> Settings:
    """The demo's own database, mailbox and previews under ``data/demo/``, always through the capture server."""
    directory = demo_dir(settings)
    return replace(
        settings,
        database=replace(settings.database, url=f"sqlite:///{directory / 'campaign.db'}"),
        smtp=replace(settings.smtp, mode="capture", mailbox=str(directory / "mailbox")),
        render=replace(settings.render, preview_dir=str(directory / "previews")),
    )


def check_demo_inputs(settings: Settings, samples: Path) -> None:
    """:class:`NotFoundError`, before anything is written, when a sample file is not in ``samples`` or the
    templates' folder is not where ``paths.templates`` says: run elsewhere than in the project's folder (without
    its ``config.toml``, relative paths are the working directory's), the demo made its database and then failed
    on the first file."""
    advice = "run it in the project's folder (where its config.toml is), or give --config PROJECT/config.toml"
    for name in (DEMO_CONTACTS, DEMO_CONTACTS_WITH_ERRORS, DEMO_EVENT_FILE):
        if not (samples / name).is_file():
            raise NotFoundError(f"the demo's sample file {samples / name} is not there (paths.data): {advice}")
    if not settings.templates_dir.is_dir():
        raise NotFoundError(f"the templates' folder {settings.templates_dir} is not there (paths.templates): {advice}")


def reset_demo(settings: Settings) -> Database:
    """Remove the previous demo's files and create its database afresh."""
    shutil.rmtree(demo_dir(settings), ignore_errors=True)
    db = Database(settings.database_url)
    init_database(db)
    return db


async def run_demo(settings: Settings, samples: Path, today: date | None = None) -> DemoResult:
    """Import, add the event moved into the near future, create, check, launch, send, preview.

    The token-signing key is ``CAMPAIGN_SECRET_KEY`` or the demo's own, generated afresh in ``data/demo/``.
    """
    check_demo_inputs(settings, samples)
    settings = demo_settings(settings)
    db = reset_demo(settings)
    try:
        key = signing_key(demo_dir(settings), create=True)
        today = today or datetime.now(UTC).date()
        imports = [
            import_contacts(db, samples / name, list_name, rejects_dir=demo_dir(settings))
            for name, list_name in ((DEMO_CONTACTS, DEMO_LIST), (DEMO_CONTACTS_WITH_ERRORS, "demo-errors"))
        ]
        values = read_event_file(samples / DEMO_EVENT_FILE)
        original_day = wall_clock(values["starts_at"], values["timezone"]).date()
        day = _same_weekday_after(original_day, today + LEAD_TIME)
        values["starts_at"], values["ends_at"] = move_to_date(
            values["starts_at"], values["ends_at"], values["timezone"], day
        )
        event = add_event(db, values)
        details = create_campaign(
            db,
            event_ref=event.slug,
            list_name=DEMO_LIST,
            name="demo-invitation",
            waves=settings.waves.specs,
            window=settings.waves.window,
        )
        name = details.campaign.name
        zones = preview_zones(db, settings, name)
        launched = launch(db, settings, key, name)
        campaign = get_campaign(db, name).campaign
        launched_at = campaign.launched_at or datetime.now(UTC)
        fired_at = {"invitation": launched_at}
        clock = DemoClock(launched_at)
        delivery = DispatchSummary()
        with smtp_servers(settings) as servers:
            request = DeliveryRequest(db, settings, key, servers, campaign_ref=name)

            async def deliver_until(until: datetime | None) -> None:
                """Deliver what is due now, then move the clock to each later instant a message is due, up to
                ``until`` (a wave's firing), and deliver there: as a waiting ``campaign send`` would."""
                delivery.merge(await send_due(request, clock=clock))
                while (due := _next_due(db, campaign.id, clock.now)) is not None and (until is None or due <= until):
                    clock.now = due
                    delivery.merge(await send_due(request, clock=clock))

            await deliver_until(_next_fire(db))
            registered = _register(db, name, max(clock.now, launched_at + REGISTERED_AFTER))
            # The compressed clock: from wave to wave, as `campaign serve` would wake for each.
            while (fires := _next_fire(db)) is not None:
                clock.now = max(clock.now, fires)
                fired = fire_due(db, settings, clock.now)
                if not fired:
                    break  # nothing fired (the campaign paused itself): the clock would stand still
                fired_at.update((f.wave, clock.now) for f in fired)
                await deliver_until(_next_fire(db))
            finish_campaigns(db, clock.now)
        preview = preview_contact(db, settings, key, details.campaign.name, DEMO_PREVIEW_CONTACT)
        return DemoResult(
            database=db.describe(),
            imports=imports,
            event=event,
            zones=zones,
            launch=launched,
            delivery=delivery,
            mailbox=settings.resolve(settings.smtp.mailbox),
            preview=preview,
            campaign_id=campaign.id,
            data_dir=demo_dir(settings),
            registered=registered,
            waves=_wave_runs(db, name, fired_at),
        )
    finally:
        db.dispose()


def _next_fire(db: Database) -> datetime | None:
    """When the next pending wave fires, if any is left."""
    upcoming = fire_times(db)
    return upcoming[0].fires_at if upcoming else None


def _next_due(db: Database, campaign_id: int, now: datetime) -> datetime | None:
    """The earliest instant after ``now`` at which a queued or deferred message of the campaign is due."""
    with db.read() as conn:
        later = [c.next_due for c in report_store.status_counts(conn, campaign_id, now) if c.next_due is not None]
    return min(later, default=None)


def _register(db: Database, name: str, at: datetime) -> int:
    """Every :data:`REGISTERING_EVERY`-th contact sent the invitation registers for the event by the link in it
    (a registration from the link, naming the invitation, as a click on Register records); returns how many."""
    details = get_campaign(db, name)
    invitation = next(w for w in details.waves if w.kind is WaveKind.INVITATION)
    with db.write() as conn:
        registering = tracking.sent_messages(conn, invitation.id)[::REGISTERING_EVERY]
        rows = [
            registrations.Registration(details.event.id, contact_id, RegistrationSource.LINK, at, message_id)
            for message_id, contact_id in registering
        ]
        return registrations.record(conn, rows, at)


def _wave_runs(db: Database, name: str, fired_at: dict[str, datetime]) -> list[WaveRun]:
    """Each wave of the campaign with when the demo's clock fired it and its messages by state."""
    runs = [
        WaveRun(
            w.wave.name,
            w.wave.kind,
            w.wave.audience,
            fired_at.get(w.wave.name, w.wave.enqueued_at or datetime.now(UTC)),
            w.wave.status,
            w.counts,
        )
        for w in campaign_progress(db, name).waves
    ]
    return sorted(runs, key=lambda r: r.fired_at)


def _same_weekday_after(original: date, earliest: date) -> date:
    """The first day on or after ``earliest`` with the weekday of ``original`` (a Friday stays a Friday)."""
    return earliest + timedelta(days=(original.weekday() - earliest.weekday()) % 7)
