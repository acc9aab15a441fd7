"""Importing contacts from CSV into a list.

Contract of :func:`import_contacts`:

* Every data row ends as exactly one of: *new*, *updated*, *unchanged*, *duplicate* (merged into an earlier
  row of the same file) or *rejected*. A rejected row is reported with its line number and reason, and
  written to ``<file>.rejects.csv`` beside the input (or in ``rejects_dir``); the rest imports. A report that
  cannot be written (a read-only directory) is a warning in :attr:`ImportReport.rejects_error`, not a failure.
* The list is created with its first contact: an import that writes nothing leaves no (empty) list behind.
* Addresses are matched case-insensitively, within the file and against the database: re-importing
  updates, never duplicates. A non-empty cell overwrites the stored value; an empty cell keeps it.
* A contact left without a time zone gets the zone of its country when that country has only one;
  otherwise it is imported and *flagged* (it will see the organiser's time and UTC).
* Suppressed addresses (unsubscribed, bounced) stay suppressed: importing never lifts a suppression.
* The file is streamed and written in batches, one transaction each, so memory stays bounded and an
  interrupted import can simply be run again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from campaign.exceptions import ImportFileError
from campaign.rules.contact_fields import (
    FieldError,
    clean_text,
    email_key,
    normalise_email,
    parse_country,
    parse_locale,
    parse_timezone,
)
from campaign.rules.paths import file_name
from campaign.rules.references import refuse_long_name
from campaign.services.import_writer import BatchOutcome, BatchWriter, ImportBatch
from campaign.services.seen_keys import SeenKeys
from campaign.sources.csv_contacts import ContactCsv, CsvProblem, CsvRecord, PeopleCsv
from campaign.sources.csv_writer import CsvWriter
from campaign.store import lists as list_store
from campaign.store.contacts import KEY_AT, MERGED_COLUMNS, attributes_json
from campaign.store.engine import Database

Progress = Callable[[int, int], None]
"""Called with (bytes read, file size) after each batch."""

_TEXT_LIMITS = {"name": 300, "first_name": 200, "last_name": 200, "organisation": 300}
_KEPT_ISSUES = 50
_PARALLEL_FROM_BYTES = 4 << 20
_ZONE_AT = MERGED_COLUMNS.index("timezone")
_ATTRIBUTES_AT = MERGED_COLUMNS.index("attributes")
_NO_ATTRIBUTES = attributes_json({})


@dataclass(frozen=True, slots=True)
class RowIssue:
    """A rejected or flagged row: where it is and why."""

    line: int
    reason: str
    email: str | None = None


@dataclass
class ImportReport:
    """What an import did. Only the first issues are kept in memory; the rejects file has them all."""

    path: Path
    list_name: str
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0
    rejected: int = 0
    flagged: int = 0
    suppressed: int = 0
    rejections: list[RowIssue] = field(default_factory=list)
    flags: list[RowIssue] = field(default_factory=list)
    rejects_path: Path | None = None
    rejects_error: str | None = None  # why the rejects report could not be written, if it could not

    @property
    def imported(self) -> int:
        """Rows that reached the database (everything but rejected rows)."""
        return self.new + self.updated + self.unchanged + self.duplicates

    @property
    def rows(self) -> int:
        """Data rows read."""
        return self.imported + self.rejected

    def audit_details(self, file_name: str) -> dict[str, Any]:
        """What the audit log keeps of this import (``contacts-imported``, through the pages or the command
        line): the file's name and what came of it."""
        return {"file": file_name, "new": self.new, "updated": self.updated, "rejected": self.rejected}

    def reject(self, line: int, reason: str, email: str | None = None) -> None:
        """Count a rejected row, keeping the first few for the summary."""
        self.rejected += 1
        if len(self.rejections) < _KEPT_ISSUES:
            self.rejections.append(RowIssue(line, reason, email))

    def add(self, outcome: BatchOutcome | None) -> None:
        """Count what writing a batch did, keeping the first few flagged rows."""
        if outcome is None:
            return
        self.new += outcome.new
        self.updated += outcome.updated
        self.unchanged += outcome.unchanged
        self.suppressed += outcome.suppressed
        self.flagged += outcome.flagged
        for flagged in outcome.flags[: _KEPT_ISSUES - len(self.flags)]:
            self.flags.append(RowIssue(flagged.line, _flag_reason(flagged.country), flagged.email))


REJECTS_SUFFIX = ".rejects.csv"


def rejects_path_for(path: Path, directory: Path | None = None) -> Path:
    """Where the rejected rows of ``path`` are written: beside it, or in ``directory``."""
    return (path.parent if directory is None else directory) / file_name(path.stem, REJECTS_SUFFIX)


def import_contacts(
    db: Database,
    path: Path,
    list_name: str,
    *,
    encoding: str | None = None,
    delimiter: str | None = None,
    batch_size: int = 20_000,
    progress: Progress | None = None,
    parallel: bool | None = None,
    rejects_dir: Path | None = None,
) -> ImportReport:
    """Import the contacts in ``path`` into the list ``list_name`` (created if needed); see the module doc.

    ``rejects_dir``: where the rejects report goes instead of beside ``path`` (the demo keeps its files apart).

    ``parallel`` writes to the database from a second process while this one reads the file (see
    :mod:`campaign.services.import_writer`); by default, for files of 4 MB and more, where it pays for the
    second process's start.

    Raises :class:`ImportFileError` when the file cannot be read at all (no email column, bad encoding).
    """
    list_name = clean_text(list_name) or ""
    if not list_name:
        raise ImportFileError("the list needs a name")
    refuse_long_name(list_name, what="the list name")
    report = ImportReport(path=path, list_name=list_name)
    started = datetime.now(UTC)
    # The addresses written by earlier batches, to tell a repeat in this file from a contact that was already
    # in the database.
    seen = SeenKeys()
    with (
        ContactCsv(path, encoding=encoding, delimiter=delimiter) as source,
        RejectsWriter(rejects_path_for(path, rejects_dir), source) as rejects,
    ):
        if parallel is None:
            parallel = source.size >= _PARALLEL_FROM_BYTES and not db.in_memory
        with _ListWriter(db, list_name, started, parallel=parallel) as writer:
            batch: dict[str, list[Any]] = {}  # by key: the row, as merge_many takes it
            lines: dict[str, int] = {}  # by key: the line of its last row
            for item in source.rows():
                if isinstance(item, CsvProblem):
                    report.reject(item.line, item.reason)
                    rejects.write(item.line, item.reason, item.cells)
                    continue
                try:
                    row = _validate(item)
                except FieldError as exc:
                    email = item.fields.get("email", "").strip() or None
                    report.reject(item.line, str(exc), email)
                    rejects.write(item.line, str(exc), item.cells)
                    continue
                key = row[KEY_AT]
                earlier = batch.get(key)
                if earlier is None:
                    batch[key] = row
                else:
                    report.duplicates += 1
                    _merge_into(earlier, row)
                lines[key] = item.line
                if len(batch) >= batch_size:
                    _write(writer, batch, lines, seen, report)
                    seen.update(batch)
                    batch, lines = {}, {}
                    if progress:
                        progress(source.bytes_read, source.size)
            if batch:
                _write(writer, batch, lines, seen, report)
            report.add(writer.finish())
        if progress:
            progress(source.bytes_read, source.size)
    # After the rejects file is closed: closing is where a full disk shows.
    report.rejects_error = rejects.error
    report.rejects_path = rejects.path if report.rejected and rejects.error is None else None
    return report


class _ListWriter:
    """A :class:`BatchWriter` into the list, both made on the first batch: the list is created with its first
    contacts, so an import that writes nothing (every row rejected, a file that fails) leaves no empty list.
    A context manager."""

    def __init__(self, db: Database, list_name: str, now: datetime, *, parallel: bool) -> None:
        self._db = db
        self._list_name = list_name
        self._now = now
        self._parallel = parallel
        self._stack = ExitStack()
        self._writer: BatchWriter | None = None

    def __enter__(self) -> _ListWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def write(self, batch: ImportBatch) -> BatchOutcome | None:
        """See :meth:`BatchWriter.write`."""
        if self._writer is None:
            with self._db.write() as conn:
                list_id = list_store.get_or_create(conn, self._list_name, self._now)
            self._writer = self._stack.enter_context(BatchWriter(self._db, list_id, parallel=self._parallel))
        return self._writer.write(batch)

    def finish(self) -> BatchOutcome | None:
        """See :meth:`BatchWriter.finish`."""
        return self._writer.finish() if self._writer is not None else None


def _validate(record: CsvRecord) -> list[Any]:
    """The row's canonical values in the order of ``MERGED_COLUMNS`` (None where it has none), or
    :class:`FieldError`. The CSV source leaves out blank cells."""
    raw = record.fields
    email = normalise_email(raw.get("email", ""))
    name = _text(raw, "name")
    first_name = _text(raw, "first_name")
    last_name = _text(raw, "last_name")
    organisation = _text(raw, "organisation")
    zone = raw.get("timezone")
    country = raw.get("country")
    locale = raw.get("locale")
    return [
        email,
        email_key(email),
        name,
        first_name,
        last_name,
        parse_timezone(zone) if zone else None,
        parse_country(country) if country else None,
        parse_locale(locale) if locale else None,
        organisation,
        attributes_json(record.attributes),
    ]


def _text(raw: dict[str, str], name: str) -> str | None:
    cell = raw.get(name)
    if cell is None:
        return None
    text = clean_text(cell)
    if text is not None and len(text) > (limit := _TEXT_LIMITS[name]):
        raise FieldError(name, f"longer than {limit} characters")
    return text


def _merge_into(old: list[Any], new: list[Any]) -> None:
    """``new`` over ``old``: present values win, missing ones keep what was there; attributes merge by name."""
    for i in range(_ATTRIBUTES_AT):
        if new[i] is not None:
            old[i] = new[i]
    if new[_ATTRIBUTES_AT] != _NO_ATTRIBUTES:
        merged = {**json.loads(old[_ATTRIBUTES_AT]), **json.loads(new[_ATTRIBUTES_AT])}
        old[_ATTRIBUTES_AT] = attributes_json(merged)


def _write(
    writer: _ListWriter, rows: dict[str, list[Any]], lines: dict[str, int], seen: SeenKeys, report: ImportReport
) -> None:
    batch = _batch(rows, lines, seen, _KEPT_ISSUES - len(report.flags))
    report.duplicates += len(batch.repeats)
    report.add(writer.write(batch))


def _batch(rows: dict[str, list[Any]], lines: dict[str, int], seen: SeenKeys, flag_room: int) -> ImportBatch:
    """Split a batch into addresses new to this file and repeats of an earlier batch's."""
    first: list[tuple[Any, ...]] = []
    repeats: list[tuple[Any, ...]] = []
    zoneless: dict[str, int] = {}
    for key, row in rows.items():
        if key in seen:
            repeats.append(tuple(row))
            continue
        first.append(tuple(row))
        if row[_ZONE_AT] is None:
            zoneless[key] = lines[key]
    return ImportBatch(first, repeats, zoneless, flag_room)


def _flag_reason(country: str | None) -> str:
    if country:
        return f"no time zone, and country {country} has several: they will see the organiser's time and UTC"
    return "no time zone and no country: they will see the organiser's time and UTC"


class RejectsWriter:
    """Writes rejected rows, with line and reason, to ``path`` (created on the first reject); ``what`` names the
    report in errors (another import reports other rows the same way: registrants who are not contacts).

    Cells a spreadsheet would run as formulas are neutralised: staff open this file in Excel. It is created
    readable by its owner only (0600), as exports are: it holds every cell of the rows. When the file
    cannot be written (or an old one removed), ``error`` says why and the import goes on: the summary still
    names the first rejected rows.
    """

    def __init__(self, path: Path, source: PeopleCsv, what: str = "rejects report") -> None:
        self.path = path
        self.what = what
        self.error: str | None = None
        self._source = source
        self._fh: TextIO | None = None
        self._writer: CsvWriter | None = None
        self._header: list[str] | None = None  # the file's header the rows below it are of
        # A rejects file from an earlier run would describe rows that may since have been fixed.
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            self.error = f"cannot replace the earlier {self.what} {self.path}: {exc.strerror or exc}"

    def __enter__(self) -> RejectsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fh is None:
            return
        try:
            self._fh.close()
        except OSError as exc:
            self.error = self.error or f"cannot write the {self.what} {self.path}: {exc.strerror or exc}"
        if self.error is not None:
            # Half a report would pass for the whole one.
            with suppress(OSError):
                self.path.unlink(missing_ok=True)

    def write(self, line: int, reason: str, cells: list[str], header: list[str] | None = None) -> None:
        """Append one rejected row, of the file's ``header`` (default: the source's now). A file in sections
        (:attr:`~campaign.sources.csv_contacts.HeaderSpec.sections`) has a header per section: when a row's differs
        from the one above, it is written again, so that every row is under its own."""
        if self.error is not None:
            return
        header = self._source.header_names if header is None else header
        try:
            if self._writer is None:
                # Personal data (every cell of the row): readable by its owner only, as exports are.
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                self._fh = open(fd, "w", encoding="utf-8-sig", newline="")  # noqa: SIM115 - closed in __exit__
                self._writer = CsvWriter(self._fh, delimiter=self._source.delimiter)
            if header != self._header:
                self._writer.row(["line", "reason", *header])
                self._header = header
            self._writer.row([line, reason, *cells])
        except OSError as exc:
            self.error = f"cannot write the {self.what} {self.path}: {exc.strerror or exc}"
