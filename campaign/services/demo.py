"""The demo: a fresh database, the sample contacts and the sample event, through as much of the pipeline as
exists. Safe to run again: it starts from an empty demo database every time."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from campaign.models import Event
from campaign.rules.event_fields import move_to_date, wall_clock
from campaign.services.contact_import import ImportReport, import_contacts
from campaign.services.contacts import find_contacts
from campaign.services.database import init_database
from campaign.services.events import add_event, read_event_file
from campaign.store.engine import Database

DEMO_LIST = "demo"
DEMO_EVENT_FILE = Path("events/ilo-migrant-workers-2020.toml")
DEMO_CONTACTS = Path("contacts.csv")
DEMO_CONTACTS_WITH_ERRORS = Path("contacts-with-errors.csv")
# Far enough ahead that every reminder wave (up to a week before) still lies in the future.
LEAD_TIME = timedelta(days=14)


@dataclass(frozen=True, slots=True)
class DemoResult:
    """What the demo did."""

    database: str
    imports: list[ImportReport]
    event: Event
    zones: Counter[str]


def demo_database_path(data_dir: Path) -> Path:
    """The demo's own SQLite file: the demo never touches the configured database."""
    return data_dir / "demo" / "campaign.db"


def reset_demo_database(data_dir: Path) -> Database:
    """Delete the demo database (and its WAL files) and create it afresh."""
    path = demo_database_path(data_dir)
    for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        leftover.unlink(missing_ok=True)
    db = Database(f"sqlite:///{path}")
    init_database(db)
    return db


def run_demo(db: Database, samples: Path, today: date | None = None) -> DemoResult:
    """Import the sample contacts (and the file with errors), add the sample event moved into the near future."""
    today = today or datetime.now(UTC).date()
    imports = [
        import_contacts(db, samples / DEMO_CONTACTS, DEMO_LIST),
        import_contacts(db, samples / DEMO_CONTACTS_WITH_ERRORS, "demo-errors"),
    ]
    values = read_event_file(samples / DEMO_EVENT_FILE)
    original_day = wall_clock(values["starts_at"], values["timezone"]).date()
    day = _same_weekday_after(original_day, today + LEAD_TIME)
    values["starts_at"], values["ends_at"] = move_to_date(
        values["starts_at"], values["ends_at"], values["timezone"], day
    )
    event = add_event(db, values)
    zones = Counter(c.timezone or "(none)" for c in find_contacts(db, list_name=DEMO_LIST))
    return DemoResult(database=db.describe(), imports=imports, event=event, zones=zones)


def _same_weekday_after(original: date, earliest: date) -> date:
    """The first day on or after ``earliest`` with the weekday of ``original`` (a Friday stays a Friday)."""
    return earliest + timedelta(days=(original.weekday() - earliest.weekday()) % 7)
