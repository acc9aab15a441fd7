"""Reading and exporting contacts and lists."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from campaign.exceptions import NotFoundError
from campaign.models import Contact, ContactList
from campaign.rules.contact_fields import clean_text, email_key
from campaign.services.files import atomic_text_file
from campaign.sources.csv_writer import CsvWriter
from campaign.store import contacts as contact_store
from campaign.store import lists as list_store
from campaign.store import suppressions as suppression_store
from campaign.store.engine import Database

EXPORT_COLUMNS = ("email", "name", "first_name", "last_name", "timezone", "country", "locale", "organisation")


@dataclass(frozen=True, slots=True)
class ContactDetails:
    """A contact with the lists it belongs to and its suppression, if any."""

    contact: Contact
    lists: list[str]
    suppressed: str | None


def get_list(db: Database, name: str) -> ContactList:
    """The list called ``name`` (cleaned as an import cleans the name it is given: a line break is a space);
    raises :class:`NotFoundError`."""
    with db.read() as conn:
        found = list_store.find(conn, clean_text(name) or name)
    if found is None:
        raise NotFoundError(f"no list {name!r} (see `campaign lists`)")
    return found


def list_lists(db: Database) -> list[ContactList]:
    """Every list with its size."""
    with db.read() as conn:
        return list_store.all_lists(conn)


def find_contacts(
    db: Database,
    *,
    list_name: str | None = None,
    text: str | None = None,
    without_timezone: bool = False,
    limit: int | None = None,
    offset: int = 0,
) -> Iterator[Contact]:
    """Contacts in address order, filtered by list, by a text in address/name/organisation, or lacking a zone."""
    list_id = get_list(db, list_name).id if list_name else None
    with db.read() as conn:
        yield from contact_store.search(
            conn, list_id=list_id, text=text, without_timezone=without_timezone, limit=limit, offset=offset
        )


def contact_details(db: Database, email: str) -> ContactDetails:
    """One contact by address (any letter case); raises :class:`NotFoundError`."""
    key = email_key(email.strip())
    with db.read() as conn:
        contact = contact_store.get(conn, key)
        if contact is None:
            raise NotFoundError(f"no contact {email!r}")
        return ContactDetails(
            contact=contact,
            lists=contact_store.lists_of(conn, contact.id),
            suppressed=suppression_store.reasons_for(conn, [key]).get(key),
        )


def export_contacts_to_file(db: Database, path: Path, *, list_name: str | None = None, overwrite: bool = False) -> int:
    """:func:`export_contacts` into the file ``path``, which appears complete or not at all (see
    :func:`campaign.services.files.atomic_text_file`); an existing file is refused unless ``overwrite``."""
    # Checked first, so that a wrong list name fails before any file is made.
    if list_name:
        get_list(db, list_name)
    with atomic_text_file(path, overwrite=overwrite) as fh:
        return export_contacts(db, fh, list_name=list_name)


def export_contacts(db: Database, out: TextIO, *, list_name: str | None = None) -> int:
    """Write contacts as CSV (the import format, custom attributes as extra columns); returns the count.

    Two streaming passes (one collects the attribute names), so memory stays bounded; cells that a
    spreadsheet would run as formulas are neutralised.
    """
    attribute_names: dict[str, None] = {}
    for contact in find_contacts(db, list_name=list_name):
        attribute_names.update(dict.fromkeys(contact.attributes))
    writer = CsvWriter(out)
    writer.row([*EXPORT_COLUMNS, *attribute_names])
    count = 0
    for contact in find_contacts(db, list_name=list_name):
        cells = [getattr(contact, name) or "" for name in EXPORT_COLUMNS]
        cells += [str(contact.attributes.get(name, "")) for name in attribute_names]
        writer.row(cells)
        count += 1
    return count
