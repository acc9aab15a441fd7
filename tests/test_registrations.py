"""Registrations (store.registrations): who registered for an event, from which source, with or without a
message; recorded once however often the same registration arrives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from campaign.models import RegistrationSource
from campaign.store import registrations
from campaign.store.engine import Database
from campaign.store.registrations import Registration
from campaign.store.tables import contacts, events
from campaign.store.tables import registrations as registration_rows
from tests.test_scheduling import add_contacts, add_event_at

START = datetime(2030, 6, 18, 12, tzinfo=UTC)
LINK, IMPORT, WEBHOOK = RegistrationSource.LINK, RegistrationSource.IMPORT, RegistrationSource.WEBHOOK


def ids(db: Database) -> tuple[dict[str, int], dict[str, int]]:
    """Contact ids by address, event ids by slug."""
    with db.read() as conn:
        people = {email: id_ for id_, email in conn.execute(select(contacts.c.id, contacts.c.email))}
        slugs = {slug: id_ for id_, slug in conn.execute(select(events.c.id, events.c.slug))}
    return people, slugs


def test_a_registration_is_recorded_once_per_event_contact_and_source(db: Database, tmp_path: Path) -> None:
    add_contacts(db, tmp_path, {f"p{i}@example.org": "" for i in range(4)})
    add_event_at(db, START, "talk")
    add_event_at(db, START, "other")
    people, slugs = ids(db)
    talk, other = slugs["talk"], slugs["other"]
    p0, p1, p2, p3 = (people[f"p{i}@example.org"] for i in range(4))
    first, later = START - timedelta(days=5), START - timedelta(days=1)

    with db.write() as conn:
        assert registrations.record(conn, [], first) == 0
        # The same registration twice in one batch is one row; none of these names a message.
        batch = [
            Registration(talk, p0, IMPORT, first),
            Registration(talk, p0, IMPORT, first),
            Registration(talk, p1, WEBHOOK, first),
            Registration(other, p2, IMPORT, first),
        ]
        assert registrations.record(conn, batch, first) == 3
    with db.write() as conn:
        # Again later (a re-import, a second click): only what is new is added, and the first time stands.
        again = [Registration(talk, p0, IMPORT, later), Registration(talk, p0, LINK, later)]
        assert registrations.record(conn, again, later) == 1
        assert registrations.record(conn, again, later) == 0
        stored = conn.execute(
            select(registration_rows.c.source, registration_rows.c.registered_at).where(
                registration_rows.c.contact_id == p0
            )
        ).all()
    assert sorted(stored) == [("import", first), ("link", later)]

    with db.read() as conn:
        # p0 came by two sources: one contact registered, counted under each source.
        assert registrations.registered_contacts(conn, talk) == [p0, p1]
        assert registrations.counts_by_source(conn, talk) == {IMPORT: 1, LINK: 1, WEBHOOK: 1}
        assert registrations.registered_contacts(conn, other) == [p2]
        assert registrations.counts_by_source(conn, other) == {IMPORT: 1}
        assert p3 not in registrations.registered_contacts(conn, talk)
