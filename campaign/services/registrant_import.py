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

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from campaign.models import Event, RegistrationSource
from campaign.rules.contact_fields import FieldError, normalise_email, parse_timezone
from campaign.rules.paths import file_name
from campaign.rules.registrant_fields import parse_registration_time, registration_status
from campaign.services.contact_import import RejectsWriter, RowIssue, rejects_path_for
from campaign.services.events import get_event
from campaign.services.registrations import Registrant, record_registrants
from campaign.sources.csv_contacts import CsvProblem, CsvRecord
from campaign.sources.csv_registrants import RegistrantCsv
from campaign.store.engine import Database

NOT_CONTACTS_SUFFIX = ".not-contacts.csv"
_KEPT_ISSUES = 50
_NOT_A_CONTACT = "not a contact"


@dataclass
class RegistrantImportReport:
    """What an import did. Only the first rejected rows and non-contacts are kept in memory; the files have all."""

    path: Path
    event: Event
    added: int = 0
    known: int = 0
    not_contacts: int = 0
    rejected: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # by status
    rejections: list[RowIssue] = field(default_factory=list)
    strangers: list[RowIssue] = field(default_factory=list)  # the first registrants who are not contacts
    rejects_path: Path | None = None
    not_contacts_path: Path | None = None
    warnings: list[str] = field(default_factory=list)  # reports that could not be written

    @property
    def rows(self) -> int:
        """Data rows read."""
        return self.added + self.known + self.not_contacts + sum(self.skipped.values()) + self.rejected


def not_contacts_path_for(path: Path) -> Path:
    """Where the registrants of ``path`` who are not contacts are listed: beside it."""
    return path.parent / file_name(path.stem, NOT_CONTACTS_SUFFIX)


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
    event = get_event(db, event_ref)
    zone = parse_timezone(zone) if zone else event.timezone
    now = now or datetime.now(UTC)
    report = RegistrantImportReport(path=path, event=event)
    with (
        RegistrantCsv(path, encoding=encoding, delimiter=delimiter) as source,
        RejectsWriter(rejects_path_for(path), source) as rejects,
        RejectsWriter(not_contacts_path_for(path), source, "list of registrants who are not contacts") as strangers,
    ):
        batch: list[Registrant] = []
        cells: dict[int, list[str]] = {}  # by line: the batch's rows, for the not-contacts file
        for item in source.rows():
            if isinstance(item, CsvProblem):
                _reject(report, rejects, item.line, item.reason, item.cells)
                continue
            status = registration_status(item.fields.get("status", ""))
            if status is not None:
                report.skipped[status] += 1
                continue
            try:
                registrant = _registrant(item, zone, now)
            except FieldError as exc:
                _reject(report, rejects, item.line, str(exc), item.cells, item.fields.get("email"))
                continue
            batch.append(registrant)
            cells[item.line] = item.cells
            if len(batch) >= batch_size:
                _record(db, event, batch, cells, now, report, strangers)
                batch, cells = [], {}
        _record(db, event, batch, cells, now, report, strangers)
    # After the files are closed: closing is where a full disk shows.
    report.warnings = [writer.error for writer in (rejects, strangers) if writer.error is not None]
    report.rejects_path = rejects.path if report.rejected and rejects.error is None else None
    report.not_contacts_path = strangers.path if report.not_contacts and strangers.error is None else None
    return report


def _registrant(record: CsvRecord, zone: str, now: datetime) -> Registrant:
    """The row's registrant, or :class:`FieldError`. The CSV source leaves out blank cells."""
    email = normalise_email(record.fields.get("email", ""))
    time = record.fields.get("registered_at")
    registered_at = parse_registration_time(time, zone) if time else now
    return Registrant(email, registered_at, record.line)


def _reject(
    report: RegistrantImportReport,
    rejects: RejectsWriter,
    line: int,
    reason: str,
    cells: list[str],
    email: str | None = None,
) -> None:
    report.rejected += 1
    if len(report.rejections) < _KEPT_ISSUES:
        report.rejections.append(RowIssue(line, reason, email.strip() if email else None))
    rejects.write(line, reason, cells)


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
    report.not_contacts += len(outcome.not_contacts)
    for registrant in outcome.not_contacts:
        line = registrant.line if registrant.line is not None else 0
        if len(report.strangers) < _KEPT_ISSUES:
            report.strangers.append(RowIssue(line, _NOT_A_CONTACT, registrant.email))
        strangers.write(line, _NOT_A_CONTACT, cells.get(line, [registrant.email]))
