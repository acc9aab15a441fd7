"""Registrations learnt outside the messages: a webinar platform's export (``campaign registrants import``) or its
webhook (``POST /hooks/registration``). Both name people by address; this module matches them to contacts and
records them, so the ``registered`` and ``not-registered`` audiences are exact whichever way a registration came.

* An address matches a contact case-insensitively (:func:`campaign.rules.contact_fields.email_key`, the key the
  contact import stores), after the same normalisation the import applies (a platform's ``Ann@Example.ORG`` is
  the contact ``ann@example.org``).
* Registrants who are not contacts are not added as contacts (a registration form is not consent to invitations):
  they are returned, for the caller to report.
* A registration already known from the same source keeps its first time (:func:`campaign.store.registrations.
  record`): re-importing an export, or a webhook delivered twice, changes nothing.
* The addresses of one call are looked up in one query and written in one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from campaign.models import Event, RegistrationSource
from campaign.rules.contact_fields import email_key
from campaign.store import contacts, registrations
from campaign.store.engine import Database
from campaign.store.registrations import Registration


@dataclass(frozen=True, slots=True)
class Registrant:
    """Someone a platform says registered: their address (already normalised) and when; ``line`` is where they
    were read from (a CSV line), for reports."""

    email: str
    registered_at: datetime
    line: int | None = None


@dataclass(slots=True)
class RegistrantsRecorded:
    """What became of a batch of registrants: ``added`` new registrations, ``known`` already recorded from this
    source (or repeated in the batch), and those who are not contacts."""

    added: int = 0
    known: int = 0
    not_contacts: list[Registrant] = field(default_factory=list)


def record_registrants(
    db: Database, event: Event, registrants: Sequence[Registrant], source: RegistrationSource, now: datetime
) -> RegistrantsRecorded:
    """Record each registrant who is a contact as registered for ``event`` by ``source``; see the module doc."""
    outcome = RegistrantsRecorded()
    if not registrants:
        return outcome
    keys = sorted({email_key(r.email) for r in registrants})
    with db.write() as conn:
        ids = contacts.ids_by_keys(conn, keys)
        rows = []
        for registrant in registrants:
            contact_id = ids.get(email_key(registrant.email))
            if contact_id is None:
                outcome.not_contacts.append(registrant)
            else:
                rows.append(Registration(event.id, contact_id, source, registrant.registered_at))
        outcome.added = registrations.record(conn, rows, now)
    outcome.known = len(rows) - outcome.added
    return outcome


@dataclass(frozen=True, slots=True)
class RegistrationCounts:
    """Who registered for an event: how many contacts (each once, however many sources say so), and how many
    each source says registered (sources with none are absent)."""

    contacts: int
    by_source: dict[RegistrationSource, int]


def registration_counts(db: Database, event: Event) -> RegistrationCounts:
    """How many contacts registered for ``event``, in all and by source."""
    with db.read() as conn:
        return RegistrationCounts(
            len(registrations.registered_contacts(conn, event.id)), registrations.counts_by_source(conn, event.id)
        )
