"""Importing contacts from CSV into a list.

Contract of :func:`import_contacts`:

* Every data row ends as exactly one of: *new*, *updated*, *unchanged*, *duplicate* (merged into an earlier
  row of the same file) or *rejected*. A rejected row is reported with its line number and reason, and
  written to ``<file>.rejects.csv`` beside the input; the rest imports.
* Addresses are matched case-insensitively, within the file and against the database: re-importing
  updates, never duplicates. A non-empty cell overwrites the stored value; an empty cell keeps it.
* A contact left without a time zone gets the zone of its country when that country has only one;
  otherwise it is imported and *flagged* (it will see the organiser's time and UTC).
* Suppressed addresses (unsubscribed, bounced) stay suppressed: importing never lifts a suppression.
* The file is streamed and written in batches, one transaction each, so memory stays bounded and an
  interrupted import can simply be run again.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from campaign.exceptions import ImportFileError
from campaign.models import Contact
from campaign.rules.contact_fields import (
    FieldError,
    clean_text,
    email_key,
    normalise_email,
    parse_country,
    parse_locale,
    parse_timezone,
    zone_for_country,
)
from campaign.sources.csv_contacts import ContactCsv, CsvProblem, CsvRecord, spreadsheet_safe
from campaign.store import contacts as contact_store
from campaign.store import lists as list_store
from campaign.store import suppressions as suppression_store
from campaign.store.contacts import CONTACT_FIELDS
from campaign.store.engine import Database

Progress = Callable[[int, int], None]
"""Called with (bytes read, file size) after each batch."""

_TEXT_LIMITS = {"name": 300, "first_name": 200, "last_name": 200, "organisation": 300}
_NO_VALUES: dict[str, Any] = dict.fromkeys(CONTACT_FIELDS)
_KEPT_ISSUES = 50
_KEYS_PER_STATEMENT = 10_000


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

    @property
    def imported(self) -> int:
        """Rows that reached the database (everything but rejected rows)."""
        return self.new + self.updated + self.unchanged + self.duplicates

    @property
    def rows(self) -> int:
        """Data rows read."""
        return self.imported + self.rejected

    def reject(self, line: int, reason: str, email: str | None = None) -> None:
        """Count a rejected row, keeping the first few for the summary."""
        self.rejected += 1
        if len(self.rejections) < _KEPT_ISSUES:
            self.rejections.append(RowIssue(line, reason, email))

    def flag(self, line: int, reason: str, email: str | None) -> None:
        """Count an imported row that needs a look, keeping the first few."""
        self.flagged += 1
        if len(self.flags) < _KEPT_ISSUES:
            self.flags.append(RowIssue(line, reason, email))


@dataclass(slots=True)
class _Pending:
    """A valid row waiting in the current batch (duplicates in the batch merged into it)."""

    line: int
    key: str
    values: dict[str, Any]
    repeat: bool = False  # the address already appeared in an earlier batch of this file


def rejects_path_for(path: Path) -> Path:
    """Where the rejected rows of ``path`` are written."""
    return path.with_name(f"{path.stem}.rejects.csv")


def import_contacts(
    db: Database,
    path: Path,
    list_name: str,
    *,
    encoding: str | None = None,
    delimiter: str | None = None,
    batch_size: int = 20_000,
    progress: Progress | None = None,
) -> ImportReport:
    """Import the contacts in ``path`` into the list ``list_name`` (created if needed); see the module doc.

    Raises :class:`ImportFileError` when the file cannot be read at all (no email column, bad encoding).
    """
    list_name = clean_text(list_name) or ""
    if not list_name:
        raise ImportFileError("the list needs a name")
    report = ImportReport(path=path, list_name=list_name)
    started = datetime.now(UTC)
    # Hashes of the addresses written by earlier batches, to tell a repeat in this file from a contact that
    # was already in the database. About 60 bytes an address (60 MB for a million rows); str hashes are
    # 64-bit, so a collision (miscounting one row) is about a one-in-ten-million chance per million rows.
    seen: set[int] = set()
    with ContactCsv(path, encoding=encoding, delimiter=delimiter) as source, _RejectsWriter(path, source) as rejects:
        with db.write() as conn:
            list_id = list_store.get_or_create(conn, list_name, started)
        batch: dict[str, _Pending] = {}
        for item in source.rows():
            if isinstance(item, CsvProblem):
                report.reject(item.line, item.reason)
                rejects.write(item.line, item.reason, item.cells)
                continue
            try:
                values = _validate(item)
            except FieldError as exc:
                email = item.fields.get("email", "").strip() or None
                report.reject(item.line, str(exc), email)
                rejects.write(item.line, str(exc), item.cells)
                continue
            key = email_key(values["email"])
            earlier = batch.get(key)
            if earlier is None:
                batch[key] = _Pending(item.line, key, values, repeat=hash(key) in seen)
            else:
                report.duplicates += 1
                earlier.values = _merge(earlier.values, values)
                earlier.line = item.line
            if len(batch) >= batch_size:
                _write_batch(db, list_id, batch.values(), report)
                seen.update(hash(k) for k in batch)
                batch.clear()
                if progress:
                    progress(source.bytes_read, source.size)
        _write_batch(db, list_id, batch.values(), report)
        if progress:
            progress(source.bytes_read, source.size)
        report.rejects_path = rejects.path if report.rejected else None
    return report


def _validate(record: CsvRecord) -> dict[str, Any]:
    """The row's canonical values (only the fields it has), or :class:`FieldError`."""
    raw = record.fields
    values: dict[str, Any] = {"email": normalise_email(raw.get("email", ""))}
    for name, limit in _TEXT_LIMITS.items():
        cell = raw.get(name)
        if cell is None:
            continue
        text = clean_text(cell)
        if text is not None:
            if len(text) > limit:
                raise FieldError(name, f"longer than {limit} characters")
            values[name] = text
    if zone := raw.get("timezone", "").strip():
        values["timezone"] = parse_timezone(zone)
    if country := raw.get("country", "").strip():
        values["country"] = parse_country(country)
    if locale := raw.get("locale", "").strip():
        values["locale"] = parse_locale(locale)
    if record.attributes:
        values["attributes"] = record.attributes
    return values


def _merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``new`` over ``old``: present values win, missing ones keep what was there; attributes merge by key."""
    merged = {**old, **new}
    if "attributes" in old and "attributes" in new:
        merged["attributes"] = {**old["attributes"], **new["attributes"]}
    return merged


def _stored_values(contact: Contact) -> dict[str, Any]:
    values: dict[str, Any] = {name: getattr(contact, name) for name in CONTACT_FIELDS}
    values["attributes"] = dict(contact.attributes)
    return _present(values)


def _present(values: dict[str, Any]) -> dict[str, Any]:
    """The values that say something: an empty field or attribute set is the same as none."""
    return {name: value for name, value in values.items() if value not in (None, {})}


def _write_batch(db: Database, list_id: int, batch: Iterable[_Pending], report: ImportReport) -> None:
    pending = list(batch)
    if not pending:
        return
    now = datetime.now(UTC)
    keys = [p.key for p in pending]
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    # Keys go to the database in chunks: SQLite takes at most 32,766 values in one statement.
    chunks = [keys[i : i + _KEYS_PER_STATEMENT] for i in range(0, len(keys), _KEYS_PER_STATEMENT)]
    with db.write() as conn:
        existing: dict[str, Contact] = {}
        suppressed: set[str] = set()
        for chunk in chunks:
            existing.update(contact_store.by_keys(conn, chunk))
            suppressed.update(suppression_store.reasons_for(conn, chunk))
        for p in pending:
            current = existing.get(p.key)
            # A new contact (the usual case) takes its values as they are; an existing one merges them in.
            stored = _stored_values(current) if current is not None else {}
            values = _merge(stored, p.values) if current is not None else p.values
            zone = values.get("timezone")
            if zone is None:
                country = values.get("country")
                zone = zone_for_country(country) if country else None
                if zone is None and not p.repeat:
                    report.flag(p.line, _flag_reason(values), values["email"])
            if p.key in suppressed and not p.repeat:
                report.suppressed += 1
            row = {**_NO_VALUES, **values, "timezone": zone, "attributes": values.get("attributes", {})}
            if current is None:
                inserts.append({**row, "email_key": p.key})
                report.new += 1
                continue
            changed = stored != _present(row)
            if p.repeat:
                report.duplicates += 1
            elif changed:
                report.updated += 1
            else:
                report.unchanged += 1
            if changed:
                updates.append({**row, "b_id": current.id, "updated_at": now})
        contact_store.create_many(conn, inserts, now)
        contact_store.update_many(conn, updates)
        for chunk in chunks:
            list_store.add_members_by_key(conn, list_id, chunk, now)


def _flag_reason(values: dict[str, Any]) -> str:
    country = values.get("country")
    if country:
        return f"no time zone, and country {country} has several: they will see the organiser's time and UTC"
    return "no time zone and no country: they will see the organiser's time and UTC"


class _RejectsWriter:
    """Writes rejected rows, with line and reason, to ``<file>.rejects.csv`` (created on the first reject).

    Cells a spreadsheet would run as formulas are neutralised: staff open this file in Excel.
    """

    def __init__(self, path: Path, source: ContactCsv) -> None:
        self.path = rejects_path_for(path)
        self._source = source
        self._fh: TextIO | None = None
        self._writer: Any = None
        # A rejects file from an earlier run would describe rows that may since have been fixed.
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> _RejectsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            self._fh.close()

    def write(self, line: int, reason: str, cells: list[str]) -> None:
        """Append one rejected row."""
        if self._writer is None:
            self._fh = open(self.path, "w", encoding="utf-8-sig", newline="")  # noqa: SIM115 - closed in __exit__
            self._writer = csv.writer(self._fh, delimiter=self._source.delimiter)
            self._writer.writerow(["line", "reason", *(spreadsheet_safe(h) for h in self._source.header_names)])
        self._writer.writerow([str(line), reason, *(spreadsheet_safe(c) for c in cells)])
