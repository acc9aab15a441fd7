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
_KEPT_ISSUES = 50


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
    batch_size: int = 2_000,
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
                batch[key] = _Pending(item.line, key, values)
            else:
                report.duplicates += 1
                earlier.values = _merge(earlier.values, values)
                earlier.line = item.line
            if len(batch) >= batch_size:
                _write_batch(db, list_id, batch.values(), started, report)
                batch.clear()
                if progress:
                    progress(source.bytes_read, source.size)
        _write_batch(db, list_id, batch.values(), started, report)
        if progress:
            progress(source.bytes_read, source.size)
        report.rejects_path = rejects.path if report.rejected else None
    return report


def _validate(record: CsvRecord) -> dict[str, Any]:
    """The row's canonical values (only the fields it has), or :class:`FieldError`."""
    raw = record.fields
    values: dict[str, Any] = {"email": normalise_email(raw.get("email", ""))}
    for name, limit in _TEXT_LIMITS.items():
        text = clean_text(raw.get(name))
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
    return {name: value for name, value in values.items() if value not in (None, {})}


def _write_batch(
    db: Database, list_id: int, batch: Iterable[_Pending], started: datetime, report: ImportReport
) -> None:
    pending = list(batch)
    if not pending:
        return
    now = datetime.now(UTC)
    keys = [p.key for p in pending]
    inserts: list[dict[str, Any]] = []
    insert_keys: list[str] = []
    updates: list[dict[str, Any]] = []
    member_ids: list[int] = []
    with db.write() as conn:
        existing = contact_store.by_keys(conn, keys)
        report.suppressed += len(suppression_store.reasons_for(conn, keys))
        for p in pending:
            current = existing.get(p.key)
            values = _merge(_stored_values(current), p.values) if current else dict(p.values)
            if "timezone" not in values:
                values.update(_infer_zone(values))
                if "timezone" not in values:
                    report.flag(p.line, _flag_reason(values), values["email"])
            row = {name: values.get(name) for name in CONTACT_FIELDS}
            row["attributes"] = values.get("attributes", {})
            if current is None:
                inserts.append({**row, "email_key": p.key, "created_at": now, "updated_at": now})
                insert_keys.append(p.key)
                report.new += 1
                continue
            member_ids.append(current.id)
            # The same address earlier in this file (in an earlier batch) created or changed this contact.
            touched_by_this_import = current.updated_at is not None and current.updated_at >= started
            if touched_by_this_import:
                report.duplicates += 1
            if _stored_values(current) == {k: v for k, v in values.items() if v not in (None, {})}:
                if not touched_by_this_import:
                    report.unchanged += 1
                continue
            if not touched_by_this_import:
                report.updated += 1
            updates.append({**row, "b_id": current.id, "updated_at": now})
        member_ids.extend(contact_store.insert_many(conn, inserts))
        contact_store.update_many(conn, updates)
        list_store.add_members(conn, list_id, member_ids, now)


def _infer_zone(values: dict[str, Any]) -> dict[str, str]:
    country = values.get("country")
    zone = zone_for_country(country) if country else None
    return {"timezone": zone} if zone else {}


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
            self._writer.writerow(["line", "reason", *self._source.header_names])
        self._writer.writerow([str(line), reason, *(spreadsheet_safe(c) for c in cells)])
