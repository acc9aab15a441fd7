"""Reading CSV files of people (contacts; a webinar platform's registrants) as people really have them.

Contract: :class:`ContactCsv` opens a file, settles its encoding and delimiter, maps its header to contact
fields, and then yields one :class:`CsvRecord` per data row with the line number the row starts on (as a
text editor or spreadsheet shows it). It reads the file as a stream: memory stays bounded whatever the size.
Its base :class:`PeopleCsv` does the same for any :class:`HeaderSpec` (which fields, whether other columns
are attributes, whether a report's title rows may come before the header, whether the file is in sections each
with its own header): the registrant exports of :mod:`campaign.sources.csv_registrants` and the attendee reports
of :mod:`campaign.sources.csv_attendees` (Zoom's, in sections) are read by the same code.

Handled: UTF-8 with or without BOM; Windows-1252/Latin-1 when asked (``encoding``); CRLF; comma, semicolon
or tab delimiters (sniffed from the header line: Excel in much of Europe writes semicolons); quoted fields
with embedded newlines; case-insensitive headers with common aliases. Invalid UTF-8 is refused before any
row is read, naming the line, so an import never half-happens on a wrongly encoded file.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, ClassVar, Self

from campaign.exceptions import ImportFileError
from campaign.rules.characters import ATTRIBUTE_CONTROL
from campaign.rules.contact_fields import without_format_characters
from campaign.sources.csv_writer import from_spreadsheet_safe

# Canonical contact fields and the header spellings that mean them (compared lower-case, letters and digits only).
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "email": ("email", "emailaddress", "mail", "emailid", "correo", "courriel"),
    "name": ("name", "fullname", "displayname", "contactname"),
    "first_name": ("firstname", "givenname", "forename", "first"),
    "last_name": ("lastname", "surname", "familyname", "last"),
    "timezone": ("timezone", "tz", "zone", "ianatimezone", "tzname"),
    "country": ("country", "countrycode", "iso2", "countryiso"),
    "locale": ("locale", "language", "lang", "languagetag"),
    "organisation": ("organisation", "organization", "org", "company", "employer", "institution"),
}


@dataclass(frozen=True, slots=True)
class HeaderSpec:
    """What the header cells of a kind of file mean.

    ``aliases``: canonical fields and the header spellings that mean them (compared lower-case, letters and
    digits only); one of them must be ``email``. ``attributes``: whether any other column becomes a custom
    attribute (else it is ignored, and may repeat). ``preamble``: 0 when the first non-blank line is the header;
    else the header is the first line with an email column among the first ``preamble`` lines (a report's
    title rows come before it). ``sections``: for a report in sections (Zoom's attendee report: "Host Details",
    "Panelist Details", "Attendee Details" ..., each a title row then its own header and rows), the section
    titles (as :func:`header_key` spells them) and whether each section's rows are read; a section's header is
    the row after its title. Rows before the first title are read; rows of a section not read are skipped.
    """

    aliases: dict[str, tuple[str, ...]]
    attributes: bool = True
    preamble: int = 0
    sections: Mapping[str, bool] | None = None

    def field_of(self, header: str) -> str | None:
        """The field a header cell means, or None."""
        key = header_key(header)
        return next((name for name, aliases in self.aliases.items() if key in aliases), None)

    def section_of(self, cells: list[str]) -> bool | None:
        """For a section title row (one non-blank cell, first, naming a section of :attr:`sections`), whether its
        section is read; None for any other row."""
        if self.sections is None or not cells or not cells[0].strip() or any(c.strip() for c in cells[1:]):
            return None
        return self.sections.get(header_key(cells[0]))


def header_key(header: str) -> str:
    """How header cells and section titles are compared: lower-case, letters and digits only."""
    return re.sub(r"[^0-9a-z]", "", header.strip().lstrip("\ufeff").lower())


CONTACT_HEADER = HeaderSpec(FIELD_ALIASES)
"""The header of a contacts file: :data:`FIELD_ALIASES`, any other column an attribute."""
_DELIMITERS = (",", ";", "\t")
_SCAN_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class CsvRecord:
    """One data row: its first line number, canonical fields, custom attributes, and the raw cells."""

    line: int
    fields: dict[str, str]
    attributes: dict[str, str]
    cells: list[str]


@dataclass(frozen=True, slots=True)
class CsvProblem:
    """A row that could not even be split into cells (e.g. a stray quote)."""

    line: int
    reason: str
    cells: list[str]


class PeopleCsv:
    """A CSV file of people with the header :attr:`spec`, opened for streaming. Use as a context manager, then
    iterate :meth:`rows`."""

    spec: ClassVar[HeaderSpec]

    def __init__(self, path: Path, *, encoding: str | None = None, delimiter: str | None = None) -> None:
        self.path = path
        try:
            self.size = path.stat().st_size
            self._fh: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed by close()/__exit__
        except OSError as exc:
            raise ImportFileError(f"{path}: cannot open: {exc.strerror}") from None
        self.bytes_read = 0
        try:
            self.encoding = encoding or self._detect_encoding()
            self._check_codec()
            self._lines = self._decoded_lines()
            self.header, header_lines, self.delimiter, header_cells = self._read_header(delimiter)
            self.columns = map_header(header_cells, path, self.spec)
            self._first_data_line = 1 + header_lines
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file."""
        self._fh.close()

    @property
    def header_names(self) -> list[str]:
        """The header cells as written in the file."""
        return [column.header for column in self.columns]

    def rows(self) -> Iterator[CsvRecord | CsvProblem]:
        """Yield every data row in file order; blank lines are skipped."""
        # strict: a quote that is never closed is an error at the row it opens on, not a name that silently
        # swallows every row after it.
        reader = csv.reader(self._lines, delimiter=self.delimiter, strict=True)
        width, field_columns, attribute_columns = _layout(self.columns)
        sectioned = self.spec.sections is not None
        reading, header_next = True, False  # in a section whose rows are read; its header is the next row
        first_data_line = self._first_data_line
        previous_end = first_data_line - 1
        while True:
            start = previous_end + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                previous_end = first_data_line - 1 + reader.line_num
                yield CsvProblem(start, f"unreadable CSV: {exc}", [])
                continue
            previous_end = first_data_line - 1 + reader.line_num
            count = len(cells)
            # Blank when every cell is: the same as their concatenation being blank, and cheaper to ask.
            if not "".join(cells).strip():
                continue
            if sectioned:
                if (read := self.spec.section_of(cells)) is not None:
                    reading = header_next = read
                    continue
                if not reading:
                    continue
                if header_next:
                    header_next = False
                    try:
                        self.columns = map_header(cells, self.path, self.spec)
                    except ImportFileError as exc:
                        reading = False  # its rows cannot be read: said once, at its header
                        yield CsvProblem(start, f"section header: {exc}", cells)
                        continue
                    width, field_columns, attribute_columns = _layout(self.columns)
                    continue
            if count > width and any(cell.strip() for cell in cells[width:]):
                yield CsvProblem(start, f"{count} fields but the header has {width}", cells)
                continue
            fields: dict[str, str] = {}
            # Cells are read back from spreadsheet_safe's form, so that an export imports unchanged (the quote
            # test inline: few cells start with one, and a call for every cell of a large file is not free).
            for i, name in field_columns:
                if i < count and (cell := cells[i]).strip():
                    if cell[:1] == "'":
                        value = from_spreadsheet_safe(cell)
                        # No address starts with "@", so an export never wrote `'@...` for one: such a cell is
                        # an address whose local part starts with a quote, as written by hand.
                        cell = cell if name == "email" and value[:1] == "@" else value
                    fields[name] = cell
            attributes: dict[str, str] = {}
            for i, name in attribute_columns:
                if i < count and (value := cells[i].strip()):
                    if value[:1] == "'":
                        value = from_spreadsheet_safe(value)
                    # NUL and other controls are never data (PostgreSQL's JSON refuses NUL); tab and line
                    # breaks are kept: an attribute may be an address.
                    value = ATTRIBUTE_CONTROL.sub("", value)
                    # Bidi overrides reorder what a template shows, as in names (clean_text).
                    attributes[name] = value if value.isprintable() else without_format_characters(value)
            yield CsvRecord(start, fields, attributes, cells)

    def _detect_encoding(self) -> str:
        head = self._fh.read(4)
        self._fh.seek(0)
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            raise ImportFileError(f"{self.path}: the file is UTF-16; save it as CSV UTF-8 and import again")
        return "utf-8-sig" if head.startswith(codecs.BOM_UTF8) else "utf-8"

    def _check_codec(self) -> None:
        try:
            info = codecs.lookup(self.encoding)
        except LookupError:
            raise ImportFileError(f"unknown encoding {self.encoding!r}") from None
        self._scan(info.name)

    def _scan(self, codec: str) -> None:
        """Decode the whole file once up front (about 1 GB/s), so that an import never stops half-way on a
        byte the encoding cannot read; the error names the first bad line."""
        decoder = codecs.getincrementaldecoder(codec)()
        name = "UTF-8" if codec.startswith("utf-8") else self.encoding
        line = 1
        while chunk := self._fh.read(_SCAN_CHUNK):
            carried = len(decoder.getstate()[0])  # bytes of a character cut by the previous read
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                bad_line = line + chunk[: max(exc.start - carried, 0)].count(b"\n")
                if b"\x00" in chunk:  # no text encoding of a CSV holds NUL bytes (UTF-16 is found before)
                    raise ImportFileError(
                        f"{self.path}: not a text file (it holds NUL bytes: a spreadsheet's own format, an archive?);"
                        " save it as CSV UTF-8 and import again"
                    ) from None
                advice = (
                    "if the file was saved as Windows-1252 or Latin-1 (Excel on Windows), import it with "
                    "--encoding cp1252"
                    if codec.startswith("utf-8")
                    else "check the file's encoding (--encoding)"
                )
                raise ImportFileError(f"{self.path}: line {bad_line} is not valid {name}; {advice}") from None
            line += chunk.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise ImportFileError(f"{self.path}: line {line} ends in the middle of a {name} character") from None
        self._fh.seek(0)

    def _decoded_lines(self) -> Iterator[str]:
        # Split bytes on LF (the same byte in every supported encoding) and decode each line, so that line
        # numbers stay exact and the progress counter knows how far into the file we are.
        decode = codecs.getdecoder(self.encoding)
        first = True
        for raw in self._fh:
            self.bytes_read += len(raw)
            if first and self.encoding == "utf-8-sig":
                raw = raw.removeprefix(codecs.BOM_UTF8)
            first = False
            yield decode(raw)[0]

    def _read_header(self, delimiter: str | None) -> tuple[str, int, str, list[str]]:
        """The header line, its line number, the delimiter and the header cells (see :class:`HeaderSpec`)."""
        widest: list[str] = []
        reading = True  # in a section whose rows are read (see HeaderSpec.sections)
        for number, text in enumerate(self._lines, 1):
            if not text.strip():
                continue
            if "\r" in text.rstrip("\r\n"):
                raise ImportFileError(
                    f"{self.path}: lines end in a bare CR (the old Mac format); save the file as CSV UTF-8 and "
                    "import again"
                )
            sep = delimiter or sniff_delimiter(text)
            try:
                cells = next(csv.reader([text], delimiter=sep, strict=True))
            except csv.Error as exc:
                if not self.spec.preamble:
                    raise ImportFileError(f"{self.path}: line {number}: the header cannot be read: {exc}") from None
                cells = []  # a title row with a quoted line break: not the header
            if (read := self.spec.section_of(cells)) is not None:
                reading = read
                continue
            if not reading:
                continue
            if not self.spec.preamble or any(self.spec.field_of(cell) == "email" for cell in cells):
                return text, number, sep, cells
            widest = max(widest, cells, key=len)
            if number >= self.spec.preamble:
                break
        if widest:
            # No line has an email column: the widest one is most likely the header, so name its columns.
            map_header(widest, self.path, self.spec)
        raise ImportFileError(f"{self.path}: the file is empty")


class ContactCsv(PeopleCsv):
    """A contacts CSV file (:data:`CONTACT_HEADER`), opened for streaming."""

    spec = CONTACT_HEADER


@dataclass(frozen=True, slots=True)
class Column:
    """A header cell: the contact field it fills, or the custom attribute name it becomes."""

    header: str
    field: str | None
    attribute: str


def _layout(columns: list[Column]) -> tuple[int, list[tuple[int, str]], list[tuple[int, str]]]:
    """A header's width, and the (cell index, name) of its columns that fill a field and of those that become
    attributes, in order."""
    fields = [(i, c.field) for i, c in enumerate(columns) if c.field is not None]
    attributes = [(i, c.attribute) for i, c in enumerate(columns) if c.field is None and c.attribute]
    return len(columns), fields, attributes


def sniff_delimiter(header: str) -> str:
    """The delimiter that splits the header line into the most cells (comma on a tie)."""
    unquoted = re.sub(r'"[^"]*"', "", header)
    return max(_DELIMITERS, key=lambda d: (unquoted.count(d), d == ","))


def map_header(cells: list[str], path: Path, spec: HeaderSpec = CONTACT_HEADER) -> list[Column]:
    """Map header cells to the fields of ``spec`` (contact fields by default) and attribute names; the email
    column is required."""
    columns: list[Column] = []
    seen: dict[str, str] = {}
    for cell in cells:
        header = cell.strip().lstrip("\ufeff")
        field = spec.field_of(header)
        attribute = attribute_name(header) if spec.attributes else ""
        target = field or attribute
        if target and target in seen:
            raise ImportFileError(f"{path}: columns {seen[target]!r} and {header!r} both mean {target!r}")
        if target:
            seen[target] = header
        columns.append(Column(header, field, attribute))
    if "email" not in seen:
        found = ", ".join(repr(c.header) for c in columns) or "nothing"
        raise ImportFileError(f"{path}: no email column (the header has {found})")
    return columns


def attribute_name(header: str) -> str:
    """A template-friendly identifier for a custom column: ``Job Title`` becomes ``job_title``."""
    name = re.sub(r"\W+", "_", header.strip().lower()).strip("_")
    if name and name[0].isdigit():
        name = "col_" + name
    return name
