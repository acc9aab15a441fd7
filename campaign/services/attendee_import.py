"""Importing a webinar platform's attendee report for an event (``campaign attendees import``).

Contract of :func:`import_attendees`:

* The file is read by :class:`campaign.sources.csv_attendees.AttendeeCsv`: Zoom's sectioned attendee report (its
  attendees' sections only: hosts and panelists are not invitees), Webex's attendee report, any CSV with an
  email column; the attended, join time, minutes and role columns are read when present.
* Every data row ends as exactly one of: an *attendance* of a person (their first row in the file), a *rejoin*
  (a later row of the same person, case-insensitively: Zoom writes a row per join), *skipped* (``Attended`` No,
  counted as ``did not attend``; a host's, panelist's ... role, counted by role) or *rejected* (an invalid
  address, time, minutes or Attended value; an unreadable row), reported with line and reason and written to
  ``<file>.rejects.csv`` (:mod:`campaign.services.platform_import`); the rest imports.
* A person's rows add up to one attendance: the first join time and the minutes of all their rows. So the whole
  file is read before anything is written (a person's rows may be anywhere in it): memory grows with the
  attendees, a few hundred bytes each, as webinars go.
* Each attendance is then *added*, *updated* (an earlier join or a longer stay than stored) or *known* (stored
  already: re-importing a report changes nothing; :func:`campaign.store.attendances.record`), or is of someone
  who is *not a contact*: not added, listed in ``<file>.not-contacts.csv`` with their first row.
* A time without offset is read in ``zone`` (default: the event organiser's), as the platforms write the
  account's local time. Attendances are written one transaction per batch; an interrupted import can simply be
  run again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from campaign.models import Event
from campaign.rules.attendee_fields import attended, parse_join_time, parse_minutes, staff_role
from campaign.rules.contact_fields import FieldError, email_key, normalise_email
from campaign.rules.registrant_fields import not_after_import
from campaign.services.contact_import import RejectsWriter
from campaign.services.platform_import import PlatformImportReport, import_context, report_files
from campaign.sources.csv_attendees import AttendeeCsv
from campaign.sources.csv_contacts import CsvProblem, CsvRecord
from campaign.store import attendances, contacts
from campaign.store import events as event_store
from campaign.store.attendances import Attendance
from campaign.store.engine import Database

DID_NOT_ATTEND = "did not attend"
"""How rows whose ``Attended`` is No are counted among the skipped."""
ZOOM = "zoom"
CSV = "csv"
_ZOOM_COLUMNS = frozenset(("Time in Session (minutes)", "User Name (Original Name)"))


@dataclass
class AttendeeImportReport(PlatformImportReport):
    """What an attendee import did: ``added``, ``updated`` and ``known`` count attendances (people), ``rejoins``
    the further rows of people already read; ``skipped`` is by reason (:data:`DID_NOT_ATTEND`, a role)."""

    updated: int = 0
    rejoins: int = 0

    @property
    def rows(self) -> int:
        """Data rows read."""
        return super().rows + self.updated + self.rejoins

    @property
    def attendees(self) -> int:
        """People in the file who attended (contacts or not)."""
        return self.added + self.updated + self.known + self.not_contacts


@dataclass(slots=True)
class _Attendee:
    """One person's rows added up: their address as first written, the line, cells and header (its section's) of
    their first row, their first join and minutes in all (None while no row said)."""

    email: str
    line: int
    cells: list[str]
    header: list[str]
    joined_at: datetime | None
    minutes: int | None

    def add(self, joined_at: datetime | None, minutes: int | None) -> None:
        if joined_at is not None and (self.joined_at is None or joined_at < self.joined_at):
            self.joined_at = joined_at
        if minutes is not None:
            self.minutes = minutes + (self.minutes or 0)


def import_attendees(
    db: Database,
    event_ref: str,
    path: Path,
    *,
    zone: str | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    batch_size: int = 5_000,
    now: datetime | None = None,
) -> AttendeeImportReport:
    """Record the attendees in ``path`` who are contacts as having joined the event ``event_ref`` (slug or id);
    see the module doc.

    Raises :class:`NotFoundError` for an unknown event, :class:`ValidationError` for an unknown zone, and
    :class:`ImportFileError` when the file cannot be read at all (no email column, bad encoding).
    """
    event, zone, now = import_context(db, event_ref, zone, now)
    report = AttendeeImportReport(path=path, event=event)
    with (
        AttendeeCsv(path, encoding=encoding, delimiter=delimiter) as source,
        report_files(report, source, "attendees") as (rejects, strangers),
    ):
        people: dict[str, _Attendee] = {}  # by email key, in file order
        for item in source.rows():
            if isinstance(item, CsvProblem):
                report.reject(rejects, item.line, item.reason, item.cells)
                continue
            try:
                skipped = _skipped(item)
                if skipped is None:
                    _add(people, item, zone, now, report, source.header_names)
            except FieldError as exc:
                report.reject(rejects, item.line, str(exc), item.cells, item.fields.get("email"))
                continue
            if skipped is not None:
                report.skipped[skipped] += 1
        kind = ZOOM if _ZOOM_COLUMNS & set(source.header_names) else CSV
        found = list(people.values())
        for start in range(0, len(found), batch_size):
            _record(db, event, found[start : start + batch_size], kind, now, report, strangers)
        if found or report.skipped:
            # Whole now (it is written in batches): the waves to who attended, or not, may go. A file of rejects
            # only is no report; one where nobody attended (every row "No") is.
            with db.write() as conn:
                event_store.mark_attendance_reported(conn, event.id, now)
    return report


def _skipped(record: CsvRecord) -> str | None:
    """Why the row is not an attendance (it says the person did not attend, or names a host ...), or None."""
    if not attended(record.fields.get("attended", "")):
        return DID_NOT_ATTEND
    return staff_role(record.fields.get("role", ""))


def _add(
    people: dict[str, _Attendee],
    record: CsvRecord,
    zone: str,
    now: datetime,
    report: AttendeeImportReport,
    header: list[str],
) -> None:
    """Add the row to its person's attendance (a first row makes one), or raise :class:`FieldError`. The CSV
    source leaves out blank cells."""
    email = normalise_email(record.fields.get("email", ""))
    raw = record.fields.get("joined_at", "")
    joined_at = parse_join_time(raw, zone)
    if joined_at is not None:
        not_after_import(joined_at, now, raw, zone, "join time")
    minutes = parse_minutes(record.fields.get("minutes", ""))
    key = email_key(email)
    if (person := people.get(key)) is not None:
        report.rejoins += 1
        person.add(joined_at, minutes)
    else:
        people[key] = _Attendee(email, record.line, record.cells, header, joined_at, minutes)


def _record(
    db: Database,
    event: Event,
    batch: list[_Attendee],
    kind: str,
    now: datetime,
    report: AttendeeImportReport,
    strangers: RejectsWriter,
) -> None:
    """Match a batch of people to contacts and record their attendances, in one transaction."""
    with db.write() as conn:
        ids = contacts.ids_by_keys(conn, sorted({email_key(p.email) for p in batch}))
        rows = []
        for person in batch:
            contact_id = ids.get(email_key(person.email))
            if contact_id is None:
                report.stranger(strangers, person.line, person.email, person.cells, person.header)
            else:
                rows.append(Attendance(event.id, contact_id, person.joined_at, person.minutes, kind))
        outcome = attendances.record(conn, rows, now)
    report.added += outcome.added
    report.updated += outcome.updated
    report.known += outcome.known
