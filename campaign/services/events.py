"""Adding and reading events."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from campaign.exceptions import AlreadyExistsError, NotFoundError, ValidationError
from campaign.models import Event
from campaign.rules.event_fields import parse_event_document
from campaign.rules.references import refuse_all_digit_name
from campaign.store import events as event_store
from campaign.store.engine import Database


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
