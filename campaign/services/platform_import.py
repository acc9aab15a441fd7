"""What the imports of a webinar platform's exports have in common (``campaign registrants import``, ``campaign
attendees import``): the report of what became of each row, the rejects file and the list of people who are
not contacts.

* Every data row ends as one of the import's outcomes; a rejected row (an invalid address or time, an unreadable
  row) is reported with line and reason (the first :data:`KEPT_ISSUES` in memory) and written to
  ``<file>.rejects.csv``, as the contact import does; the rest imports.
* People who are not contacts are not added as contacts (joining or registering on a platform is not asking
  for invitations): the first are reported with their line, and all are written to ``<file>.not-contacts.csv``,
  with their cells.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from campaign.exceptions import ValidationError
from campaign.models import Event
from campaign.rules.contact_fields import FieldError, parse_timezone
from campaign.rules.paths import file_name
from campaign.services.contact_import import RejectsWriter, RowIssue, rejects_path_for
from campaign.services.events import get_event
from campaign.sources.csv_contacts import PeopleCsv
from campaign.store.engine import Database

NOT_CONTACTS_SUFFIX = ".not-contacts.csv"
KEPT_ISSUES = 50
"""How many rejected rows and non-contacts a report keeps in memory (the files have them all)."""
_NOT_A_CONTACT = "not a contact"


def import_context(db: Database, event_ref: str, zone: str | None, now: datetime | None) -> tuple[Event, str, datetime]:
    """The event ``event_ref`` (slug or id) names, the zone a time without offset is read in (``zone``, checked;
    default the event organiser's, as the platforms write the account's local time), and the import's time.
    Raises :class:`NotFoundError` for an unknown event, :class:`ValidationError` for an unknown zone."""
    event = get_event(db, event_ref)
    if not zone:
        return event, event.timezone, now or datetime.now(UTC)
    try:
        return event, parse_timezone(zone), now or datetime.now(UTC)
    except FieldError as exc:  # named as the command line names it (the only caller that gives a zone)
        raise ValidationError(f"--timezone: {exc.reason}") from None


def not_contacts_path_for(path: Path) -> Path:
    """Where the people of ``path`` who are not contacts are listed: beside it."""
    return path.parent / file_name(path.stem, NOT_CONTACTS_SUFFIX)


@dataclass
class PlatformImportReport:
    """What an import of a platform's export did: rows ``added`` (recorded now), ``known`` (recorded already,
    or repeated in the file), people who are not contacts, rows ``skipped`` (by reason: a status, a role) and
    ``rejected``. Only the first rejected rows and non-contacts are kept in memory; the files have all."""

    path: Path
    event: Event
    added: int = 0
    known: int = 0
    not_contacts: int = 0
    rejected: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # by reason
    rejections: list[RowIssue] = field(default_factory=list)
    strangers: list[RowIssue] = field(default_factory=list)  # the first people who are not contacts
    rejects_path: Path | None = None
    not_contacts_path: Path | None = None
    warnings: list[str] = field(default_factory=list)  # reports that could not be written

    @property
    def rows(self) -> int:
        """Data rows read."""
        return self.added + self.known + self.not_contacts + sum(self.skipped.values()) + self.rejected

    def reject(
        self, rejects: RejectsWriter, line: int, reason: str, cells: list[str], email: str | None = None
    ) -> None:
        """Count a rejected row, keep it if among the first, and write it to the rejects file."""
        self.rejected += 1
        if len(self.rejections) < KEPT_ISSUES:
            self.rejections.append(RowIssue(line, reason, email.strip() if email else None))
        rejects.write(line, reason, cells)

    def stranger(
        self, strangers: RejectsWriter, line: int, email: str, cells: list[str], header: list[str] | None = None
    ) -> None:
        """Count someone who is not a contact, keep them if among the first, and list them in the file (under
        ``header``, the file's header of their row, when it is no longer the source's: see
        :meth:`RejectsWriter.write`)."""
        self.not_contacts += 1
        if len(self.strangers) < KEPT_ISSUES:
            self.strangers.append(RowIssue(line, _NOT_A_CONTACT, email))
        strangers.write(line, _NOT_A_CONTACT, cells, header)


@contextmanager
def report_files(
    report: PlatformImportReport, source: PeopleCsv, who: str
) -> Iterator[tuple[RejectsWriter, RejectsWriter]]:
    """The rejects file and the list of ``who`` (``registrants``) who are not contacts, beside the report's file;
    once both are closed (closing is where a full disk shows), the report says where they are, or why not."""
    with (
        RejectsWriter(rejects_path_for(report.path), source) as rejects,
        RejectsWriter(not_contacts_path_for(report.path), source, f"list of {who} who are not contacts") as strangers,
    ):
        yield rejects, strangers
    report.warnings = [writer.error for writer in (rejects, strangers) if writer.error is not None]
    report.rejects_path = rejects.path if report.rejected and rejects.error is None else None
    report.not_contacts_path = strangers.path if report.not_contacts and strangers.error is None else None
