"""Importing hostile CSV files, read back through the contacts service, on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import random
import shutil
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Connection, func, insert, select
from sqlalchemy.exc import IntegrityError

from campaign.exceptions import ImportFileError, NotFoundError
from campaign.models import Contact
from campaign.services.contact_import import ImportReport, import_contacts, rejects_path_for
from campaign.services.contacts import contact_details, export_contacts, find_contacts, list_lists
from campaign.store import contacts as contact_store
from campaign.store import lists as list_store
from campaign.store.engine import Database
from campaign.store.tables import contacts, list_members, lists, suppressions
from tests.conftest import DATA

WriteCsv = Callable[..., Path]


# --- helpers -------------------------------------------------------------------------------------------------


def _contact(db: Database, email: str) -> Contact:
    return contact_details(db, email).contact


def _all(db: Database, list_name: str | None = None) -> list[Contact]:
    return list(find_contacts(db, list_name=list_name))


def _export(db: Database, list_name: str | None = None) -> list[dict[str, str]]:
    out = io.StringIO()
    count = export_contacts(db, out, list_name=list_name)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert count == len(rows)
    return rows


def _rejects(path: Path, delimiter: str = ",") -> list[list[str]]:
    text = rejects_path_for(path).read_text(encoding="utf-8-sig")
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))


def _sizes(db: Database) -> dict[str, int]:
    return {contact_list.name: contact_list.size for contact_list in list_lists(db)}


def _accounted(report: ImportReport, data_rows: int) -> None:
    """Every data row ends as exactly one outcome."""
    outcomes = report.new + report.updated + report.unchanged + report.duplicates + report.rejected
    assert outcomes == report.rows == data_rows


def _suppress(db: Database, email_key: str, reason: str = "unsubscribed") -> None:
    with db.write() as conn:
        conn.execute(insert(suppressions).values(email_key=email_key, reason=reason, created_at=datetime.now(UTC)))


# --- encodings, delimiters, line endings ---------------------------------------------------------------------


def test_utf8_bom_is_not_part_of_the_first_header(db: Database, write_csv: WriteCsv) -> None:
    path = write_csv(b"\xef\xbb\xbf" + "email,name\nzoe@example.org,Zoë\n".encode())
    report = import_contacts(db, path, "list")
    assert report.new == 1
    contact = _contact(db, "zoe@example.org")
    assert contact.name == "Zoë"
    assert dict(contact.attributes) == {}
    assert next(iter(_export(db)[0])) == "email"


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_semicolon_and_tab_delimited_files(db: Database, write_csv: WriteCsv, delimiter: str) -> None:
    lines = [
        ["E-mail", "Name", "Country", "Organisation"],
        ["maria@example.org", "Santos, Maria", "PH", "A, B and C"],
        ["jose@example.org", "José Reyes", "CO", "Samahan"],
    ]
    path = write_csv("".join(delimiter.join(cells) + "\n" for cells in lines))
    report = import_contacts(db, path, "list")
    assert (report.new, report.rejected) == (2, 0)
    maria = _contact(db, "maria@example.org")
    assert (maria.name, maria.organisation, maria.country) == ("Santos, Maria", "A, B and C", "PH")
    assert maria.timezone == "Asia/Manila"
    assert _contact(db, "jose@example.org").timezone == "America/Bogota"


CP1252_TEXT = (
    "email,name,organisation\n"
    "lukas@example.org,Lukas Müller,Verband Schweizer Pflegeunternehmen\n"
    "jose@example.org,José Reyes,Federación Colombiana de Empleadores\n"
    "francois@example.org,François Lefèvre,“Les Amis” — Œuvre sociale €\n"
)


def test_windows_1252_file_with_its_encoding(db: Database, write_csv: WriteCsv) -> None:
    path = write_csv(CP1252_TEXT, encoding="cp1252")
    report = import_contacts(db, path, "list", encoding="cp1252")
    assert (report.new, report.rejected) == (3, 0)
    assert _contact(db, "lukas@example.org").name == "Lukas Müller"
    assert _contact(db, "jose@example.org").name == "José Reyes"
    assert _contact(db, "jose@example.org").organisation == "Federación Colombiana de Empleadores"
    francois = _contact(db, "francois@example.org")
    assert (francois.name, francois.organisation) == ("François Lefèvre", "“Les Amis” — Œuvre sociale €")


def test_latin1_file_with_its_encoding(db: Database, write_csv: WriteCsv) -> None:
    path = write_csv("email,name\nines@example.org,Inês Müller-Ñandú\n", encoding="latin-1")
    import_contacts(db, path, "list", encoding="latin-1")
    assert _contact(db, "ines@example.org").name == "Inês Müller-Ñandú"


def test_a_binary_file_is_refused_as_not_text_not_with_advice_on_encodings(db: Database, tmp_path: Path) -> None:
    # A spreadsheet's own format (a zip archive, as .xlsx is) imported by mistake: the advice to try cp1252, given
    # to any file that is not UTF-8, did not apply.
    path = tmp_path / "contacts.csv"
    path.write_bytes(b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00\xa4\xc1\x8b\xfb" + bytes(range(256)) * 4)
    with pytest.raises(ImportFileError, match=r"contacts\.csv: not a text file \(it holds NUL bytes") as exc:
        import_contacts(db, path, "list")
    assert "cp1252" not in str(exc.value)
    assert list_lists(db) == []


def test_windows_1252_file_without_encoding_is_refused_naming_the_first_bad_line(
    db: Database, write_csv: WriteCsv
) -> None:
    path = write_csv(
        "email,name\na@example.org,Ann\nb@example.org,Bob\nlukas@example.org,Lukas Müller\nc@example.org,José\n",
        encoding="cp1252",
    )
    with pytest.raises(ImportFileError, match=r"line 4 is not valid UTF-8.*cp1252"):
        import_contacts(db, path, "list")
    # Nothing half-happened: no contact, no list, no rejects file.
    assert _all(db) == []
    assert list_lists(db) == []
    assert not rejects_path_for(path).exists()


def test_a_wrongly_chosen_single_byte_encoding_is_an_import_error(db: Database, write_csv: WriteCsv) -> None:
    """A UTF-8 file imported with --encoding cp1252 holds bytes cp1252 does not define ("Ł" is C5 81).

    That must be reported as an :class:`ImportFileError` naming the line (the contract: "bad encoding"), not
    escape as a raw UnicodeDecodeError from the middle of the import.
    """
    path = write_csv("email,name\na@example.org,Ann\nl@example.org,Łukasz Nowak\n")
    with pytest.raises(ImportFileError, match="line 3"):
        import_contacts(db, path, "list", encoding="cp1252")


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_files_are_refused(db: Database, write_csv: WriteCsv, codec: str) -> None:
    content = "email,name\na@example.org,Ann\n".encode(codec)
    if codec != "utf-16":
        content = ("\ufeff".encode(codec)) + content
    with pytest.raises(ImportFileError, match="UTF-16"):
        import_contacts(db, write_csv(content), "list")
    assert _all(db) == []


def test_crlf_line_endings(db: Database, write_csv: WriteCsv) -> None:
    path = write_csv(
        "email,name,timezone,Job Title\r\n"
        "a@example.org,Ann,Asia/Manila,Boss\r\n"
        "b@example.org,Bob,Nowhere/Land,Clerk\r\n"
        "c@example.org,Cy,Europe/London,Chef\r\n"
    )
    report = import_contacts(db, path, "list")
    assert (report.new, report.rejected) == (2, 1)
    assert [(r.line, r.email) for r in report.rejections] == [(3, "b@example.org")]
    ann = _contact(db, "a@example.org")
    assert (ann.name, ann.timezone, dict(ann.attributes)) == ("Ann", "Asia/Manila", {"job_title": "Boss"})
    assert dict(_contact(db, "c@example.org").attributes) == {"job_title": "Chef"}


def test_old_mac_cr_only_line_endings_import_or_are_refused_cleanly(db: Database, write_csv: WriteCsv) -> None:
    """Excel for Mac's "CSV (Macintosh)" ends lines with a bare CR: import it, or refuse it with an ImportFileError."""
    path = write_csv("email,name\ra@example.org,Ann\rb@example.org,Bob\r")
    try:
        report = import_contacts(db, path, "list")
    except ImportFileError:
        assert _all(db) == []
        return
    assert (report.new, report.rejected) == (2, 0)
    assert [c.name for c in _all(db)] == ["Ann", "Bob"]


# --- quoting, line breaks and line numbers -------------------------------------------------------------------


def test_quoted_newlines_report_the_line_a_row_starts_on(db: Database, write_csv: WriteCsv) -> None:
    path = write_csv(
        "email,name,country\n"  # 1
        'ana@example.org,"Ana\n'  # 2
        "Dela\n"  # 3
        'Cruz",\n'  # 4
        "not-an-email,Bob,PH\n"  # 5
        'also bad,"Two\n'  # 6
        'Lines",PH\n'  # 7
        "\n"  # 8 (blank: skipped)
        "c@example.org,Cy,Mars\n"  # 9
        'd@example.org,"Dee\r\n'  # 10
        'Dee",US\n'  # 11
        "e@example.org,Eve,QQ\n"  # 12
    )
    report = import_contacts(db, path, "list")
    _accounted(report, 6)
    assert [(issue.line, issue.reason.split(":")[0]) for issue in report.rejections] == [
        (5, "email"),
        (6, "email"),
        (9, "country"),
        (12, "country"),
    ]
    # Flags (no zone) name the starting line too.
    assert [(issue.line, issue.email) for issue in report.flags] == [(2, "ana@example.org"), (10, "d@example.org")]
    assert _contact(db, "ana@example.org").name == "Ana Dela Cruz"
    assert _contact(db, "d@example.org").name == "Dee Dee"
    assert [row[0] for row in _rejects(path)] == ["line", "5", "6", "9", "12"]


@pytest.mark.parametrize(
    "cell", ['"Ana\r\nDela Cruz"', '"Ana\nDela Cruz"', '"Ana\rDela Cruz"', '"Ana\r\n\r\n Dela\tCruz "']
)
def test_line_breaks_inside_a_name_become_one_space(db: Database, write_csv: WriteCsv, cell: str) -> None:
    path = write_csv(f"email,name,first_name,organisation\nana@example.org,{cell},{cell},{cell}\n")
    report = import_contacts(db, path, "list")
    assert report.new == 1
    ana = _contact(db, "ana@example.org")
    assert ana.name == ana.first_name == ana.organisation == "Ana Dela Cruz"


def test_an_unterminated_quote_does_not_swallow_the_rows_after_it(db: Database, write_csv: WriteCsv) -> None:
    """A stray opening quote must not silently turn the rest of the file into one contact's name."""
    path = write_csv(
        "email,name\n"  # 1
        "a@example.org,Ann\n"  # 2
        'b@example.org,"Bob\n'  # 3: the quote is never closed
        "c@example.org,Cy\n"  # 4
        "d@example.org,Dee\n"  # 5
    )
    report = import_contacts(db, path, "list")
    for contact in _all(db):
        assert "@" not in (contact.name or ""), f"{contact.email} swallowed other rows: {contact.name!r}"
    assert report.rejected >= 1
    assert report.rejections[0].line == 3


# --- spreadsheet formulas and HTML ---------------------------------------------------------------------------


FORMULA = '=HYPERLINK("http://evil.example","click")'


def test_formulas_are_stored_as_is_but_neutralised_on_export(db: Database, write_csv: WriteCsv) -> None:
    path = write_csv(
        "email,name,organisation,Job Title\n"
        f'formula@example.com,"{FORMULA.replace(chr(34), chr(34) * 2)}",+Plus Org,@SUM(A1)\n'
        "plain@example.com,Plain Name,-,Clerk\n"
    )
    report = import_contacts(db, path, "list")
    assert report.new == 2
    contact = _contact(db, "formula@example.com")
    assert contact.name == FORMULA
    assert contact.organisation == "+Plus Org"
    assert dict(contact.attributes) == {"job_title": "@SUM(A1)"}
    exported = {row["email"]: row for row in _export(db, "list")}
    assert exported["formula@example.com"]["name"] == "'" + FORMULA
    assert exported["formula@example.com"]["organisation"] == "'+Plus Org"
    assert exported["formula@example.com"]["job_title"] == "'@SUM(A1)"
    assert exported["plain@example.com"]["name"] == "Plain Name"
    assert exported["plain@example.com"]["organisation"] == "'-"
    assert exported["plain@example.com"]["job_title"] == "Clerk"


def test_formulas_in_rejected_rows_are_neutralised_in_the_rejects_file(db: Database, write_csv: WriteCsv) -> None:
    path = write_csv(
        "email,name,timezone\n"
        f'formula@example.com,"{FORMULA.replace(chr(34), chr(34) * 2)}",Mars/Base\n'
        "=1+2@example.com,-Minus,Nowhere\n"
    )
    report = import_contacts(db, path, "list")
    assert report.rejected == 2
    rows = _rejects(path)
    assert rows[0] == ["line", "reason", "email", "name", "timezone"]
    assert rows[1][2:] == ["formula@example.com", "'" + FORMULA, "Mars/Base"]
    assert rows[2][2:] == ["'=1+2@example.com", "'-Minus", "Nowhere"]
    for row in rows:
        for cell in row:
            assert cell[:1] not in ("=", "+", "-", "@"), f"unsafe cell {cell!r}"


def test_the_rejects_file_header_is_spreadsheet_safe_too(db: Database, write_csv: WriteCsv) -> None:
    """Header cells come from the same untrusted file as the rows; staff open the rejects file in Excel."""
    path = write_csv("email,=cmd|' /C calc'!A0\nnot-an-email,x\n")
    report = import_contacts(db, path, "list")
    assert report.rejected == 1
    header = _rejects(path)[0]
    assert header[:2] == ["line", "reason"]
    assert all(cell[:1] not in ("=", "+", "-", "@") for cell in header), header


def test_html_in_names_is_stored_verbatim(db: Database, write_csv: WriteCsv) -> None:
    name = "<b>Bold</b> &amp; <script>alert('x')</script>"
    path = write_csv(f"email,name,organisation\nbold@example.net,{name},<i>Org</i> & Co\n")
    import_contacts(db, path, "list")
    contact = _contact(db, "bold@example.net")
    assert contact.name == name
    assert contact.organisation == "<i>Org</i> & Co"
    assert [c.email for c in find_contacts(db, text="<script>")] == ["bold@example.net"]


# --- duplicates ----------------------------------------------------------------------------------------------


def _case_variant(rng: random.Random, text: str) -> str:
    return "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in text)


def test_ten_thousand_case_variants_of_one_address_make_one_contact(db: Database, write_csv: WriteCsv) -> None:
    rng = random.Random(20240611)
    address = "someone.special@example.org"
    variants = [_case_variant(rng, address) for _ in range(10_000)]
    assert len(set(variants)) > 9_000
    path = write_csv("email,name\n" + "".join(f"{v},Person {i}\n" for i, v in enumerate(variants)))
    report = import_contacts(db, path, "list", batch_size=2_000)
    assert (report.new, report.duplicates, report.updated, report.unchanged, report.rejected) == (1, 9_999, 0, 0, 0)
    _accounted(report, 10_000)
    (contact,) = _all(db)
    # The last row wins: its (non-empty) cells overwrote the earlier ones.
    local, _, domain = variants[-1].partition("@")
    assert contact.email == f"{local}@{domain.lower()}"
    assert contact.name == "Person 9999"
    assert _sizes(db) == {"list": 1}


def _interleaved_duplicates() -> tuple[str, int]:
    """12 addresses, each three times (as written, upper case, title case), spread over the file."""
    addresses = [f"person{i}@example.org" for i in range(12)]
    rows = [*addresses, *(a.upper() for a in addresses), *(a.title() for a in addresses)]
    return "email,name\n" + "".join(f"{a},Same Name\n" for a in rows), len(rows)


def test_duplicates_across_batches_are_merged(db: Database, write_csv: WriteCsv) -> None:
    content, data_rows = _interleaved_duplicates()
    report = import_contacts(db, write_csv(content), "list", batch_size=5)
    assert (report.new, report.duplicates, report.updated, report.unchanged) == (12, 24, 0, 0)
    _accounted(report, data_rows)
    assert len(_all(db)) == 12
    assert _sizes(db) == {"list": 12}


def test_reimport_with_duplicates_across_batches_still_counts_them_as_duplicates(
    db: Database, write_csv: WriteCsv
) -> None:
    """Re-importing a file whose repeated rows fall in different batches: one unchanged, the rest duplicates.

    Identical rows (the name never changes; the address differs only in letter case, so the stored address
    is the last spelling) make every contact unchanged on the second run.
    """
    addresses = [f"person{i}@example.org" for i in range(6)]
    rows = [*addresses, *addresses, *addresses]  # the same text three times, in different batches
    path = write_csv("email,name\n" + "".join(f"{a},Same Name\n" for a in rows))
    first = import_contacts(db, path, "list", batch_size=2)
    assert (first.new, first.duplicates) == (6, 12)
    second = import_contacts(db, path, "list", batch_size=2)
    _accounted(second, 18)
    assert (second.new, second.updated, second.unchanged, second.duplicates) == (0, 0, 6, 12)


def test_duplicates_within_a_file_merge_their_cells(db: Database, write_csv: WriteCsv) -> None:
    path = write_csv(
        "email,name,country,organisation,Job Title\n"
        "ann@example.org,Ann,PH,,Clerk\n"
        "ANN@example.org,,,Acme,\n"
        "Ann@Example.org,Ann Smith,,,\n"
    )
    report = import_contacts(db, path, "list")
    assert (report.new, report.duplicates) == (1, 2)
    ann = _contact(db, "ann@example.org")
    assert (ann.name, ann.country, ann.organisation, ann.timezone) == ("Ann Smith", "PH", "Acme", "Asia/Manila")
    assert dict(ann.attributes) == {"job_title": "Clerk"}


# --- files that cannot be imported, or hold nothing ----------------------------------------------------------


@pytest.mark.parametrize("content", [b"", b"\n\r\n  \n", b"\xef\xbb\xbf"])
def test_empty_file_is_an_import_error(db: Database, write_csv: WriteCsv, content: bytes) -> None:
    with pytest.raises(ImportFileError, match="empty"):
        import_contacts(db, write_csv(content), "list")
    assert list_lists(db) == []


def test_header_only_file_imports_nothing(db: Database, write_csv: WriteCsv) -> None:
    path = write_csv("email,name,timezone\n")
    report = import_contacts(db, path, "list")
    assert report.imported == report.rows == report.rejected == 0
    assert report.rejects_path is None
    assert not rejects_path_for(path).exists()
    assert _all(db) == []
    assert _sizes(db) == {}  # a list is made by its first contact, not by an import of nothing


def test_missing_email_column_lists_the_headers_found(db: Database, write_csv: WriteCsv) -> None:
    path = write_csv("Full Name;Phone;Country\nAnn;123;PH\n")
    with pytest.raises(ImportFileError, match=r"no email column.*'Full Name', 'Phone', 'Country'"):
        import_contacts(db, path, "list")
    assert _all(db) == []


def test_list_name_is_required(db: Database, write_csv: WriteCsv) -> None:
    with pytest.raises(ImportFileError, match="name"):
        import_contacts(db, write_csv("email\na@example.org\n"), " \r\n ")


# --- headers -------------------------------------------------------------------------------------------------


def test_header_aliases_in_any_case(db: Database, write_csv: WriteCsv) -> None:
    path = write_csv(
        "E-MAIL ADDRESS,full name,Time zone,COUNTRY,Language,Organization,Given Name,Surname\n"
        "a@example.org,Ann Smith,asia/manila,ph,en_PH,Acme,Ann,Smith\n"
    )
    report = import_contacts(db, path, "list")
    assert (report.new, report.rejected) == (1, 0)
    ann = _contact(db, "a@example.org")
    assert (ann.name, ann.first_name, ann.last_name) == ("Ann Smith", "Ann", "Smith")
    assert (ann.timezone, ann.country, ann.locale, ann.organisation) == ("Asia/Manila", "PH", "en-PH", "Acme")
    assert dict(ann.attributes) == {}


@pytest.mark.parametrize("header", ["E-mail", "Email Address", "EMAIL", "e_mail", "Mail", "Correo", "Courriel"])
def test_email_header_aliases(db: Database, write_csv: WriteCsv, header: str) -> None:
    report = import_contacts(db, write_csv(f"{header},name\na@example.org,Ann\n"), "list")
    assert report.new == 1
    assert _contact(db, "a@example.org").name == "Ann"


# --- invalid values, rejects file ----------------------------------------------------------------------------


def test_invalid_zones_locales_and_countries_are_rejected_and_the_rest_imported(
    db: Database, write_csv: WriteCsv
) -> None:
    path = write_csv(
        "email,name,timezone,country,locale\n"  # 1
        "ok1@example.org,One,Asia/Manila,PH,en-PH\n"  # 2
        "zone@example.org,Zone,Mars/Olympus_Mons,CO,es-CO\n"  # 3
        "locale@example.org,Locale,Asia/Kolkata,IN,xx-QQ\n"  # 4
        "zz@example.org,ZZ,Asia/Dubai,ZZ,en\n"  # 5
        "numeric@example.org,Numeric,Europe/Paris,001,fr\n"  # 6
        "spelled@example.org,Spelled,Asia/Manila,Philippines,en\n"  # 7
        "not-an-email,Nobody,Europe/Lisbon,PT,pt-PT\n"  # 8
        ",Empty,Africa/Nairobi,KE,en-KE\n"  # 9
        "ok2@example.org,Two,america/bogota,co,es_CO\n"  # 10
        "long@example.org," + "n" * 301 + ",UTC,,\n"  # 11
    )
    report = import_contacts(db, path, "list")
    _accounted(report, 10)
    assert (report.new, report.rejected) == (2, 8)
    assert [(issue.line, issue.reason.split(":")[0], issue.email) for issue in report.rejections] == [
        (3, "timezone", "zone@example.org"),
        (4, "locale", "locale@example.org"),
        (5, "country", "zz@example.org"),
        (6, "country", "numeric@example.org"),
        (7, "country", "spelled@example.org"),
        (8, "email", "not-an-email"),
        (9, "email", None),
        (11, "name", "long@example.org"),
    ]
    reasons = {issue.line: issue.reason for issue in report.rejections}
    assert "'Mars/Olympus_Mons' is not an IANA time zone" in reasons[3]
    assert "'xx-QQ' is not a known locale" in reasons[4]
    assert "'Philippines' is not an ISO 3166" in reasons[7]
    assert reasons[9] == "email: missing"
    assert "longer than 300" in reasons[11]
    assert sorted(c.email for c in _all(db)) == ["ok1@example.org", "ok2@example.org"]
    two = _contact(db, "ok2@example.org")
    assert (two.timezone, two.country, two.locale) == ("America/Bogota", "CO", "es-CO")


def test_rejects_file_beside_the_input_then_deleted_by_a_clean_import(db: Database, write_csv: WriteCsv) -> None:
    path = write_csv(
        "E-mail;Name;Time zone;Job Title\n"
        "good@example.org;Good;Asia/Manila;Clerk\n"
        "bad@example.org;Bad;Atlantis/Capital;Chef\n"
        "worse;Worse;;\n",
        name="people.csv",
    )
    report = import_contacts(db, path, "list")
    assert report.rejects_path == rejects_path_for(path) == path.parent / "people.rejects.csv"
    assert report.rejects_path.exists()
    assert report.rejects_path.stat().st_mode & 0o777 == 0o600  # personal data, whatever the umask
    rows = _rejects(path, delimiter=";")  # written with the input's delimiter, for the same spreadsheet
    assert rows[0] == ["line", "reason", "E-mail", "Name", "Time zone", "Job Title"]
    assert [row[0] for row in rows[1:]] == ["3", "4"]
    assert rows[1][1].startswith("timezone: 'Atlantis/Capital'")
    assert rows[1][2:] == ["bad@example.org", "Bad", "Atlantis/Capital", "Chef"]
    assert rows[2][1].startswith("email: 'worse'")
    assert rows[2][2:] == ["worse", "Worse", "", ""]
    assert rejects_path_for(path).read_bytes().startswith(b"\xef\xbb\xbf")  # so Excel reads it as UTF-8

    # The file is fixed and imported again: the old rejects no longer describe it.
    path.write_text(
        "E-mail;Name;Time zone;Job Title\n"
        "good@example.org;Good;Asia/Manila;Clerk\n"
        "bad@example.org;Bad;Europe/Lisbon;Chef\n"
        "worse@example.org;Worse;;\n"
    )
    again = import_contacts(db, path, "list")
    assert (again.rejected, again.rejects_path) == (0, None)
    assert not rejects_path_for(path).exists()
    assert (again.new, again.unchanged) == (2, 1)


def test_rows_with_too_many_fields_are_rejected(db: Database, write_csv: WriteCsv) -> None:
    path = write_csv(
        "email,name\n"
        "a@example.org,Ann\n"
        "b@example.org,Smith, Bob\n"  # an unquoted comma
        "c@example.org,Cy,,\n"  # trailing empty cells are harmless
    )
    report = import_contacts(db, path, "list")
    _accounted(report, 3)
    assert (report.new, report.rejected) == (2, 1)
    assert [(i.line, i.reason) for i in report.rejections] == [(3, "3 fields but the header has 2")]
    assert _rejects(path)[1] == ["3", "3 fields but the header has 2", "b@example.org", "Smith", " Bob"]
    with pytest.raises(NotFoundError):
        contact_details(db, "b@example.org")
    assert _contact(db, "c@example.org").name == "Cy"


def test_nul_bytes_in_a_custom_column_do_not_break_the_import(db: Database, write_csv: WriteCsv) -> None:
    """A NUL (which PostgreSQL text and JSONB cannot hold) in a custom column: the row is imported without
    it or rejected, and the rest of the file imports either way."""
    path = write_csv(
        b"email,name,Job Title\na@example.org,A\x00nn,Bo\x00ss\nb@example.org,Bob,Clerk\n",
    )
    report = import_contacts(db, path, "list")
    _accounted(report, 2)
    assert _contact(db, "b@example.org").attributes == {"job_title": "Clerk"}
    if report.rejected == 0:
        assert _contact(db, "a@example.org").name == "A nn"  # a control character in a name becomes a space
    else:
        assert [i.line for i in report.rejections] == [2]


# --- time zones ----------------------------------------------------------------------------------------------


def test_zone_is_inferred_from_a_single_zone_country_else_flagged(db: Database, write_csv: WriteCsv) -> None:
    path = write_csv(
        "email,country,timezone\n"
        "ph@example.org,PH,\n"  # 2
        "us@example.org,US,\n"  # 3
        "none@example.org,,\n"  # 4
        "explicit@example.org,US,America/Chicago\n"  # 5
        "gb@example.org,gb,\n"  # 6
    )
    report = import_contacts(db, path, "list")
    assert report.new == 5
    assert _contact(db, "ph@example.org").timezone == "Asia/Manila"
    assert _contact(db, "gb@example.org").timezone == "Europe/London"
    assert _contact(db, "explicit@example.org").timezone == "America/Chicago"
    assert _contact(db, "us@example.org").timezone is None
    assert _contact(db, "none@example.org").timezone is None
    assert report.flagged == 2
    assert [(f.line, f.email) for f in report.flags] == [(3, "us@example.org"), (4, "none@example.org")]
    assert "US" in report.flags[0].reason
    assert "no country" in report.flags[1].reason
    assert sorted(c.email for c in find_contacts(db, without_timezone=True)) == ["none@example.org", "us@example.org"]


def test_a_stored_zone_is_not_overwritten_by_a_row_without_one(db: Database, write_csv: WriteCsv) -> None:
    first = write_csv("email,name,country,timezone\nann@example.org,Ann,US,America/Chicago\n", name="a.csv")
    import_contacts(db, first, "list")
    second = write_csv("email,name,country,timezone\nANN@example.org,Ann Smith,US,\n", name="b.csv")
    report = import_contacts(db, second, "list")
    assert (report.updated, report.flagged) == (1, 0)
    ann = _contact(db, "ann@example.org")
    assert (ann.name, ann.timezone, ann.country) == ("Ann Smith", "America/Chicago", "US")


def test_an_inferred_zone_fills_in_a_contact_stored_without_one(db: Database, write_csv: WriteCsv) -> None:
    import_contacts(db, write_csv("email,name\nann@example.org,Ann\n", name="a.csv"), "list")
    assert _contact(db, "ann@example.org").timezone is None
    report = import_contacts(db, write_csv("email,country\nann@example.org,PH\n", name="b.csv"), "list")
    assert (report.updated, report.flagged) == (1, 0)
    ann = _contact(db, "ann@example.org")
    assert (ann.name, ann.country, ann.timezone) == ("Ann", "PH", "Asia/Manila")


# --- re-imports ----------------------------------------------------------------------------------------------


def _sample(tmp_path: Path, name: str) -> Path:
    """A copy of a sample file from data/ (the import writes its rejects file beside the input)."""
    return Path(shutil.copy(DATA / name, tmp_path / name))


def test_reimporting_the_same_file_changes_nothing(db: Database, tmp_path: Path) -> None:
    path = _sample(tmp_path, "contacts.csv")
    first = import_contacts(db, path, "list")
    before = {c.email: c for c in _all(db)}
    second = import_contacts(db, path, "list")
    assert (second.new, second.updated, second.unchanged, second.duplicates, second.rejected) == (0, 0, 41, 0, 0)
    assert second.flagged == first.flagged == 1
    after = {c.email: c for c in _all(db)}
    assert after == before  # same ids, values and timestamps
    assert _sizes(db) == {"list": 41}


def test_reimport_with_one_changed_cell_updates_one_contact(db: Database, tmp_path: Path) -> None:
    path = _sample(tmp_path, "contacts.csv")
    import_contacts(db, path, "list")
    old = _contact(db, "kenji.watanabe@care-unions.example.net")
    text = path.read_text(encoding="utf-8")
    assert text.count("International Officer") == 1
    path.write_text(text.replace("International Officer", "Head of International Affairs"), encoding="utf-8")
    report = import_contacts(db, path, "list")
    assert (report.new, report.updated, report.unchanged) == (0, 1, 40)
    new = _contact(db, "kenji.watanabe@care-unions.example.net")
    assert new.attributes["job_title"] == "Head of International Affairs"
    assert new.id == old.id
    assert new.updated_at is not None
    assert old.updated_at is not None
    assert new.updated_at > old.updated_at
    assert len(_all(db)) == 41


def test_reimport_in_another_letter_case_matches_the_same_contact(db: Database, write_csv: WriteCsv) -> None:
    import_contacts(db, write_csv("email,name\nann@example.org,Ann\n", name="a.csv"), "l")
    old = _contact(db, "ann@example.org")
    report = import_contacts(db, write_csv("email,name\nANN@EXAMPLE.ORG,Ann\n", name="b.csv"), "l")
    # The address is the same person; its new spelling is a non-empty cell, so it overwrites the old one.
    assert (report.new, report.updated, report.duplicates) == (0, 1, 0)
    (contact,) = _all(db)
    assert (contact.id, contact.email, contact.name) == (old.id, "ANN@example.org", "Ann")


def test_empty_cells_keep_stored_values(db: Database, write_csv: WriteCsv) -> None:
    full = "email,name,first_name,last_name,timezone,country,locale,organisation,Job Title\n"
    import_contacts(
        db, write_csv(full + "ann@example.org,Ann Smith,Ann,Smith,Asia/Tokyo,JP,ja-JP,Acme,Clerk\n", name="a.csv"), "l"
    )
    report = import_contacts(db, write_csv(full + "Ann@Example.org,,,,,,,Acme Ltd,\n", name="b.csv"), "l")
    assert report.updated == 1
    ann = _contact(db, "ann@example.org")
    assert (ann.name, ann.first_name, ann.last_name) == ("Ann Smith", "Ann", "Smith")
    assert (ann.timezone, ann.country, ann.locale) == ("Asia/Tokyo", "JP", "ja-JP")
    assert ann.organisation == "Acme Ltd"
    assert dict(ann.attributes) == {"job_title": "Clerk"}
    # A file with only the address column (spelled as stored) changes nothing at all.
    again = import_contacts(db, write_csv("email\nAnn@example.org\n", name="c.csv"), "l")
    assert (again.updated, again.unchanged) == (0, 1)


def test_custom_columns_are_stored_and_merged(db: Database, write_csv: WriteCsv) -> None:
    import_contacts(db, write_csv("email,Job Title,Member Since\nann@example.org,Clerk,2019\n", name="a.csv"), "l")
    ann = _contact(db, "ann@example.org")
    assert dict(ann.attributes) == {"job_title": "Clerk", "member_since": "2019"}
    report = import_contacts(
        db, write_csv("email,Department,Job Title,Member Since\nann@example.org,Legal,Counsel,\n", name="b.csv"), "l"
    )
    assert report.updated == 1
    ann = _contact(db, "ann@example.org")
    assert dict(ann.attributes) == {"job_title": "Counsel", "member_since": "2019", "department": "Legal"}
    exported = _export(db)
    assert {k: exported[0][k] for k in ("job_title", "member_since", "department")} == dict(ann.attributes)


def test_a_contact_can_be_in_two_lists(db: Database, write_csv: WriteCsv) -> None:
    import_contacts(db, write_csv("email,name\nann@example.org,Ann\nbob@example.org,Bob\n", name="a.csv"), "Speakers")
    report = import_contacts(db, write_csv("email\nann@example.org\ncy@example.org\n", name="b.csv"), "Guests")
    assert (report.new, report.unchanged) == (1, 1)
    assert contact_details(db, "ann@example.org").lists == ["Guests", "Speakers"]
    assert contact_details(db, "bob@example.org").lists == ["Speakers"]
    assert contact_details(db, "cy@example.org").lists == ["Guests"]
    assert _sizes(db) == {"Guests": 2, "Speakers": 2}
    assert [c.email for c in find_contacts(db, list_name="Guests")] == ["ann@example.org", "cy@example.org"]
    assert [row["email"] for row in _export(db, "Speakers")] == ["ann@example.org", "bob@example.org"]


def test_suppressed_addresses_are_counted_and_stay_suppressed(db: Database, write_csv: WriteCsv) -> None:
    _suppress(db, "gone@example.org", "unsubscribed")
    path = write_csv("email,name\nGone@Example.org,Gone\nhere@example.org,Here\n")
    report = import_contacts(db, path, "list")
    assert (report.new, report.suppressed) == (2, 1)
    assert contact_details(db, "gone@example.org").suppressed == "unsubscribed"
    assert contact_details(db, "here@example.org").suppressed is None
    again = import_contacts(db, path, "list")
    assert again.suppressed == 1
    assert contact_details(db, "GONE@example.org").suppressed == "unsubscribed"
    with db.read() as conn:
        assert conn.scalar(select(func.count()).select_from(suppressions)) == 1


def test_counts_add_up_on_a_messy_file(db: Database, write_csv: WriteCsv) -> None:
    import_contacts(db, write_csv("email,name\nold@example.org,Old\nsame@example.org,Same\n", name="a.csv"), "l")
    path = write_csv(
        "email,name,timezone\n"
        "new@example.org,New,\n"  # new
        "OLD@example.org,Older,\n"  # updated
        "same@example.org,Same,\n"  # unchanged
        "NEW@example.org,,\n"  # duplicate
        "bad,Bad,\n"  # rejected
        "x@example.org,X,Nowhere\n"  # rejected
        "y@example.org,Y,UTC,extra\n"  # rejected
        "\n"
        "z@example.org,Z,UTC\n",  # new
        name="b.csv",
    )
    report = import_contacts(db, path, "l", batch_size=2)
    _accounted(report, 8)
    assert (report.new, report.updated, report.unchanged, report.duplicates, report.rejected) == (2, 1, 1, 1, 3)
    assert report.imported == 5


def test_progress_is_reported_up_to_the_file_size(db: Database, write_csv: WriteCsv) -> None:
    path = write_csv("email\n" + "".join(f"p{i}@example.org\n" for i in range(10)))
    calls: list[tuple[int, int]] = []
    import_contacts(db, path, "list", batch_size=3, progress=lambda done, total: calls.append((done, total)))
    assert len(calls) >= 4
    assert all(total == path.stat().st_size for _, total in calls)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert calls[-1][0] == path.stat().st_size


# --- the sample files ----------------------------------------------------------------------------------------


def test_sample_contacts_file(db: Database, tmp_path: Path) -> None:
    path = _sample(tmp_path, "contacts.csv")
    report = import_contacts(db, path, "ilo-2020")
    _accounted(report, 41)
    assert (report.new, report.rejected, report.duplicates) == (41, 0, 0)
    assert report.rejects_path is None
    assert _sizes(db) == {"ilo-2020": 41}
    # Three rows have no zone: two countries have one, the United States has several.
    assert _contact(db, "ana.delacruz@pinoyworkers.example.net").timezone == "Asia/Manila"
    assert _contact(db, "andres.munoz@mintrabajo.example.org").timezone == "America/Bogota"
    assert [f.email for f in report.flags] == ["michael.obrien@example.com"]
    assert _contact(db, "michael.obrien@example.com").timezone is None
    maria = _contact(db, "maria.santos@dole.example.org")
    assert maria.attributes == {"job_title": "Labour Attaché"}
    assert (maria.locale, maria.organisation) == ("en-PH", "Department of Overseas Labour Welfare")
    haruka = _contact(db, "haruka.sato@ginou-shien.example.org")
    assert (haruka.name, haruka.organisation) == ("佐藤 遥", "外国人材共生支援機構")
    assert _contact(db, "mona.hassan@manpower.example.org").name == "منى حسن"
    assert _contact(db, "rosario.villanueva@domestic.example.net").name == "Villanueva, Rosario"
    assert len(_export(db, "ilo-2020")) == 41


def test_sample_file_with_errors(db: Database, tmp_path: Path) -> None:
    path = _sample(tmp_path, "contacts-with-errors.csv")
    report = import_contacts(db, path, "errors")
    _accounted(report, 15)
    assert (report.new, report.updated, report.unchanged, report.duplicates, report.rejected) == (8, 0, 0, 1, 6)
    assert [(issue.line, issue.reason.split(":")[0]) for issue in report.rejections] == [
        (4, "email"),  # not-an-email
        (5, "email"),  # missing
        (6, "timezone"),  # Mars/Olympus_Mons
        (7, "locale"),  # xx-QQ
        (8, "country"),  # ZZ
        (13, "email"),  # .test is a special-use domain
    ]
    assert report.flagged == 0
    rows = _rejects(path, delimiter=";")
    assert rows[0] == ["line", "reason", "E-mail", "Name", "Time zone", "Country", "Locale", "Organization"]
    assert [row[0] for row in rows[1:]] == ["4", "5", "6", "7", "8", "13"]
    assert [row[3] for row in rows[1:]] == [
        "Pedro Almeida", "Grace Wanjiku", "Carlos Restrepo", "Priya Nair", "Hamid Rahimi", "Rafael Souza",
    ]  # fmt: skip
    assert _sizes(db) == {"errors": 8}
    assert _contact(db, "ana.delacruz@pinoyworkers.example.net").name == "Ana Dela Cruz"
    assert _contact(db, "bold.name@ngo.example.net").name == "<b>Bold</b> Name"
    assert _contact(db, "formula@example.com").name == '=HYPERLINK("http://evil.example","click")'
    assert _contact(db, "lukas.mueller@pflegeverband.example.org").name == "Lukas Müller"
    assert _contact(db, "claudia.ferreira@integracao.example.org").organisation == "Observatório das Migrações do Tejo"
    exported = {row["email"]: row for row in _export(db, "errors")}
    assert exported["formula@example.com"]["name"] == """'=HYPERLINK("http://evil.example","click")"""
    assert contact_details(db, "maria.santos@dole.example.org").contact.timezone == "Asia/Manila"


def test_both_sample_files_together(db: Database, tmp_path: Path) -> None:
    import_contacts(db, _sample(tmp_path, "contacts.csv"), "ilo-2020")
    report = import_contacts(db, _sample(tmp_path, "contacts-with-errors.csv"), "errors")
    # The errors file has eight valid addresses (and one of them twice); six are known from contacts.csv.
    known = {"maria.santos", "claudia.ferreira", "sita.gurung", "ana.delacruz", "lukas.mueller", "kenji.watanabe"}
    assert (report.new, report.duplicates, report.rejected) == (8 - len(known), 1, 6)
    assert report.new + report.updated + report.unchanged == 8
    assert len(_all(db)) == 41 + 8 - len(known)
    assert contact_details(db, "sita.gurung@welfarefund.example.org").lists == ["errors", "ilo-2020"]


# --- the writer process ---------------------------------------------------------------------------------------


def _mixed_rows(rng: random.Random, count: int) -> str:
    """Rows with repeats (in and across batches), empty cells, zones to guess, attributes and bad rows."""
    zones = ["Asia/Manila", "Europe/Lisbon", "", "", "America/Bogota"]
    countries = ["PH", "PT", "US", "", "CO", "NP"]
    lines = ["email,name,timezone,country,locale,job title"]
    for i in range(count):
        person = rng.randrange(count // 3)  # about three rows an address, spread over the whole file
        email = f"Person.{person}@Example.org" if rng.random() < 0.5 else f"person.{person}@example.org"
        if rng.random() < 0.02:
            email = f"broken-{i}"
        name = rng.choice(["", f"Name {i}"])
        job = rng.choice(["", f"Job {i % 7}"])
        lines.append(f"{email},{name},{rng.choice(zones)},{rng.choice(countries)},{rng.choice(['', 'es-CO'])},{job}")
    return "\n".join(lines) + "\n"


def _reset(db: Database) -> None:
    with db.write() as conn:
        for table in (list_members, contacts, lists):
            conn.execute(table.delete())


@pytest.mark.parametrize("batch_size", [97, 1_000])
def test_the_writer_process_imports_exactly_what_the_importing_process_would(
    db: Database, write_csv: WriteCsv, batch_size: int
) -> None:
    path = write_csv(_mixed_rows(random.Random(batch_size), 3_000))
    outcomes = []
    for parallel in (True, False):
        _reset(db)
        import_contacts(db, path, "earlier", batch_size=batch_size, parallel=parallel)  # a second, updating pass
        report = import_contacts(db, path, "list", batch_size=batch_size, parallel=parallel)
        counts = (report.new, report.updated, report.unchanged, report.duplicates, report.rejected, report.flagged)
        outcomes.append((counts, report.flags, _export(db, "list"), _sizes(db)))
        _accounted(report, 3_000)
    assert outcomes[0] == outcomes[1]
    counts, flags, exported, sizes = outcomes[0]
    new, _, unchanged, duplicates, _, flagged = counts
    assert new == 0  # the second pass
    assert unchanged > 0
    assert duplicates > 0
    assert flagged > 0
    assert len(flags) == min(50, flagged)
    assert [f.line for f in flags] == sorted(f.line for f in flags)
    assert sizes["list"] == len(exported) == sizes["earlier"]


def test_a_failing_writer_process_fails_the_import(db: Database, write_csv: WriteCsv) -> None:
    path = write_csv("email\n" + "".join(f"p{i}@example.org\n" for i in range(100)))
    with db.write() as conn:  # the list disappears under the import: adding members breaks a foreign key
        conn.execute(lists.insert().values(id=99, name="gone", created_at=datetime.now(UTC)))
    original = list_store.get_or_create

    def vanishing(conn: Connection, name: str, now: datetime) -> int:
        original(conn, name, now)
        return 12345

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(list_store, "get_or_create", vanishing)
        with pytest.raises(IntegrityError):
            import_contacts(db, path, "list", batch_size=10, parallel=True)


def test_the_writer_process_is_spawned_when_other_threads_run(db: Database, write_csv: WriteCsv) -> None:
    # A fork would copy locks other threads hold; with a thread running, the writer starts afresh instead.
    path = write_csv("email,name\n" + "".join(f"p{i}@example.org,P {i}\n" for i in range(500)))
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        report = import_contacts(db, path, "list", batch_size=100, parallel=True)
    finally:
        stop.set()
        other.join()
    assert (report.new, report.rejected) == (500, 0)
    assert _sizes(db) == {"list": 500}


def test_attributes_stored_by_sqlalchemy_compare_equal_to_the_same_values_imported(
    db: Database, write_csv: WriteCsv
) -> None:
    # Contacts written by earlier versions (SQLAlchemy's JSON: non-ASCII escaped) are unchanged by the same data.
    with db.write() as conn:
        now = datetime.now(UTC)
        conn.execute(
            insert(contacts).values(
                email="z@example.org",
                email_key="z@example.org",
                attributes={"city": "Zürich"},
                created_at=now,
                updated_at=now,
            )
        )
    report = import_contacts(db, write_csv("email,city\nz@example.org,Zürich\n"), "list")
    assert (report.new, report.updated, report.unchanged) == (0, 0, 1)
    assert _contact(db, "z@example.org").attributes == {"city": "Zürich"}


def test_contacts_loaded_by_id_for_sending_are_whole(db: Database, tmp_path: Path) -> None:
    """The delivery worker's loader builds contacts by column position: the columns follow Contact's fields."""
    names = tuple(f.name for f in dataclasses.fields(Contact))
    assert ("id", *contact_store.CONTACT_FIELDS) == names[: len(contact_store.CONTACT_FIELDS) + 1]
    path = tmp_path / "one.csv"
    path.write_text(
        "email,name,first_name,last_name,timezone,country,locale,organisation,team\n"
        "ana@example.org,Ana Ruiz,Ana,Ruiz,America/Bogota,CO,es-CO,ANDI,Policy\n",
        encoding="utf-8",
    )
    import_contacts(db, path, "one")
    stored = contact_details(db, "ana@example.org").contact
    with db.read() as conn:
        loaded = contact_store.by_ids(conn, [stored.id])[stored.id]
    assert loaded == dataclasses.replace(stored, created_at=None, updated_at=None)
    assert loaded.attributes == {"team": "Policy"}
    assert loaded.organisation == "ANDI"


# --- a failed import leaves no list behind -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "encoding"),
    [
        (b"Full Name;Phone\nAnn;123\n", None),  # no email column
        ("email,name\nlukas@example.org,Lukas M\u00fcller\n".encode("cp1252"), None),  # not UTF-8, refused up front
        ("email,name\nlukas@example.org,\u0141ukasz\n".encode(), "cp1252"),  # a byte cp1252 does not define
        (b"email,name\n", None),  # nothing but a header
    ],
)
def test_an_import_that_cannot_be_read_creates_no_list(
    db: Database, write_csv: WriteCsv, content: bytes, encoding: str | None
) -> None:
    with contextlib.suppress(ImportFileError):  # some fail at once, others import nothing
        import_contacts(db, write_csv(content), "doomed", encoding=encoding)
    assert _sizes(db) == {}


def test_an_import_whose_every_row_is_rejected_creates_no_list(db: Database, write_csv: WriteCsv) -> None:
    path = write_csv("email,name\nnot-an-address,Ann\nbob@example.test,Bob\n")
    report = import_contacts(db, path, "doomed")
    assert report.rejected == 2
    assert report.imported == 0
    assert _sizes(db) == {}


def test_an_existing_list_is_kept_by_an_import_of_nothing(db: Database, write_csv: WriteCsv) -> None:
    import_contacts(db, write_csv("email\nann@example.org\n", name="a.csv"), "kept")
    import_contacts(db, write_csv("email\nnot-an-address\n", name="b.csv"), "kept")
    assert _sizes(db) == {"kept": 1}


# --- where the rejects report goes -------------------------------------------------------------------------------


def test_rejects_can_be_written_to_another_directory(db: Database, write_csv: WriteCsv, tmp_path: Path) -> None:
    path = write_csv("email,name\nbad,Bad\ngood@example.org,Good\n", name="people.csv")
    elsewhere = tmp_path / "reports"
    elsewhere.mkdir()
    report = import_contacts(db, path, "list", rejects_dir=elsewhere)
    assert report.rejects_path == elsewhere / "people.rejects.csv"
    assert report.rejects_path.is_file()
    assert not rejects_path_for(path).exists()


def test_a_rejects_file_that_cannot_be_written_is_a_warning_not_a_failure(db: Database, write_csv: WriteCsv) -> None:
    path = write_csv("email,name\nbad,Bad\ngood@example.org,Good\n", name="people.csv")
    rejects_path_for(path).mkdir()  # in the way, whoever runs the test (root ignores permissions)
    report = import_contacts(db, path, "list")
    assert (report.new, report.rejected) == (1, 1)
    assert report.rejects_path is None
    assert report.rejects_error is not None
    assert str(rejects_path_for(path)) in report.rejects_error
    assert [issue.line for issue in report.rejections] == [2]


def test_a_long_input_name_still_gets_a_rejects_file(db: Database, write_csv: WriteCsv) -> None:
    path = write_csv("email,name\nbad,Bad\n", name="x" * 250 + ".csv")
    report = import_contacts(db, path, "list")
    assert report.rejects_path is not None
    assert report.rejects_path.is_file()
    assert report.rejects_path.name.endswith(".rejects.csv")


# --- searching --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("%", ["ann@example.org"]),
        ("_", ["bob_smith@example.org"]),
        ("/", ["dora@example.org"]),
        ("\\", ["eve@example.org"]),
        ("100%", ["ann@example.org"]),
        ("b_s", ["bob_smith@example.org"]),
        ("example", ["ann@example.org", "bob_smith@example.org", "carl@example.org", "dora@example.org",
                     "eve@example.org"]),
    ],
)  # fmt: skip
def test_search_takes_like_wildcards_literally(
    db: Database, write_csv: WriteCsv, text: str, expected: list[str]
) -> None:
    path = write_csv(
        "email,name,organisation\n"
        "ann@example.org,Ann,100% Fit\n"
        "bob_smith@example.org,Bob,\n"
        "carl@example.org,Carl,Carlsberg\n"
        "dora@example.org,Dora,A/B testing\n"
        "eve@example.org,Eve,Back\\slash\n"
    )
    import_contacts(db, path, "list")
    assert [c.email for c in find_contacts(db, text=text)] == expected
