"""Importing a webinar platform's registrant export for an event (``campaign registrants import``).

Contract of :func:`import_registrants`:

* The file is read by :class:`campaign.sources.csv_registrants.RegistrantCsv` (Zoom's registration report
  with its title rows, Webex's registrant list, any CSV with an email column): only the email, registration
  time and status columns are read.
* Every data row ends as exactly one of: *added* (a contact's registration recorded now), *known* (already
  recorded by an import, or repeated in the file), *not a contact*, *skipped* (a status other than approved:
  pending, denied, cancelled ..., counted by status) or *rejected* (an invalid address or time, an unreadable
  row). Rejected rows are reported with line and reason and written to ``<file>.rejects.csv``, as the contact
  import does; the rest imports.
* Registrants who are not contacts are not added as contacts (registering is not asking for invitations):
  the first are reported with their line, and all are written to ``<file>.not-contacts.csv``, with their cells.
* A time without offset is read in ``zone`` (default: the event organiser's), as the platforms write the
  account's local time; a missing time column or empty cell is the time of the import.
* Matching and recording are :func:`campaign.services.registrations.record_registrants` (case-insensitive,
  the first time of a registration stands), one transaction per batch: re-importing a file changes nothing,
  and an interrupted import can simply be run again. Nothing is ever removed: someone the platform has since
  cancelled stays registered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from campaign.models import Event, RegistrationSource
from campaign.rules.contact_fields import FieldError, normalise_email
from campaign.rules.registrant_fields import not_after_import, parse_registration_time, registration_status
from campaign.services.contact_import import RejectsWriter
from campaign.services.platform_import import NOT_CONTACTS_SUFFIX as NOT_CONTACTS_SUFFIX
from campaign.services.platform_import import PlatformImportReport, import_context, report_files
from campaign.services.platform_import import not_contacts_path_for as not_contacts_path_for
from campaign.services.registrations import Registrant, record_registrants
from campaign.sources.csv_contacts import CsvProblem, CsvRecord
from campaign.sources.csv_registrants import RegistrantCsv
from campaign.store.engine import Database


@dataclass
class RegistrantImportReport(PlatformImportReport):
    """What a registrant import did (``skipped`` is by status)."""


def import_registrants(
    db: Database,
    event_ref: str,
    path: Path,
    *,
    zone: str | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    batch_size: int = 5_000,
    now: datetime | None = None,
) -> RegistrantImportReport:
    """Record the approved registrants in ``path`` who are contacts as registered for the event ``event_ref``
    (slug or id); see the module doc.

    Raises :class:`NotFoundError` for an unknown event, :class:`ValidationError` for an unknown zone, and
    :class:`ImportFileError` when the file cannot be read at all (no email column, bad encoding).
    """
    event, zone, now = import_context(db, event_ref, zone, now)
    report = RegistrantImportReport(path=path, event=event)
    with (
        RegistrantCsv(path, encoding=encoding, delimiter=delimiter) as source,
        report_files(report, source, "registrants") as (rejects, strangers),
    ):
        batch: list[Registrant] = []
        cells: dict[int, list[str]] = {}  # by line: the batch's rows, for the not-contacts file
        for item in source.rows():
            if isinstance(item, CsvProblem):
                report.reject(rejects, item.line, item.reason, item.cells)
                continue
            status = registration_status(item.fields.get("status", ""))
            if status is not None:
                report.skipped[status] += 1
                continue
            try:
                registrant = _registrant(item, zone, now)
            except FieldError as exc:
                report.reject(rejects, item.line, str(exc), item.cells, item.fields.get("email"))
                continue
            batch.append(registrant)
            cells[item.line] = item.cells
            if len(batch) >= batch_size:
                _record(db, event, batch, cells, now, report, strangers)
                batch, cells = [], {}
        _record(db, event, batch, cells, now, report, strangers)
    return report


def _registrant(record: CsvRecord, zone: str, now: datetime) -> Registrant:
    """The row's registrant, or :class:`FieldError`. The CSV source leaves out blank cells."""
    email = normalise_email(record.fields.get("email", ""))
    time = record.fields.get("registered_at")
    registered_at = (
        not_after_import(parse_registration_time(time, zone), now, time, zone, "registration time") if time else now
    )
    return Registrant(email, registered_at, record.line)


def _record(
    db: Database,
    event: Event,
    batch: list[Registrant],
    cells: dict[int, list[str]],
    now: datetime,
    report: RegistrantImportReport,
    strangers: RejectsWriter,
) -> None:
    outcome = record_registrants(db, event, batch, RegistrationSource.IMPORT, now)
    report.added += outcome.added
    report.known += outcome.known
    for registrant in outcome.not_contacts:
        line = registrant.line if registrant.line is not None else 0
        report.stranger(strangers, line, registrant.email, cells.get(line, [registrant.email]))
