"""The demo: the whole pipeline on sample data, in a fresh database. Safe to run again: it starts from an
empty demo database (and an empty demo mailbox) every time. Everything it writes (database, signing key,
rejects report, mailbox, previews) is under ``data/demo/``: the samples beside it are only read."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from campaign.config import Settings
from campaign.models import Event
from campaign.rules.event_fields import move_to_date, wall_clock
from campaign.secrets import signing_key
from campaign.services.campaigns import create_campaign
from campaign.services.contact_import import ImportReport, import_contacts
from campaign.services.database import init_database
from campaign.services.dispatch import DispatchSummary, send_due
from campaign.services.events import add_event, read_event_file
from campaign.services.lifecycle import LaunchResult, launch
from campaign.services.rendering import Preview, ZoneLine, preview_contact, preview_zones
from campaign.services.transport import smtp_servers
from campaign.store.engine import Database

DEMO_LIST = "demo"
DEMO_EVENT_FILE = Path("events/ilo-migrant-workers-2020.toml")
DEMO_CONTACTS = Path("contacts.csv")
DEMO_CONTACTS_WITH_ERRORS = Path("contacts-with-errors.csv")
DEMO_PREVIEW_CONTACT = "maria.santos@dole.example.org"
# Far enough ahead that every reminder wave (up to a week before) still lies in the future.
LEAD_TIME = timedelta(days=14)


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
        details = create_campaign(db, event_ref=event.slug, list_name=DEMO_LIST, name="demo-invitation")
        zones = preview_zones(db, settings, details.campaign.name)
        launched = launch(db, settings, key, details.campaign.name)
        with smtp_servers(settings) as servers:
            delivery = await send_due(db, settings, key, servers, campaign_ref=details.campaign.name)
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
        )
    finally:
        db.dispose()


def _same_weekday_after(original: date, earliest: date) -> date:
    """The first day on or after ``earliest`` with the weekday of ``original`` (a Friday stays a Friday)."""
    return earliest + timedelta(days=(original.weekday() - earliest.weekday()) % 7)
